"""The steps of one scoring run as plain functions of (settings, Airflow context values).

The DAG's TaskFlow tasks are one-line wrappers around these, so the logic is testable without a
scheduler and every heavy import happens at task run time, never while a DAG file is parsed.
"""

from __future__ import annotations

import logging
from datetime import datetime

log = logging.getLogger(__name__)


def resolve_partition(
    requested: str | None, logical_date: datetime | None, run_after: datetime, *, hourly: bool
) -> str:
    """The partition a run scores: the one named by the trigger, else the period starting at its logical date."""
    from scoring.batch.partitions import PartitionKey

    if requested:
        return str(PartitionKey.parse(requested))
    return str(PartitionKey.for_run(logical_date, run_after, hourly=hourly))


def partition_is_ready(settings, partition: str) -> bool:
    """True once the partition has at least one data file."""
    from scoring.batch.partitions import PartitionKey
    from scoring.batch.reader import list_partition_files
    from scoring.errors import PartitionNotFound

    try:
        files = list_partition_files(settings.input_root, settings.dataset, PartitionKey.parse(partition))
    except PartitionNotFound as missing:
        log.info("%s", missing)
        return False
    log.info("partition %s is ready: %d file(s)", partition, len(files))
    return True


def plan(settings, *, job: str, partition: str, run_id: str) -> dict:
    """Fix the run: its files, its staging place, and the verified model it will use."""
    from scoring.batch import engine as batch
    from scoring.batch.partitions import PartitionKey
    from scoring.model.bundle import read_manifest
    from scoring.model.trust import BundleTrust

    # The trigger form may name another bundle: it must lie below a trusted root before a byte is read.
    manifest = read_manifest(settings.model_uri, BundleTrust.from_settings(settings))
    run_plan = batch.plan_run(
        job=job,
        partition=PartitionKey.parse(partition),
        input_root=settings.input_root,
        dataset=settings.dataset,
        staging_root=settings.staging_root,
        run_id=run_id,
        model_uri=settings.model_uri,
        model_sha256=manifest.sha256,
        model_name=manifest.name,
        model_version=manifest.version,
    )
    log.info(
        "run %s scores %d file(s) of %s with %s v%s",
        run_id,
        len(run_plan.files),
        partition,
        manifest.name,
        manifest.version,
    )
    return run_plan.to_dict()


def score_shard(settings, plan: dict, index: int, *, last_try: bool = True) -> dict:
    """Score one file of the run; the result is staged, nothing is published yet.

    A failure that will not be retried (the last try, or an error no retry fixes) is recorded as the
    run's failure with the shard's real reason, unless the run already has a record, then re-raised.
    """
    from scoring.batch import engine as batch
    from scoring.model.bundle import load_bundle
    from scoring.model.predict import Predictor
    from scoring.model.trust import BundleTrust
    from scoring_airflow.errors import NOT_RETRYABLE

    run_plan = batch.RunPlan.from_dict(plan)
    try:
        predictor = Predictor(load_bundle(run_plan.model_uri, BundleTrust.from_settings(settings)))
        result = batch.score_shard(predictor, run_plan, index, chunk_rows=settings.chunk_rows)
    except Exception as exc:
        if last_try or isinstance(exc, NOT_RETRYABLE):
            record_failure(settings, run_plan, batch.shard_failure_reason(run_plan, index, exc))
        raise
    log.info(
        "shard %d (%s): %d scored, %d rejected", index, result.source_uri, result.scored_rows, result.rejected_rows
    )
    return result.to_dict()


def record_failure(settings, run_plan, reason: str, *, only_if_unrecorded: bool = True) -> None:
    """Record the run as failed from its plan alone (the bundle is not read again); never raises.

    Only if it has no record yet, by default: the first real reason stays, and a publish that
    recorded its own outcome keeps it.
    """
    from scoring.batch import engine as batch
    from scoring.batch.store.engines import upgrade
    from scoring_airflow.hook import ScoringDbHook

    try:
        engine = ScoringDbHook(fallback_url=settings.database_url).get_conn()
        try:
            upgrade(engine)  # the run may fail before publish, which migrates, ever ran
            batch.record_failed_run(engine, run_plan, None, reason, only_if_unrecorded=only_if_unrecorded)
        finally:
            engine.dispose()
    except Exception as exc:  # the task's own error is what matters
        log.warning("run %s: its failure could not be recorded: %s", run_plan.run_id, exc)


def publish(settings, engine, plan: dict, shard_results: list[dict], reject_threshold: float | None) -> dict:
    """Publish the run's staged shards in one transaction; a reject rate above the threshold fails the task."""
    from scoring.batch import engine as batch
    from scoring.batch.staging import ShardResult
    from scoring.batch.store.engines import upgrade
    from scoring.model.bundle import read_manifest
    from scoring.model.trust import BundleTrust

    run_plan = batch.RunPlan.from_dict(plan)
    upgrade(engine)
    shards = sorted((ShardResult.from_dict(r) for r in shard_results), key=lambda s: run_plan.files.index(s.source_uri))
    try:
        manifest = read_manifest(run_plan.model_uri, BundleTrust.from_settings(settings))
    except Exception as exc:
        batch.record_failed_run(engine, run_plan, None, f"publish: the model bundle cannot be read: {exc}")
        raise
    summary = batch.publish_run(
        engine,
        run_plan,
        shards,
        manifest,
        reject_threshold=settings.reject_threshold if reject_threshold is None else reject_threshold,
    )
    log.info("%s", summary.line())
    return summary.to_dict()
