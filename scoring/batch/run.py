"""The whole run in one process: plan, score every shard here, publish. For the CLI, benchmarks and tests."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine

from scoring.batch.failures import planning_failures_recorded, record_failed_run, shard_failure_reason
from scoring.batch.partitions import PartitionKey
from scoring.batch.plan import DEFAULT_SHARD_ROWS, RunPlan, new_run_id, plan_run, remove_run_staging
from scoring.batch.publish import RunSummary, publish_run
from scoring.batch.reader import partition_uri
from scoring.batch.shard import score_shard
from scoring.model.predict import Predictor

log = logging.getLogger(__name__)


def score_partition(
    predictor: Predictor,
    engine: Engine,
    *,
    job: str,
    partition: PartitionKey,
    input_root: str,
    dataset: str,
    staging_root: str,
    chunk_rows: int,
    reject_threshold: float,
    run_id: str | None = None,
    id_field: str | None = None,
    require_id: bool = False,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    drift_threshold: float | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> RunSummary:
    """Plan, score every shard in this process, and publish: the whole run, for the CLI and tests.

    `id_field` and `require_id` are the run's id options and `shard_rows` the size its shards are packed
    to (see plan_run); `drift_threshold` overrides the drift thresholds. Whatever the outcome, the
    run's staging is removed; a run that fails, even while it is planned, is recorded as a failed run.
    """
    manifest = predictor.bundle.manifest
    run_id = run_id or new_run_id()
    where = partition_uri(input_root, dataset, partition)
    with planning_failures_recorded(engine, job=job, partition=partition, run_id=run_id, source_uri=where):
        plan = plan_run(
            job=job,
            partition=partition,
            input_root=input_root,
            dataset=dataset,
            staging_root=staging_root,
            run_id=run_id,
            model_uri=predictor.bundle.uri,
            model=manifest,
            id_field=id_field,
            require_id=require_id,
            shard_rows=shard_rows,
        )
    try:
        shards = []
        for index in range(plan.shard_count()):
            try:
                shards.append(score_shard(predictor, plan, index, chunk_rows=chunk_rows, on_rows=on_rows))
            except Exception as exc:
                record_failed_run(engine, plan, manifest, shard_failure_reason(plan, index, exc))
                raise
        return publish_run(
            engine, plan, shards, manifest, reject_threshold=reject_threshold, drift_threshold=drift_threshold
        )
    finally:
        _remove_quietly(plan)


def _remove_quietly(plan: RunPlan) -> None:
    # The run's outcome is what the caller needs; staging left by a failed removal is swept later.
    try:
        remove_run_staging(plan)
    except Exception as exc:
        log.warning("run %s: staging under %s was not removed: %s", plan.run_id, plan.staging_root, exc)
