"""The scoring DAGs: they import cleanly, carry their settings, and dag.test() runs publish real rows."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pendulum
import pytest
import sqlalchemy as sa

from scoring.batch.partitions import PartitionKey
from tests.conftest import make_rides
from tests.dags.conftest import ROOT

DAG_IDS = ["score_rides_daily", "score_rides_hourly"]


@pytest.fixture
def dagbag():
    """Parsed fresh for each test: dag.test() merges run_conf into the DAG object's params.

    Parsing reads the deployment's settings (the form's defaults), so a test that sets SCORING_* asks for
    this fixture after scoring_env, as a deployment's environment is there before its DAGs are parsed.
    """
    from airflow.models import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    # The scoring DAGs, beside monitoring's traffic DAG (tested in test_monitor_traffic*).
    assert sorted(dagbag.dag_ids) == sorted([*DAG_IDS, "monitor_traffic"])


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dags_have_owner_retries_tags_and_the_expected_shape(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.dag_id == Path(dag.fileloc).stem
    assert {"scoring", "batch"} <= set(dag.tags)
    assert dag.doc_md and "exactly once" in dag.doc_md and dag.description
    assert set(dag.params) == {
        "partition",
        "model_uri",
        "reject_threshold",
        "dataset",
        "id_field",
        "require_id",
        "shard_rows",
        "drift_threshold",
    }
    for task in dag.tasks:
        assert task.owner == "ml-platform"
        assert task.retries == 3 and task.retry_exponential_backoff
    assert [t.task_id for t in dag.topological_sort()] == [
        "choose_partition",
        "wait_for_partition",
        "plan",
        "list_shards",
        "score_shard",
        "publish",
        "cleanup",
    ]
    assert dag.get_task("wait_for_partition").mode == "reschedule"
    # cleanup runs after publish whatever its outcome, and as a teardown does not decide the run's state
    cleanup = dag.get_task("cleanup")
    assert cleanup.is_teardown and not cleanup.on_failure_fail_dagrun
    assert cleanup.trigger_rule == "all_done_setup_success" and cleanup.upstream_task_ids == {"publish"}
    assert not any(t.is_setup for t in dag.tasks)  # so all_done_setup_success means all done
    outlets = dag.get_task("publish").outlets
    assert [a.uri for a in outlets if hasattr(a, "uri")] == [f"scoring://predictions/{dag_id}"]
    # The drift Asset is reached through an alias, so only a partition that drifted emits its event
    assert [a.name for a in outlets if not hasattr(a, "uri")] == [f"{dag_id}.drift_alias"]


@pytest.mark.parametrize(
    ("dag_id", "earliest", "first_partition"),
    [
        ("score_rides_hourly", datetime(2026, 1, 1, 3, tzinfo=timezone.utc), "2026-01-01T03"),
        ("score_rides_daily", datetime(2026, 1, 1, tzinfo=timezone.utc), "2026-01-01"),
    ],
)
def test_scheduled_runs_score_the_interval_that_just_closed(dagbag, dag_id, earliest, first_partition):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dagbag.dags[dag_id].timetable)
    restriction = TimeRestriction(earliest=pendulum.instance(earliest), latest=None, catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval, restriction=restriction)
    for info in (first, second):
        # A real interval (not start == end), run once it has closed, with the logical date at its start
        assert info.data_interval.start < info.data_interval.end == info.run_after
        assert info.logical_date == info.data_interval.start
    assert second.data_interval.start == first.data_interval.end
    # And the partition the run scores is exactly that interval
    partition = PartitionKey.for_run(first.logical_date, first.run_after, hourly=dag_id.endswith("hourly"))
    assert str(partition) == first_partition


@pytest.fixture
def scoring_env(monkeypatch, tmp_path, demo_bundle_dir, pg_schema_url):
    from scoring.batch.store.engines import make_engine, upgrade

    # Migrated as a deploy does (`scoring db upgrade`): runs only check the revision
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    engine.dispose()
    root = tmp_path / "input"
    monkeypatch.setenv("SCORING_INPUT_ROOT", str(root))
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "staging"))
    monkeypatch.setenv("AIRFLOW_CONN_SCORING_DB", pg_schema_url)
    return root


def _staged_files(scoring_env: Path) -> list[Path]:
    return [p for p in (scoring_env.parent / "staging").rglob("*") if p.is_file()]


def _runs(url: str) -> pd.DataFrame:
    from scoring.batch.store.engines import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(sa.text("SELECT run_id, status, message FROM scoring_runs ORDER BY finished_at"))
            .mappings()
            .all()
        )
    engine.dispose()
    return frame


def _state(run, task_id: str) -> str:
    return next(ti.state for ti in run.get_task_instances() if ti.task_id == task_id)


def _stored(url: str) -> pd.DataFrame:
    from scoring.batch.store.engines import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(sa.text("SELECT job, partition_key, record_id, run_id FROM predictions")).mappings().all()
        )
    engine.dispose()
    return frame


@pytest.mark.postgres
@pytest.mark.airflow
def test_dag_test_run_publishes_the_closed_hour_once_even_when_rerun(airflow_db, scoring_env, dagbag, pg_schema_url):
    from scoring.demo.synthetic import write_partition

    # Given the 03:00 hour of rides, in three files, and the Shard rows param at 300 rows
    write_partition(str(scoring_env), "rides", PartitionKey.parse("2026-01-01T03"), make_rides(900), files=3)
    dag = dagbag.dags["score_rides_hourly"]
    # When the DAG runs for logical date 03:00 (the scheduler's slot for that hour), twice
    for _ in range(2):
        run = dag.test(logical_date=datetime(2026, 1, 1, 3, tzinfo=timezone.utc), run_conf={"shard_rows": 300})
        assert run.state == "success"
    # Then the hour is stored once, with three shards scored by mapped tasks
    stored = _stored(pg_schema_url)
    assert len(stored) == 900 and stored["record_id"].is_unique
    assert set(stored["partition_key"]) == {"2026-01-01T03"} and set(stored["job"]) == {"score_rides_hourly"}
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "score_shard"]
    assert sorted(ti.map_index for ti in mapped) == [0, 1, 2]
    # And the cleanup task removed both runs' staging
    assert _state(run, "cleanup") == "success" and _staged_files(scoring_env) == []


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_database_never_migrated_fails_the_run_at_plan_without_retries(
    airflow_db, monkeypatch, tmp_path, demo_bundle_dir, pg_schema_url
):
    from airflow.models import DagBag

    from scoring.demo.synthetic import write_partition

    # Given an hour of rides and a predictions database nobody ran `scoring db upgrade` on
    monkeypatch.setenv("SCORING_INPUT_ROOT", str(tmp_path / "input"))
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "staging"))
    monkeypatch.setenv("AIRFLOW_CONN_SCORING_DB", pg_schema_url)
    write_partition(str(tmp_path / "input"), "rides", PartitionKey.parse("2026-01-01T06"), make_rides(10), files=1)
    # When the DAG runs for that hour
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["score_rides_hourly"]
    run = dag.test(logical_date=datetime(2026, 1, 1, 6, tzinfo=timezone.utc))
    # Then plan fails at once (no retry runs the upgrade), nothing is scored, and no table was created
    assert run.state == "failed"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan")
    assert plan.state == "failed" and plan.try_number == 1
    assert _state(run, "publish") == "upstream_failed"
    engine = sa.create_engine(pg_schema_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("params", "model_uri", "threshold"),
    [
        ({}, "env-model", 0.01),
        ({"partition": "2026-01-01T03", "model_uri": None, "reject_threshold": None}, "env-model", 0.01),
        ({"model_uri": "", "reject_threshold": 0}, "env-model", 0.0),
        ({"model_uri": "other-model", "reject_threshold": 0.2}, "other-model", 0.2),
    ],
)
def test_trigger_params_become_settings_overrides_in_one_place(monkeypatch, params, model_uri, threshold):
    from scoring_airflow.partition_tasks import settings_for

    monkeypatch.setenv("SCORING_MODEL_URI", "env-model")
    monkeypatch.setenv("SCORING_REJECT_THRESHOLD", "0.01")
    settings = settings_for(params)
    assert (settings.model_uri, settings.reject_threshold) == (model_uri, threshold)


@pytest.mark.postgres
@pytest.mark.airflow
def test_manual_partition_param_overrides_the_interval(airflow_db, scoring_env, dagbag, pg_schema_url):
    from scoring.demo.synthetic import write_partition

    write_partition(str(scoring_env), "rides", PartitionKey.parse("2026-01-01T07"), make_rides(100), files=1)
    dag = dagbag.dags["score_rides_hourly"]
    run = dag.test(logical_date=datetime(2026, 1, 1, 12, tzinfo=timezone.utc), run_conf={"partition": "2026-01-01T07"})
    assert run.state == "success"
    assert set(_stored(pg_schema_url)["partition_key"]) == {"2026-01-01T07"}


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_published_run_logs_its_summary_once_and_its_asset_event_says_what_it_holds(
    airflow_db, scoring_env, dagbag, pg_schema_url, caplog, capfd
):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from scoring.demo.synthetic import write_partition

    # Given an hour of rides, two of them invalid
    rides = make_rides(300)
    rides.loc[:1, "trip_distance"] = -1.0
    write_partition(str(scoring_env), "rides", PartitionKey.parse("2026-01-01T10"), rides, files=2)
    # When the DAG runs for that hour
    with caplog.at_level(logging.INFO):
        run = dagbag.dags["score_rides_hourly"].test(logical_date=datetime(2026, 1, 1, 10, tzinfo=timezone.utc))
    assert run.state == "success"
    # Then the publish summary is logged once (one log record; the console may render that same record
    # again), without Alembic's chatter from the revision check
    summary = f"score_rides_hourly 2026-01-01T10: 298 scored, 2 rejected of 300 rows with ride_duration v1 (run {run.run_id}.score_rides_hourly.try1)"
    # (matched on the summary's own prefix: the run id holds a timestamp whose digits may contain "298")
    records = [r.getMessage() for r in caplog.records if r.getMessage().startswith("score_rides_hourly 2026-01-01T10:")]
    assert records == [summary], records
    # And the task runner's own "Done. Returned value was: ..." line, which repeated it, is gone
    # (it reaches the console, not caplog)
    # (publish returns the summary as a dict, so that line would show its fields, not the one-line text)
    assert dagbag.dags["score_rides_hourly"].get_task("publish").show_return_value_in_logs is False
    console = capfd.readouterr().out.splitlines()
    returned = [line for line in console if "Returned value was" in line]
    # (plan's line holds the run id too, a shard's its row counts: only the summary holds both)
    assert not [line for line in returned if "scored_rows" in line and run.run_id in line], returned
    assert not [r for r in caplog.records if r.name.startswith("alembic") and r.levelno < logging.WARNING]
    # And the Asset event names the partition, the counts, the model and the scoring run
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == "scoring://predictions/score_rides_hourly", AssetEvent.source_run_id == run.run_id)
        ).all()
        extras = [event.extra for event in events]
    assert extras == [
        {
            "partition": "2026-01-01T10",
            "input_rows": 300,
            "scored_rows": 298,
            "rejected_rows": 2,
            "model_name": "ride_duration",
            "model_version": "1",
            "scoring_run_id": f"{run.run_id}.score_rides_hourly.try1",
        }
    ]


@pytest.mark.postgres
@pytest.mark.airflow
def test_run_above_reject_threshold_fails_and_publishes_nothing(airflow_db, scoring_env, dagbag, pg_schema_url):
    from scoring.demo.synthetic import write_partition

    rides = make_rides(100)
    rides.loc[:9, "trip_distance"] = -1.0
    write_partition(str(scoring_env), "rides", PartitionKey.parse("2026-01-01T08"), rides, files=1)
    dag = dagbag.dags["score_rides_hourly"]
    run = dag.test(logical_date=datetime(2026, 1, 1, 8, tzinfo=timezone.utc))
    assert run.state == "failed"
    publish = next(ti for ti in run.get_task_instances() if ti.task_id == "publish")
    assert publish.state == "failed" and publish.try_number == 1  # no retries: the data is wrong
    assert _stored(pg_schema_url).empty
    # And cleanup still ran: no staging left, the failed run's own record (with its reason) kept
    assert _state(run, "cleanup") == "success" and _staged_files(scoring_env) == []
    history = _runs(pg_schema_url)
    assert history["status"].tolist() == ["failed"] and "above the threshold" in history["message"].iloc[0]


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_failed_shard_fails_the_run_and_cleanup_records_it(airflow_db, scoring_env, dagbag, pg_schema_url):
    from scoring.demo.synthetic import write_partition

    # Given an hour with one good file and one that is not Parquet
    key = PartitionKey.parse("2026-01-01T09")
    write_partition(str(scoring_env), "rides", key, make_rides(100), files=1)
    (scoring_env / "rides" / "dt=2026-01-01" / "hour=09" / "part-00001.parquet").write_bytes(b"PAR1 nope")
    # When the DAG runs for that hour with shards small enough to keep the files apart
    run = dag_run = dagbag.dags["score_rides_hourly"].test(
        logical_date=datetime(2026, 1, 1, 9, tzinfo=timezone.utc), run_conf={"shard_rows": 50}
    )
    # Then the run fails, publish never ran, cleanup removed the good shard's staging, and the failed run's
    # record says which shard failed and why (not a generic "a shard failed")
    assert dag_run.state == "failed" and _state(run, "publish") == "upstream_failed"
    assert _state(run, "cleanup") == "success" and _staged_files(scoring_env) == []
    history = _runs(pg_schema_url)
    assert history["status"].tolist() == ["failed"]
    assert history["message"].iloc[0].startswith("shard 1 (")
    assert "part-00001.parquet is not a readable Parquet file" in history["message"].iloc[0]
    assert _stored(pg_schema_url).empty


@pytest.mark.postgres
@pytest.mark.airflow
def test_cleanup_records_a_failed_run_from_its_plan_when_the_bundle_is_gone(
    airflow_db, scoring_env, demo_bundle, demo_bundle_dir, pg_schema_url, tmp_path
):
    import shutil

    from scoring import batch
    from scoring.demo.synthetic import write_partition
    from scoring.settings import Settings
    from scoring_airflow.run_tasks import finish_run

    # Given a planned run whose bundle has since been deleted (or replaced, or lost its signature)

    bundle = tmp_path / "models" / "ride_duration" / "1"
    shutil.copytree(demo_bundle_dir, bundle)
    manifest = demo_bundle.manifest
    key = PartitionKey.parse("2026-01-01T11")
    write_partition(str(scoring_env), "rides", key, make_rides(10), files=1)
    plan = batch.plan_run(
        job="score_rides_hourly",
        partition=key,
        input_root=str(scoring_env),
        dataset="rides",
        staging_root=str(tmp_path / "staging"),
        run_id="manual__gone.try1",
        model_uri=str(bundle),
        model=manifest,
    )
    shutil.rmtree(bundle)
    settings = Settings.from_env().with_overrides(model_uri=str(bundle))
    # When cleanup finishes the run
    finish_run(settings, plan.to_dict(), "manual__gone")
    # Then the run is recorded as failed with the planned model, without reading the bundle again
    from scoring.batch.store.engines import make_engine

    engine = make_engine(pg_schema_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, model_name, model_version, model_sha256 FROM scoring_runs")).one()
    engine.dispose()
    assert tuple(row) == ("failed", manifest.name, manifest.version, manifest.sha256)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        ("StagingGone", False),
        ("BundleChanged", False),
        ("RejectThresholdExceeded", False),
        ("InvalidInput", False),
        ("InvalidPartitionKey", False),
        ("InvalidJobName", False),
        ("UnreadableInput", False),
        ("ModelLoadError", False),
        ("DatabaseBehind", False),  # waits for `scoring db upgrade`, which no retry runs
        ("PublishError", True),  # a database that refused the transaction may take it next time
        ("DatabaseUnavailable", True),  # a database that is down may be back on the next try
        ("BundleUnreachable", True),  # the network, S3 throttling or a 5xx: a later attempt may read it
        ("PartitionNotFound", True),
        ("ConfigError", False),
        ("UnknownRecipe", False),
        ("BundleIntegrityError", False),
        ("UntrustedBundle", False),
        ("MalformedEvent", True),  # a stream error: no task raises it, so it keeps the default
    ],
)
def test_not_retryable_errors_fail_the_task_at_once(error, retried):
    from airflow.sdk.exceptions import AirflowFailException

    import scoring.errors
    from scoring_airflow.errors import task_errors

    # Given a scoring error raised inside a task
    exc = getattr(scoring.errors, error)("boom")
    # When it leaves task_errors
    with pytest.raises(Exception) as raised, task_errors():
        raise exc
    # Then a retry-worthy error passes through as itself (Airflow retries it), the rest fail at once
    if retried:
        assert raised.value is exc
    else:
        # one line the user caused, no scoring traceback chained under it
        assert isinstance(raised.value, AirflowFailException) and str(raised.value) == f"{error}: boom"
        assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_every_scoring_error_type_has_a_decided_retry_policy():
    # A new error type must be placed in the table above, or it would quietly get three retries
    import inspect

    import scoring.errors

    decided = {name for mark in test_not_retryable_errors_fail_the_task_at_once.pytestmark for name, _ in mark.args[1]}
    defined = {
        name
        for name, value in inspect.getmembers(scoring.errors, inspect.isclass)
        if issubclass(value, scoring.errors.ScoringError) and value is not scoring.errors.ScoringError
    }
    assert defined <= decided, f"no retry policy decided for {sorted(defined - decided)}"


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_malformed_setting_fails_the_first_task_at_once_in_one_line(
    airflow_db, scoring_env, monkeypatch, caplog, capfd
):
    from airflow.models import DagBag

    # Given a deployment whose reject threshold is written as a percentage (the DAGs still parse)
    monkeypatch.setenv("SCORING_REJECT_THRESHOLD", "1%")
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["score_rides_hourly"]
    # When a run starts
    with caplog.at_level(logging.INFO):
        run = dag.test(logical_date=datetime(2026, 1, 1, 5, tzinfo=timezone.utc))
    # Then its first task fails on its first try, before any wait, and nothing after it runs
    assert run.state == "failed"
    first = next(ti for ti in run.get_task_instances() if ti.task_id == "choose_partition")
    assert first.state == "failed" and first.try_number == 1
    assert _state(run, "wait_for_partition") == "upstream_failed"
    # And the reason is one ConfigError line naming the setting
    lines = capfd.readouterr().out.splitlines() + [r.getMessage() for r in caplog.records]
    reasons = {line[line.index("ConfigError: ") :] for line in lines if "ConfigError: " in line}
    assert len(reasons) == 1 and "SCORING_REJECT_THRESHOLD" in next(iter(reasons)), reasons


def test_every_task_body_runs_inside_task_errors(dagbag, monkeypatch):
    """A task that called into the run's code outside task_errors() would retry an error no retry fixes."""
    import inspect
    from unittest import mock

    from airflow.sdk.exceptions import AirflowFailException

    from scoring.errors import ConfigError
    from scoring_airflow import dag_factory, partition_tasks, run_tasks, traffic_tasks

    def refuse(*args, **kwargs):
        raise ConfigError("boom")

    # Given every function of the tasks' modules raising an error no retry can fix
    for module in (partition_tasks, run_tasks):
        for name, value in inspect.getmembers(module, inspect.isfunction):
            if value.__module__ == module.__name__ and not name.startswith("_"):
                monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(traffic_tasks, "run_monitoring", refuse)
    for module in (dag_factory, traffic_tasks):
        monkeypatch.setattr(module, "get_current_context", lambda: mock.MagicMock())
    tasks = [task for dag in dagbag.dags.values() for task in dag.tasks]
    assert len(tasks) == 15
    for task in tasks:
        body = getattr(task, "python_callable", None) or task.partial_kwargs["python_callable"]
        arguments = [mock.MagicMock() for _ in inspect.signature(body).parameters]
        # When the task's body runs, Then it fails at once with the error's one line
        with pytest.raises(AirflowFailException, match="^ConfigError: boom$"):
            body(*arguments)


def test_publish_counts_only_the_shards_this_scoring_run_staged(tmp_path, demo_bundle):
    """A cleared run that now plans fewer shards is still handed its removed mapped tasks' old results."""
    from scoring import batch
    from scoring.demo.synthetic import write_partition
    from scoring_airflow.run_tasks import this_runs_shards

    key = PartitionKey.parse("2026-01-01T13")
    write_partition(str(tmp_path / "in"), "rides", key, make_rides(30), files=1)
    plan = batch.plan_run(
        job="score_rides_hourly",
        partition=key,
        input_root=str(tmp_path / "in"),
        dataset="rides",
        staging_root=str(tmp_path / "staging"),
        run_id="manual__x.try2",
        model_uri="unused",
        model=demo_bundle.manifest,
    )
    earlier = plan.shard_prefix(0).replace("manual__x.try2", "manual__x.try1")

    def result(prefix: str, shard: int) -> batch.ShardResult:
        return batch.ShardResult("f", 30, 30, 0, f"{prefix}.predictions.parquet", f"{prefix}.rejects", "now", shard)

    # Given this try's one shard, and two results an earlier try of three shards left behind
    this_try = result(plan.shard_prefix(0), 0)
    leftovers = [result(earlier.replace("shard-00000", f"shard-0000{i}"), i) for i in (1, 2)]
    # Then publish counts only this try's
    assert this_runs_shards(plan, [this_try, *leftovers]) == [this_try]
