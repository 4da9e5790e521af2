"""The one place where scoring errors become Airflow task outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowFailException

from scoring.errors import (
    BundleChanged,
    ConfigError,
    InvalidInput,
    ModelLoadError,
    RejectThresholdExceeded,
    StagingGone,
    UnknownRecipe,
)

# Retrying cannot fix these (the data, the trigger or the bundle is wrong): fail at once, say why.
# ModelLoadError covers a missing, malformed, tampered (BundleIntegrityError) or untrusted bundle;
# StagingGone and BundleChanged are publish errors that the same plan can never get past. Any other
# PublishError (a refused transaction) is retried.
NOT_RETRYABLE = (
    RejectThresholdExceeded,
    InvalidInput,
    ModelLoadError,
    UnknownRecipe,
    ConfigError,
    StagingGone,
    BundleChanged,
)


@contextmanager
def task_errors() -> Iterator[None]:
    """Fail the task without retries for errors a retry cannot fix; let anything else retry with backoff."""
    try:
        yield
    except NOT_RETRYABLE as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
