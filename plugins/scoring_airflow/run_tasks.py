"""The steps of one scoring run from its plan on: plan, score a shard, publish, clean up.

Plain functions of (settings, Airflow context values); the DAG's TaskFlow tasks each make one call, so
the logic is testable without a scheduler and every heavy import happens at task run time, never while
a DAG file is parsed. The steps before the plan (options, partition, wait) are in partition_tasks.
A run never migrates the predictions database: `plan` and `publish` check its revision and fail at
once with DatabaseBehind (run `scoring db upgrade` at deploy time).
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scoring.batch import RunPlan
    from scoring.settings import Settings
    from scoring_airflow.partition_tasks import RunOptions

log = logging.getLogger(__name__)


def require_current(engine: Engine) -> None:
    """The database's revision check, without Alembic's INFO lines ("Context impl ...") in the task log."""
    from scoring.batch.store.engines import require_current as check_revision

    # Runs never migrate, so Alembic has nothing to say here that the check does not raise.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    check_revision(engine)


@contextmanager
def collector_spared() -> Iterator[None]:
    """Keep Python's cyclic collector off the objects that exist before the task's work starts.

    A task process holds Airflow's own objects (about 600,000: the SDK, FastAPI, pydantic, SQLAlchemy
    models), and every full collection walks all of them: in `airflow dags test` of the demo's day,
    ten full collections cost 3.7 s, most of them triggered by the scoring's allocations. Frozen, they
    are skipped; what the task itself allocates is still collected. Unfrozen after, so Airflow's
    collections and its objects are as they were.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def predictions_db(settings: Settings) -> Iterator[Engine]:
    """The `scoring_db` connection's engine (SCORING_DATABASE_URL if no connection is defined), disposed after."""
    from scoring_airflow.hook import ScoringDbHook

    engine = ScoringDbHook(fallback_url=settings.database_url).get_conn()
    try:
        yield engine
    finally:
        engine.dispose()


def scoring_run_id(dag_id: str, dag_run_id: str, try_number: int) -> str:
    """The scoring run's id, `<DAG run id>.<DAG id>.try<n>`, unique across DAGs and tries.

    The DAG id is needed: Airflow names the daily run of 11-29 and the hourly 23:00 run alike
    (`scheduled__2026-11-30T00:00:00+00:00`), and scoring_runs keys runs by id alone. The try number makes
    a cleared-and-rerun DAG run a new scoring run. An id too long for the column (Airflow allows run ids of
    250 characters; scoring_runs holds 100) keeps its start and gains a hash of the whole, so two long ids
    that differ only at the end stay two runs.
    """
    from scoring.batch.plan import MAX_RUN_ID_LENGTH

    whole, suffix = f"{dag_run_id}.{dag_id}", f".try{try_number}"
    if len(whole) + len(suffix) <= MAX_RUN_ID_LENGTH:
        return whole + suffix
    digest = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    keep = MAX_RUN_ID_LENGTH - len(suffix) - len(digest) - 1
    return f"{whole[:keep]}~{digest}{suffix}"


def plan(options: RunOptions, *, job: str, partition: str, run_id: str, last_try: bool = True) -> dict:
    """Fix the run: its files, its staging place, the verified model it will use and its id options.

    The database's revision is checked first, so a database that needs `scoring db upgrade` fails
    the run before any shard is scored. A refusal is recorded as a failed run unless a retry will follow.
    """
    from scoring import batch
    from scoring.batch.failures import planning_failures_recorded
    from scoring.model import BundleTrust, read_manifest
    from scoring_airflow.errors import ends_the_run

    settings = options.settings

    with predictions_db(settings) as engine:
        require_current(engine)
        # A run refused here (untrusted bundle, bad id field, missing partition) still leaves its failed row.
        with planning_failures_recorded(
            engine,
            job=job,
            partition=partition,
            run_id=run_id,
            final=lambda exc: ends_the_run(exc, last_try=last_try),
        ):
            # The trigger form may name another bundle: it must lie below a trusted root before a byte is read.
            manifest = read_manifest(settings.model_uri, BundleTrust.from_settings(settings))
            run_plan = batch.plan_run(
                job=job,
                partition=batch.PartitionKey.parse(partition),
                input_root=settings.input_root,
                dataset=settings.dataset,
                staging_root=settings.staging_root,
                run_id=run_id,
                model_uri=settings.model_uri,
                model=manifest,
                id_field=options.id_field,
                require_id=options.require_id,
                shard_rows=settings.shard_rows,
            )
    log.info(
        "run %s scores %d file(s) of %s in %d shard(s) of about %d rows with %s v%s",
        run_id,
        len(run_plan.files),
        partition,
        run_plan.shard_count(),
        settings.shard_rows,
        manifest.name,
        manifest.version,
    )
    return run_plan.to_dict()


def shard_indexes(plan: dict) -> list[int]:
    """One index per shard of the plan, for score_shard to map over (a plan without shards: one per file)."""
    return list(range(len(plan.get("shards") or plan["files"])))


def score_shard(settings: Settings, plan: dict, index: int, *, last_try: bool = True) -> dict:
    """Score one shard of the run (its files or row groups); the result is staged, nothing is published yet.

    A failure that will not be retried (the last try, or an error no retry fixes) is recorded as the
    run's failure with the shard's real reason, unless the run already has a record, then re-raised.
    """
    from scoring import batch
    from scoring.model import BundleTrust, Predictor, load_bundle
    from scoring_airflow.errors import ends_the_run

    run_plan = batch.RunPlan.from_dict(plan)
    try:
        predictor = Predictor(load_bundle(run_plan.model_uri, BundleTrust.from_settings(settings)))
        result = batch.score_shard(predictor, run_plan, index, chunk_rows=settings.chunk_rows)
    except Exception as exc:
        if ends_the_run(exc, last_try=last_try):
            record_failure(settings, run_plan, batch.shard_failure_reason(run_plan, index, exc))
        raise
    log.info(
        "shard %d (%s): %d scored, %d rejected", index, result.source_uri, result.scored_rows, result.rejected_rows
    )
    return result.to_dict()


def record_failure(settings: Settings, run_plan: RunPlan, reason: str, *, only_if_unrecorded: bool = True) -> None:
    """Record the run as failed from its plan alone (the bundle is not read again); never raises.

    Only if it has no record yet, by default: the first real reason stays, and a publish that
    recorded its own outcome keeps it.
    """
    from scoring import batch

    try:
        with predictions_db(settings) as engine:
            batch.record_failed_run(engine, run_plan, None, reason, only_if_unrecorded=only_if_unrecorded)
    except Exception as exc:  # the task's own error is what matters
        log.warning("run %s: its failure could not be recorded: %s", run_plan.run_id, exc)


def publish(settings: Settings, plan: dict, shard_results: list[dict], *, dag_id: str, outlet_events: Any) -> dict:
    """Publish the run's staged shards in one transaction, then announce it through the DAG's Asset events.

    A reject rate above the threshold fails the task, publishing nothing. The predictions Asset's event
    says which partition it was and how it went; a drifted partition also updates the drift Asset.
    """
    from scoring_airflow.assets import drift_alias, drift_asset, predictions_asset

    summary = publish_run(settings, plan, shard_results)
    outlet_events[predictions_asset(dag_id)].extra = asset_extra(summary)
    drift = drift_extra(summary, dag_id)
    if drift is not None:
        # Added to the alias only when something drifted: a clean partition emits no drift event.
        outlet_events[drift_alias(dag_id)].add(drift_asset(dag_id), extra=drift)
    return summary


def publish_run(settings: Settings, plan: dict, shard_results: list[dict]) -> dict:
    """Publish the run's staged shards in one transaction; its summary, logged as one line."""
    from scoring import batch
    from scoring.model import BundleTrust

    run_plan = batch.RunPlan.from_dict(plan)
    shards = this_runs_shards(run_plan, [batch.ShardResult.from_dict(result) for result in shard_results])
    with predictions_db(settings) as engine:
        require_current(engine)
        summary = batch.publish_planned_run(
            engine,
            run_plan,
            shards,
            BundleTrust.from_settings(settings),
            reject_threshold=settings.reject_threshold,
            drift_threshold=settings.drift_threshold,
        )
    log.info("%s", summary.line())
    if summary.drifted:
        # Drift never fails a run: it is said once, and the DAG emits the drift Asset event.
        log.warning(
            "partition %s drifted from the model's reference on %s (threshold %g); see partition_metrics",
            summary.partition_key,
            ", ".join(summary.drifted),
            settings.drift_threshold,
        )
    return summary.to_dict()


def this_runs_shards(run_plan: RunPlan, results: list) -> list:
    """The shard results this scoring run staged; leftovers of an earlier try are not this run's.

    When a cleared run plans fewer shards than before, Airflow marks the extra mapped tasks removed but
    still hands publish the results they returned on the earlier try, staged under that try's run id.
    """
    return [result for result in results if result.predictions_uri.startswith(run_plan.shard_prefix(result.shard))]


def drift_extra(summary: dict, dag_id: str) -> dict | None:
    """The drift Asset event's extra when the run's partition drifted (None: no event)."""
    if not summary.get("drifted"):
        return None
    return {
        "job": dag_id,
        "partition": summary["partition_key"],
        "features": list(summary["drifted"]),
        "scoring_run_id": summary["run_id"],
        "model_name": summary["model_name"],
        "model_version": summary["model_version"],
    }


def asset_extra(summary: dict) -> dict:
    """What a published run's Asset event carries, so a consumer can tell which partition it was and how it went."""
    return {
        "partition": summary["partition_key"],
        "input_rows": summary["input_rows"],
        "scored_rows": summary["scored_rows"],
        "rejected_rows": summary["rejected_rows"],
        "model_name": summary["model_name"],
        "model_version": summary["model_version"],
        "scoring_run_id": summary["run_id"],
    }


def finish_run(settings: Settings, plan: dict, dag_run_id: str) -> str:
    """Record the run as failed if it has no record yet (publish was killed or never ran); remove its staging.

    The record is built from the plan alone: reading the bundle again could fail (S3 down, bundle
    replaced) and cost the run its record.
    """
    from scoring import batch

    run_plan = batch.RunPlan.from_dict(plan)
    reason = (
        f"the run ended without a publish outcome: a task failed or was stopped before recording why; "
        f"see the task logs of Airflow DAG run {dag_run_id}"
    )
    record_failure(settings, run_plan, reason)
    removed = batch.remove_run_staging(run_plan)
    return f"removed {removed} staged file(s) of run {run_plan.run_id}"


def cleanup(settings: Settings, plan: dict | None, dag_run_id: str) -> str:
    """Finish the run if it was planned, then sweep stale staging left by killed runs; one line of what went."""
    from scoring.batch.staging import sweep_staging

    lines = [finish_run(settings, plan, dag_run_id)] if plan else []
    swept = sweep_staging(settings.staging_root, max_age_hours=settings.staging_max_age_hours)
    lines.append(swept.line(settings.staging_root, settings.staging_max_age_hours))
    for line in lines:
        log.info("%s", line)
    return "; ".join(lines)
