"""The one place where scoring errors become Airflow task outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from scoring.errors import (
    BundleChanged,
    ConfigError,
    DatabaseBehind,
    InvalidInput,
    InvalidJobName,
    InvalidPartitionKey,
    ModelLoadError,
    RejectThresholdExceeded,
    StagingGone,
    UnknownRecipe,
    UnreadableInput,
)

# Retrying cannot fix these (the data, the trigger, the bundle or the deployment is wrong): fail at
# once, say why. ModelLoadError covers a missing, malformed, tampered (BundleIntegrityError) or
# untrusted bundle; StagingGone and BundleChanged are publish errors that the same plan can never get
# past; DatabaseBehind waits for `scoring db upgrade`, which no retry runs. Everything else retries
# with backoff: a refused transaction (PublishError), an unreachable database (DatabaseUnavailable),
# a partition not there yet (PartitionNotFound).
NOT_RETRYABLE = (
    RejectThresholdExceeded,
    InvalidInput,
    InvalidPartitionKey,
    InvalidJobName,
    UnreadableInput,
    ModelLoadError,
    UnknownRecipe,
    ConfigError,
    StagingGone,
    BundleChanged,
    DatabaseBehind,
)


def is_last_try(ti: Any) -> bool:
    """Whether this try of the task instance is its last: no retry follows its failure."""
    return ti.try_number > ti.max_tries


def ends_the_run(exc: BaseException, *, last_try: bool) -> bool:
    """Whether a task's failure ends its run: on the last try, or for an error no retry fixes."""
    return last_try or isinstance(exc, NOT_RETRYABLE)


@contextmanager
def task_errors() -> Iterator[None]:
    """Fail the task without retries for errors a retry cannot fix; let anything else retry with backoff.

    Such a failure is the trigger's, the data's or the deployment's, and its message says all there is:
    `from None` keeps the scoring traceback from being chained under that one line in the task log.
    """
    try:
        yield
    except NOT_RETRYABLE as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
