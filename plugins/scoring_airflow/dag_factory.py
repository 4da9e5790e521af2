"""One factory for the scoring DAGs: hourly and daily differ only in their timetable.

Shape of a run: choose the partition -> wait for it -> plan -> score shards (dynamic task
mapping, so Celery or Kubernetes workers share them) -> publish atomically -> emit an Asset,
then cleanup whatever the outcome: remove the run's staging, record a run that ended without a
publish outcome as failed, and sweep stale staging left by killed runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import (
    CronDataIntervalTimetable,
    Param,
    PokeReturnValue,
    dag,
    get_current_context,
    task,
    teardown,
)

from scoring.batch.options import MAX_DATASET_LENGTH, MAX_ID_FIELD_LENGTH, PLAIN_NAME_PATTERN
from scoring.partition_keys import key_pattern
from scoring_airflow import partition_tasks, run_tasks
from scoring_airflow.assets import drift_alias, predictions_asset
from scoring_airflow.errors import is_last_try, task_errors
from scoring_airflow.params import deployed_settings, drift_threshold_param

CRON = {"hourly": "0 * * * *", "daily": "0 0 * * *"}
PERIOD = {"hourly": "hour", "daily": "day"}
EXAMPLE = {"hourly": "2026-01-01T03", "daily": "2026-01-01"}
# How long a run waits for its partition before it fails, naming it. Shorter than max_active_runs
# periods, so runs waiting for data that never comes cannot hold every slot and block runs whose data is
# there. Failing (not soft_fail's skip, which leaves a green run) keeps a missing partition visible and
# alertable; clearing the task looks again once the data is there.
WAIT = {"hourly": timedelta(hours=3), "daily": timedelta(days=1)}
POKE_INTERVAL = {"hourly": timedelta(minutes=5), "daily": timedelta(minutes=15)}
MAX_ACTIVE_RUNS = 4

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _settings():
    """Settings from the worker's environment, with the trigger form's overrides applied."""
    return partition_tasks.settings_for(get_current_context()["params"])


def task_docs(cadence: str) -> dict[str, str]:
    """Each task's doc_md (the task's Docs tab): what it does, what it reads and writes, what its failure means."""
    period = PERIOD[cadence]
    return {
        "choose_partition": f"""Decides which {period} this run scores: the *Partition* param if given, else the
{period} starting at the run's logical date. Reads nothing, writes the partition key to XCom.
**Fails at once** (no retry) when the Partition is not a valid {period} key, when a backfill
carries one (a backfill scores each run's own {period}), when *Dataset* or *Id field* is not a
plain name, or when a `SCORING_*` setting of the deployment is malformed (it names the setting).""",
        "wait_for_partition": f"""Waits for the partition's folder under the input root to hold a `.parquet` or
`.csv` file, looking every {partition_tasks.describe_span(POKE_INTERVAL[cadence])} without holding a worker slot, and logs
where it looks. Reads the input root only. **Fails** (no retry) when no data arrived within
{partition_tasks.describe_span(WAIT[cadence])}, naming the partition and the folder; clear the task to look again.""",
        "plan": """Fixes the run: checks the predictions database is at this code's revision, reads and
verifies the model bundle (it must lie below a trusted root) and lists the partition's files. Writes
the plan to XCom; a run refused here (on its last try, or at once for what a retry cannot fix) is
recorded as a failed run in `scoring_runs`. **Fails at once** for a database that needs
`scoring db upgrade`, a missing or untrusted bundle, a bad job name, or an *Id field* that is one
of the model's inputs; retries when the database is unreachable.""",
        "list_shards": """Turns the plan's shards into one index per shard, so that `score_shard` maps
over them. A shard is about *Shard rows* rows: small files grouped, a large Parquet file split at
its row groups. Reads the plan from XCom and writes nothing else. Fails only if the plan is
missing, which means `plan` itself failed; look there.""",
        "score_shard": """Scores one shard of the partition (its files, or row groups of a file) with the
planned model, in bounded chunks, and stages its predictions, rejected rows and monitoring
statistics under the staging root; nothing is published yet. Rows are named by the id column, or in a file without it by `<file>:<row>`. **Fails at
once** for an unreadable file, a file without the id column when the run requires one, or a changed
bundle; other errors retry. A failure
that will not be retried is recorded in `scoring_runs` with the shard and its reason.""",
        "publish": """Publishes every staged shard in ONE transaction: deletes the partition's old rows
and inserts the new ones into `predictions`, `rejected_records` and `partition_metrics`, and records
the run in `scoring_runs`. Then updates the predictions Asset, whose event carries the partition,
the row counts, the model and the scoring run id. When a feature or the prediction drifted past
the *Drift threshold* it logs one warning naming them and updates the drift Asset
(`scoring://drift/<dag_id>`) with the partition and features; drift never fails the run. **Fails
at once**, publishing nothing, when the reject rate passes the threshold; retries when the
database refuses the transaction.""",
        "cleanup": """A teardown: runs after publish whatever its outcome. Removes this run's staged
files, records a run that ended without a publish outcome as failed in `scoring_runs`, and sweeps
staging left by killed runs. It does not decide the run's state; if it fails, staging may remain
until the next sweep.""",
    }


def scoring_dag(*, dag_id: str, cadence: str, doc_md: str | None, start_date: datetime | None = None):
    """Build the scoring DAG for `cadence` ('hourly' or 'daily'); a run scores the period starting at its logical date."""

    # A cron string alone gives data_interval_start == data_interval_end in Airflow 3; the interval
    # timetable gives each scheduled run a real hour (or day), run once it has ended, with its logical
    # date at its start. Partitions follow the logical date (partition_tasks.resolve_partition), so a manual
    # or backfill run at 03:00 scores exactly what the scheduled 03:00 run scores.
    timetable = CronDataIntervalTimetable(CRON[cadence], timezone="UTC")
    asset = predictions_asset(dag_id)
    drifted_alias = drift_alias(dag_id)
    period, example = PERIOD[cadence], EXAMPLE[cadence]
    docs = task_docs(cadence)
    # The form shows the values a run would use, read as the deployment's workers read them. Scheduled runs
    # take these defaults from the worker's own parse.
    deployed = deployed_settings()

    @dag(
        dag_id=dag_id,
        description=f"Scores each {period} of rides into the predictions table, exactly once per {period}.",
        schedule=timetable,
        start_date=start_date or datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=MAX_ACTIVE_RUNS,
        default_args=DEFAULT_ARGS,
        tags=["scoring", "batch", cadence],
        doc_md=doc_md,
        params={
            "partition": Param(
                None,
                type=["null", "string"],
                pattern=key_pattern(hourly=cadence == "hourly"),
                title="Partition",
                description=f"Score this {period} instead of the run's own: {example}. Leave empty to score "
                f"the {period} starting at the run's logical date; always empty for a backfill.",
            ),
            "model_uri": Param(
                deployed.model_uri if deployed else None,
                type=["null", "string"],
                # An S3 key's own limit; longer is never a real bundle, only a very long error line.
                maxLength=1024,
                title="Model bundle",
                description="Bundle directory or s3:// prefix, below a trusted root. The default is this "
                "deployment's SCORING_MODEL_URI; empty means that setting too.",
            ),
            "reject_threshold": Param(
                deployed.reject_threshold if deployed else None,
                type=["null", "number"],
                minimum=0,
                maximum=1,
                title="Reject threshold",
                description="Fail the run, publishing nothing, when more than this fraction of its rows is "
                "rejected (0.01 is 1%). The default is this deployment's SCORING_REJECT_THRESHOLD; empty "
                "means that setting too.",
            ),
            "dataset": Param(
                deployed.dataset if deployed else None,
                type=["null", "string"],
                pattern=PLAIN_NAME_PATTERN,
                maxLength=MAX_DATASET_LENGTH,
                title="Dataset",
                description="The folder under the input root holding this dataset's partitions, e.g. "
                "green_taxi for {input_root}/green_taxi/dt=.../: one folder name, no '/' or '..'. The "
                "default is this deployment's SCORING_DATASET; empty means that setting too.",
            ),
            "id_field": Param(
                None,
                type=["null", "string"],
                pattern=PLAIN_NAME_PATTERN,
                maxLength=MAX_ID_FIELD_LENGTH,
                title="Id field",
                description="The column that names each record, for this run, e.g. trip_id. Empty means "
                "the bundle's id field. A file without the column has its rows named <file>:<row> "
                "(stable, so a rerun replaces them), unless Require id is on.",
            ),
            "require_id": Param(
                False,
                type="boolean",
                title="Require id",
                description="Fail the run on a file without the id column instead of naming its rows by "
                "file and row. The bundle's id_required turns this on for every run.",
            ),
            "shard_rows": Param(
                deployed.shard_rows if deployed else None,
                type=["null", "integer"],
                minimum=1,
                title="Shard rows",
                description="About how many rows one score_shard task scores: small files are grouped, a "
                "large Parquet file is split at its row groups (a CSV file stays whole). The default is "
                "this deployment's SCORING_SHARD_ROWS; empty means that setting too.",
            ),
            "drift_threshold": drift_threshold_param(deployed),
        },
    )
    def scoring():
        # Every task body runs inside task_errors(): an error no retry can fix fails the task at once in one line.
        @task(doc_md=docs["choose_partition"])
        def choose_partition() -> str:
            with task_errors():
                return partition_tasks.choose_partition(get_current_context(), hourly=cadence == "hourly")

        # Airflow's own timeout only backs up the task's, which fails with the partition's name one poke earlier.
        @task.sensor(
            poke_interval=POKE_INTERVAL[cadence].total_seconds(),
            timeout=(WAIT[cadence] + POKE_INTERVAL[cadence]).total_seconds(),
            mode="reschedule",
            doc_md=docs["wait_for_partition"],
        )
        def wait_for_partition(partition: str) -> PokeReturnValue:
            # AirflowSensorTimeout is no scoring error: it passes through, and Airflow does not retry it.
            with task_errors():
                ready = partition_tasks.poke(get_current_context(), partition, wait=WAIT[cadence])
            return PokeReturnValue(is_done=ready, xcom_value=partition)

        @task(doc_md=docs["plan"])
        def plan(partition: str) -> dict:
            context = get_current_context()
            with task_errors(), run_tasks.collector_spared():
                return run_tasks.plan(
                    partition_tasks.run_options(context["params"]),
                    job=dag_id,
                    partition=partition,
                    run_id=run_tasks.scoring_run_id(dag_id, context["run_id"], context["ti"].try_number),
                    last_try=is_last_try(context["ti"]),
                )

        @task(doc_md=docs["list_shards"])
        def list_shards(plan: dict) -> list[int]:
            with task_errors():
                return run_tasks.shard_indexes(plan)

        @task(max_active_tis_per_dagrun=8, doc_md=docs["score_shard"])
        def score_shard(plan: dict, index: int) -> dict:
            ti = get_current_context()["ti"]
            with task_errors(), run_tasks.collector_spared():
                return run_tasks.score_shard(_settings(), plan, index, last_try=is_last_try(ti))

        # The summary is logged once, as one line, by run_tasks.publish: not again as "Returned value was".
        @task(outlets=[asset, drifted_alias], show_return_value_in_logs=False, doc_md=docs["publish"])
        def publish(plan: dict, shard_results: list[dict]) -> dict:
            events = get_current_context()["outlet_events"]
            # One slice fetches every shard's result in a single request; list() fetches them one by one
            # and stops on a lookup past the last shard, which the worker logs as "ERROR XCom not found".
            with task_errors(), run_tasks.collector_spared():
                return run_tasks.publish(_settings(), plan, shard_results[:], dag_id=dag_id, outlet_events=events)

        # A teardown: it runs once publish is done whatever its outcome (all done, as no setup task is
        # declared), and unlike a plain all_done task it does not decide the DAG run's state, so a failed
        # publish still fails the run.
        @teardown
        @task(show_return_value_in_logs=False, doc_md=docs["cleanup"])
        def cleanup() -> str:
            context = get_current_context()
            # Pulled, not passed: when planning failed there is no plan, and the sweep still runs.
            with task_errors():
                return run_tasks.cleanup(_settings(), context["ti"].xcom_pull(task_ids="plan"), context["run_id"])

        # TaskFlow passes XComArgs, resolved to the annotated values when the tasks run; mypy sees the call.
        partition = wait_for_partition(choose_partition())  # type: ignore[arg-type]
        planned = plan(partition)  # type: ignore[arg-type]
        shards = score_shard.partial(plan=planned).expand(index=list_shards(planned))  # type: ignore[arg-type]
        publish(planned, shards) >> cleanup()  # type: ignore[arg-type]

    return scoring()
