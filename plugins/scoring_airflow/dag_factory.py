"""One factory for the scoring DAGs: hourly and daily differ only in their timetable.

Shape of a run: choose the partition -> wait for it -> plan -> score shards (dynamic task
mapping, so Celery or Kubernetes workers share them) -> publish atomically -> emit an Asset,
then cleanup whatever the outcome: remove the run's staging, record a run that ended without a
publish outcome as failed, and sweep stale staging left by killed runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import (
    Asset,
    CronDataIntervalTimetable,
    Param,
    PokeReturnValue,
    dag,
    get_current_context,
    task,
    teardown,
)

from scoring.batch.partitions import PARTITION_KEY_PATTERN
from scoring_airflow import run_tasks
from scoring_airflow.errors import task_errors

CRON = {"hourly": "0 * * * *", "daily": "0 0 * * *"}

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def predictions_asset(dag_id: str) -> Asset:
    """The Asset a successful publish updates; downstream DAGs can be scheduled on it."""
    return Asset(name=f"{dag_id}.predictions", uri=f"scoring://predictions/{dag_id}")


def _settings():
    """Settings from the worker's environment, with the trigger form's overrides applied."""
    return run_tasks.settings_for(get_current_context()["params"])


def scoring_dag(*, dag_id: str, cadence: str, doc_md: str | None, start_date: datetime | None = None):
    """Build the scoring DAG for `cadence` ('hourly' or 'daily'); a run scores the period starting at its logical date."""
    # A cron string alone gives data_interval_start == data_interval_end in Airflow 3; the interval
    # timetable gives each scheduled run a real hour (or day), run once it has ended, with its logical
    # date at its start. Partitions follow the logical date (run_tasks.resolve_partition), so a manual
    # or backfill run at 03:00 scores exactly what the scheduled 03:00 run scores.
    timetable = CronDataIntervalTimetable(CRON[cadence], timezone="UTC")
    asset = predictions_asset(dag_id)

    @dag(
        dag_id=dag_id,
        schedule=timetable,
        start_date=start_date or datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=4,
        default_args=DEFAULT_ARGS,
        tags=["scoring", "batch", cadence],
        doc_md=doc_md,
        params={
            "partition": Param(
                None,
                type=["null", "string"],
                pattern=PARTITION_KEY_PATTERN,
                title="Partition",
                description="Score this partition instead of the run's data interval: "
                "2026-01-01T03 (an hour) or 2026-01-01 (a day). Leave empty for the interval.",
            ),
            "model_uri": Param(
                None,
                type=["null", "string"],
                title="Model bundle",
                description="Bundle directory or s3:// prefix; empty means SCORING_MODEL_URI.",
            ),
            "reject_threshold": Param(
                None,
                type=["null", "number"],
                minimum=0,
                maximum=1,
                title="Reject threshold",
                description="Fail the run above this fraction of rejected rows; empty means SCORING_REJECT_THRESHOLD.",
            ),
        },
    )
    def scoring():
        @task
        def choose_partition() -> str:
            context = get_current_context()
            with task_errors():
                return run_tasks.resolve_partition(
                    context["params"].get("partition"),
                    context.get("logical_date"),
                    context["dag_run"].run_after,
                    hourly=cadence == "hourly",
                )

        @task.sensor(poke_interval=60, timeout=6 * 3600, mode="reschedule")
        def wait_for_partition(partition: str) -> PokeReturnValue:
            return PokeReturnValue(is_done=run_tasks.partition_is_ready(_settings(), partition), xcom_value=partition)

        @task
        def plan(partition: str) -> dict:
            context = get_current_context()
            # The try number makes a cleared-and-rerun DAG run a new scoring run, never a clash.
            run_id = f"{context['run_id']}.try{context['ti'].try_number}"
            with task_errors():
                return run_tasks.plan(_settings(), job=dag_id, partition=partition, run_id=run_id)

        @task
        def list_shards(plan: dict) -> list[int]:
            return list(range(len(plan["files"])))

        @task(max_active_tis_per_dagrun=8)
        def score_shard(plan: dict, index: int) -> dict:
            ti = get_current_context()["ti"]
            with task_errors():
                return run_tasks.score_shard(_settings(), plan, index, last_try=ti.try_number > ti.max_tries)

        @task(outlets=[asset])
        def publish(plan: dict, shard_results: list[dict]) -> dict:
            # One slice fetches every shard's result in a single request; list() fetches them one by one
            # and stops on a lookup past the last shard, which the worker logs as "ERROR XCom not found".
            with task_errors():
                return run_tasks.publish(_settings(), plan, shard_results[:])

        # A teardown: it runs once publish is done whatever its outcome (all done, as no setup task is
        # declared), and unlike a plain all_done task it does not decide the DAG run's state, so a failed
        # publish still fails the run.
        @teardown
        @task
        def cleanup() -> str:
            context = get_current_context()
            # Pulled, not passed: when planning failed there is no plan, and the sweep still runs.
            return run_tasks.cleanup(_settings(), context["ti"].xcom_pull(task_ids="plan"), context["run_id"])

        # TaskFlow passes XComArgs, resolved to the annotated values when the tasks run; mypy sees the call.
        partition = wait_for_partition(choose_partition())  # type: ignore[arg-type]
        planned = plan(partition)  # type: ignore[arg-type]
        shards = score_shard.partial(plan=planned).expand(index=list_shards(planned))  # type: ignore[arg-type]
        publish(planned, shards) >> cleanup()  # type: ignore[arg-type]

    return scoring()
