"""Failed runs: every run that fails after planning leaves a `failed` scoring_runs row with its reason."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from scoring.batch.plan import RunPlan
from scoring.batch.staging import ShardResult
from scoring.batch.store import writes as store
from scoring.batch.store.engines import first_line
from scoring.errors import ScoringError
from scoring.model.bundle import Manifest
from scoring.model.storable import clean_text

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 2000


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
