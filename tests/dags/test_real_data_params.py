"""The trigger form's Dataset, Id field and Require id: checked in the form and in the run, then honoured."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import sqlalchemy as sa

from scoring.batch.options import PLAIN_NAME_PATTERN
from scoring.errors import ConfigError
from tests.dags.conftest import ROOT
from tests.support.tlc import write_tlc_parquet

DAG_IDS = ["score_rides_daily", "score_rides_hourly"]
HOSTILE = ["..", ".", "../rides", "/etc", "a/../../etc", "s3://bucket/x", "a\\b", "x\ny", ".hidden", "n" * 129]
PLAIN = ["rides", "green_taxi", "yellow-2024.v2", "_tmp", "0"]


@pytest.fixture(scope="module")
def dags():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags


def _accepts(schema: dict, value: object) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


@pytest.mark.parametrize("dag_id", DAG_IDS)
@pytest.mark.parametrize("param", ["dataset", "id_field"])
def test_the_form_refuses_a_name_that_is_not_plain_and_accepts_plain_ones(dags, dag_id, param):
    # Given the field's JSON Schema, as the trigger form checks it
    schema = dags[dag_id].params.get_param(param).schema
    # Then hostile names are refused, plain names and an empty field accepted
    assert [value for value in HOSTILE if _accepts(schema, value)] == []
    assert all(_accepts(schema, value) for value in [*PLAIN, None])


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_the_new_fields_say_what_they_do(dags, dag_id):
    params = dags[dag_id].params
    dataset, id_field, require_id = (params.get_param(name) for name in ("dataset", "id_field", "require_id"))
    assert dataset.value == "rides" and "SCORING_DATASET" in dataset.description
    assert id_field.value is None and "<file>:<row>" in id_field.description
    assert require_id.value is False and require_id.schema["type"] == "boolean"
    assert "id_required" in require_id.description


def test_the_name_pattern_means_the_same_to_the_browser():
    """The form checks the pattern as an ECMAScript regex (with the v flag, as an HTML pattern does)."""
    from scoring.batch.options import validate_dataset

    samples = [*HOSTILE[:-1], *PLAIN]
    script = (
        f"const re = new RegExp({json.dumps(PLAIN_NAME_PATTERN)}, 'v');"
        f"console.log(JSON.stringify({json.dumps(samples)}.map(s => re.test(s))))"
    )
    node = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)

    def python_accepts(name: str) -> bool:
        try:
            validate_dataset(name)
        except ConfigError:
            return False
        return True

    assert json.loads(node.stdout) == [python_accepts(sample) for sample in samples]


@pytest.mark.parametrize("params", [{"dataset": name} for name in HOSTILE] + [{"id_field": name} for name in HOSTILE])
def test_the_first_task_refuses_a_hostile_option_that_reached_it_in_one_line(params):
    # Given a value the form would refuse, sent some other way (the API, a backfill's conf)
    from scoring_airflow.partition_tasks import run_options

    # When the run's first task checks it, Then it is one ConfigError line that does not echo the value
    with pytest.raises(ConfigError) as refused:
        run_options(params)
    message = str(refused.value)
    assert "\n" not in message and "etc" not in message and "bucket" not in message


def test_the_dataset_param_becomes_the_runs_dataset(monkeypatch):
    from scoring_airflow.partition_tasks import run_options, settings_for

    monkeypatch.setenv("SCORING_DATASET", "rides")
    assert settings_for({"dataset": "green_taxi"}).dataset == "green_taxi"
    assert settings_for({"dataset": None}).dataset == "rides" and settings_for({"dataset": ""}).dataset == "rides"
    # The id options take the same one path as the settings
    given = run_options({"id_field": "trip_id", "require_id": True, "dataset": "green_taxi"})
    assert (given.id_field, given.require_id, given.settings.dataset) == ("trip_id", True, "green_taxi")
    empty = run_options({"id_field": "", "require_id": None})
    assert (empty.id_field, empty.require_id) == (None, False)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -0.5, True, 10**400, -(10**400)])
def test_a_bad_drift_threshold_in_the_form_is_named_as_the_forms_and_never_becomes_the_default(monkeypatch, value):
    # Given a deployment whose own drift threshold is fine
    from scoring_airflow.partition_tasks import settings_for

    monkeypatch.setenv("SCORING_DRIFT_THRESHOLD", "0.2")
    # When a run's form (or the API) gives a threshold that would switch detection off or be silently replaced,
    # Then the run refuses it naming the form's field, not the environment's variable
    with pytest.raises(ConfigError, match="the form's drift_threshold must be a finite positive number") as refused:
        settings_for({"drift_threshold": value})
    assert "SCORING_DRIFT_THRESHOLD" not in str(refused.value)


def test_an_empty_drift_threshold_keeps_the_deployments_and_a_given_one_wins(monkeypatch):
    from scoring_airflow.partition_tasks import settings_for

    monkeypatch.setenv("SCORING_DRIFT_THRESHOLD", "0.2")
    assert settings_for({"drift_threshold": None}).drift_threshold == 0.2
    assert settings_for({"drift_threshold": ""}).drift_threshold == 0.2
    assert settings_for({"drift_threshold": 0.05}).drift_threshold == 0.05


def test_a_dag_run_id_too_long_for_the_runs_table_still_names_one_scoring_run_per_try():
    from scoring.batch.plan import MAX_RUN_ID_LENGTH
    from scoring_airflow.run_tasks import scoring_run_id

    # Given Airflow run ids up to its own limit of 250 characters, two of them alike but for their end
    short, long_a, long_b = "manual__2026-01-01T03:00:00+00:00", "x" * 249 + "a", "x" * 249 + "b"
    # Then a short one reads as before, and long ones fit the table, stay distinct and keep their try
    assert scoring_run_id("score_rides_hourly", short, 2) == f"{short}.score_rides_hourly.try2"
    ids = {scoring_run_id("d", run, try_number) for run in (long_a, long_b) for try_number in (1, 2)}
    assert len(ids) == 4 and all(len(i) <= MAX_RUN_ID_LENGTH and i.startswith("xxxx") for i in ids)
    assert scoring_run_id("d", long_a, 1).endswith(".try1")


def test_the_daily_and_hourly_runs_airflow_names_alike_are_two_scoring_runs():
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    from scoring_airflow.run_tasks import scoring_run_id

    # Given the daily run of 11-29 and the hourly 23:00 run, which Airflow names after the same instant
    midnight = datetime(2026, 11, 30, tzinfo=timezone.utc)
    daily = DagRun.generate_run_id(run_type=DagRunType.SCHEDULED, logical_date=midnight, run_after=midnight)
    hourly = DagRun.generate_run_id(run_type=DagRunType.SCHEDULED, logical_date=midnight, run_after=midnight)
    assert daily == hourly
    # Then their scoring runs differ, so neither record replaces the other's
    assert scoring_run_id("score_rides_daily", daily, 1) != scoring_run_id("score_rides_hourly", hourly, 1)


# --- whole runs ---------------------------------------------------------------------------------


@pytest.fixture
def scoring_env(monkeypatch, tmp_path, demo_bundle_dir, pg_schema_url) -> Path:
    from scoring.batch.store.engines import make_engine, upgrade

    engine = make_engine(pg_schema_url)
    upgrade(engine)
    engine.dispose()
    root = tmp_path / "input"
    monkeypatch.setenv("SCORING_INPUT_ROOT", str(root))
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "staging"))
    monkeypatch.setenv("AIRFLOW_CONN_SCORING_DB", pg_schema_url)
    return root


def _stored(url: str) -> pd.DataFrame:
    from scoring.batch.store.engines import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sa.text("SELECT record_id FROM predictions")).mappings().all())
    engine.dispose()
    return frame


def _dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_run_scores_another_dataset_of_tlc_files_without_ids(airflow_db, scoring_env, pg_schema_url):
    # Given a green-taxi file (no ride_id) in a dataset folder of its own
    write_tlc_parquet(scoring_env / "green_taxi" / "dt=2026-01-01" / "hour=03" / "green.parquet", "green", 200)
    dag = _dagbag().dags["score_rides_hourly"]
    # When a run is triggered for it with Dataset set
    run = dag.test(logical_date=datetime(2026, 1, 1, 3, tzinfo=timezone.utc), run_conf={"dataset": "green_taxi"})
    # Then every row is published, named by file and row
    assert run.state == "success"
    assert sorted(_stored(pg_schema_url)["record_id"]) == sorted(f"green.parquet:{n}" for n in range(200))


@pytest.mark.postgres
@pytest.mark.airflow
def test_require_id_fails_the_shard_at_once_and_publishes_nothing(airflow_db, scoring_env, pg_schema_url):
    # Given a file without ride_id in the hour's folder
    write_tlc_parquet(scoring_env / "rides" / "dt=2026-01-01" / "hour=04" / "green.parquet", "green", 20)
    dag = _dagbag().dags["score_rides_hourly"]
    # When a run is triggered with Require id on
    run = dag.test(logical_date=datetime(2026, 1, 1, 4, tzinfo=timezone.utc), run_conf={"require_id": True})
    # Then the shard fails on its first try (no retry makes the column appear) and nothing is stored
    assert run.state == "failed"
    shard = next(ti for ti in run.get_task_instances() if ti.task_id == "score_shard")
    assert shard.state == "failed" and shard.try_number == 1
    assert _stored(pg_schema_url).empty
