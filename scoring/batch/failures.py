"""Failed runs: every run that fails once its database is checked leaves a `failed` scoring_runs row with its reason."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy import Engine

from scoring.batch.partitions import PartitionKey
from scoring.batch.plan import RunPlan, validate_job_name
from scoring.batch.staging import ShardResult
from scoring.batch.store import writes as store
from scoring.batch.store.engines import first_line
from scoring.errors import ScoringError
from scoring.model.manifest import Manifest
from scoring.model.storable import clean_text

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 2000
UNPLANNED = "the run could not be planned: "


def failure_reason(exc: BaseException) -> str:
    """A failed run's message: our own errors as they read, anything else with its type."""
    return str(exc) if isinstance(exc, ScoringError) else f"{type(exc).__name__}: {exc}"


def shard_failure_reason(plan: RunPlan, index: int, exc: BaseException) -> str:
    """The failed-run message of a shard that raised: which shard, which file, and why."""
    return f"shard {index} ({plan.describe_shard(index)}): {failure_reason(exc)}"


def record_failed_run(
    engine: Engine,
    plan: RunPlan,
    manifest: Manifest | None,
    reason: str,
    shards: list[ShardResult] | None = None,
    *,
    only_if_unrecorded: bool = False,
) -> None:
    """Record the run as failed with its reason, in its own transaction; the published rows stay as they were.

    The model is the manifest's when one was read, else the plan's (so a bundle that can no longer be
    read does not cost the record). Counts come from the shards when every shard was scored, else
    they are zero. With `only_if_unrecorded` (a cleanup step that does not know how the run ended) a
    run that already has its record keeps it. Never raises: a database that cannot take the record
    either is logged, and the run's own error is what matters.
    """
    complete = shards is not None and len(shards) == plan.shard_count()
    input_rows = sum(s.input_rows for s in shards) if shards and complete else 0
    rejected_rows = sum(s.rejected_rows for s in shards) if shards and complete else 0
    message = clean_text(" ".join(reason.split()))
    run = plan.run_record(
        manifest,
        input_rows=input_rows,
        rejected_rows=rejected_rows,
        status="failed",
        message=message[:MAX_MESSAGE_LENGTH],
    )
    try:
        store.record_failed_run(engine, run, only_if_absent=only_if_unrecorded)
    except Exception as exc:
        log.warning("run %s failed and its failure could not be recorded: %s", plan.run_id, first_line(exc))


@contextmanager
def planning_failures_recorded(
    engine: Engine,
    *,
    job: str,
    partition: PartitionKey | str,
    run_id: str,
    source_uri: str = "",
    final: Callable[[Exception], bool] = lambda exc: True,
) -> Iterator[None]:
    """Record a failed run (reason, no model, no rows) if the block that plans run `run_id` raises; re-raise.

    For the steps between the database check and a plan (reading the bundle, listing the partition,
    checking the run's options): a run refused there has no plan to record from, yet must leave its
    row. No model is named: a bundle refused as untrusted must not have its manifest's word recorded.
    A job name that cannot be stored is raised before anything else, as there is no row to write it in.
    `final` says whether a failure ends the run: one that its orchestrator will retry is not recorded, so a
    retried plan leaves one row, not one per try.
    """
    validate_job_name(job)
    started_at = datetime.now(timezone.utc).isoformat()
    try:
        yield
    except Exception as exc:
        if not final(exc):
            raise
        unplanned = RunPlan(
            run_id=run_id,
            job=job,
            partition_key=str(partition),
            source_uri=source_uri,
            files=[],
            staging_root="",
            started_at=started_at,
        )
        record_failed_run(engine, unplanned, None, UNPLANNED + failure_reason(exc), only_if_unrecorded=True)
        raise
