"""What a user meets before and around a run: the trigger form's params, the docs, the sensor's patience."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest

from scoring.batch.partitions import PartitionKey
from scoring.errors import InvalidPartitionKey
from tests.dags.conftest import ROOT

DAG_IDS = ["score_rides_daily", "score_rides_hourly"]


def _dags(monkeypatch=None, **environ: str):
    """The DAGs as a dag-processor with this environment parses them."""
    from airflow.models import DagBag

    if monkeypatch is not None:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
    return DagBag(dag_folder=str(ROOT / "dags")).dags


@pytest.fixture(scope="module")
def dags():
    return _dags()


def _accepts(schema: dict, value: object) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


def _parses(text: str) -> bool:
    try:
        PartitionKey.parse(text)
    except InvalidPartitionKey:
        return False
    return True


def _run_accepts(text: str, *, hourly: bool) -> bool:
    """Whether a manual run's first task takes this Partition (the syntax, then the cadence)."""
    from scoring_airflow.partition_tasks import resolve_partition

    noon = datetime(2026, 1, 2, 12, tzinfo=timezone.utc)
    try:
        resolve_partition(text, noon, noon, hourly=hourly, run_type="manual")
    except InvalidPartitionKey:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "hourly_accepts", "daily_accepts"),
    [
        ("2026-01-01T03", True, False),
        ("2026-01-01", False, True),
        ("2026-12-31T23", True, False),
        ("2026-01-31T00", True, False),
        ("2026-12-31", False, True),
        ("2026-13-01T99", False, False),
        ("2026-13-01", False, False),
        ("2026-00-01", False, False),
        ("2026-01-32", False, False),
        ("2026-01-00", False, False),
        ("2026-01-01T24", False, False),
        ("2026-01-01T99", False, False),
        ("2026-01-01T3", False, False),
        ("2026-01-01T03:00", False, False),
        ("yesterday", False, False),
    ],
)
def test_each_form_refuses_what_its_run_refuses_and_accepts_what_it_accepts(dags, value, hourly_accepts, daily_accepts):
    for dag_id, hourly, accepted in [
        ("score_rides_hourly", True, hourly_accepts),
        ("score_rides_daily", False, daily_accepts),
    ]:
        # Given the Partition field's JSON Schema, as the cadence's trigger form checks it
        schema = dags[dag_id].params.get_param("partition").schema
        # Then the form and the run's first task agree on the value: the hourly form wants an hour, the daily a day
        assert _accepts(schema, value) is accepted, dag_id
        assert _run_accepts(value, hourly=hourly) is accepted, dag_id


def test_the_traffic_form_takes_hours_by_the_same_syntax(dags):
    schema = dags["monitor_traffic"].params.get_param("hour").schema
    assert _accepts(schema, "2026-01-01T03") and _accepts(schema, None)
    for refused in ["2026-13-01T03", "2026-01-01T24", "2026-01-01", "yesterday"]:
        assert not _accepts(schema, refused), refused


def test_every_form_pattern_is_made_from_the_one_key_syntax():
    from scoring.partition_keys import DAY_KEY_PATTERN, HOUR_KEY_PATTERN, PARTITION_KEY_PATTERN

    # Both cadences' keys are exactly the keys of the one syntax that have (or lack) an hour
    day, hour = DAY_KEY_PATTERN.removesuffix("$"), HOUR_KEY_PATTERN.removesuffix("$")
    assert hour.startswith(day) and f"{day}(?:{hour.removeprefix(day)})?$" == PARTITION_KEY_PATTERN


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_an_empty_partition_field_is_allowed(dags, dag_id):
    assert _accepts(dags[dag_id].params.get_param("partition").schema, None)


def test_the_partition_pattern_means_the_same_to_the_browser():
    """The form checks the pattern as an ECMAScript regex (with the v flag, as an HTML pattern does)."""
    from scoring.partition_keys import PARTITION_KEY_PATTERN, key_pattern

    samples = ["2026-01-01T03", "2026-01-01", "2026-13-01T99", "2026-01-32", "2026-01-01T24", "yesterday"]
    patterns = {"any": PARTITION_KEY_PATTERN, "hourly": key_pattern(hourly=True), "daily": key_pattern(hourly=False)}
    script = (
        f"const patterns = {json.dumps(patterns)}, samples = {json.dumps(samples)};"
        "const out = {}; for (const [name, p] of Object.entries(patterns)) {"
        " const re = new RegExp(p, 'v'); out[name] = samples.map(s => re.test(s)); }"
        "console.log(JSON.stringify(out))"
    )
    node = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)
    assert json.loads(node.stdout) == {
        "any": [_parses(sample) for sample in samples],
        "hourly": [_run_accepts(sample, hourly=True) for sample in samples],
        "daily": [_run_accepts(sample, hourly=False) for sample in samples],
    }


@pytest.mark.parametrize(
    ("dag_id", "example", "own", "other"),
    [("score_rides_hourly", "2026-01-01T03", "hour", "day"), ("score_rides_daily", "2026-01-01", "day", "hour")],
)
def test_each_cadence_speaks_of_its_own_period(dags, dag_id, example, own, other):
    dag = dags[dag_id]
    partition = dag.params.get_param("partition").description
    assert example in partition and "T03" not in partition.replace(example, "")
    for text in (partition, dag.description):
        assert own in text.lower() and other not in text.lower()
    assert other not in dag.params.get_param("reject_threshold").description.lower()
    doc = dag.doc_md.lower()
    assert f"scores the utc {own} starting at its logical date" in doc and f"utc {other}" not in doc


def test_the_form_shows_the_deployments_model_and_threshold_as_defaults(monkeypatch):
    # Given a deployment whose model and threshold come from its environment
    dags = _dags(monkeypatch, SCORING_MODEL_URI="/srv/models/ride_duration/7", SCORING_REJECT_THRESHOLD="0.05")
    for dag in (dags[dag_id] for dag_id in DAG_IDS):
        model, threshold = dag.params.get_param("model_uri"), dag.params.get_param("reject_threshold")
        # Then the form shows those values, and says where they come from
        assert (model.value, threshold.value) == ("/srv/models/ride_duration/7", 0.05)
        assert "SCORING_MODEL_URI" in model.description and "SCORING_REJECT_THRESHOLD" in threshold.description
        # And emptying a field is still allowed (it means the deployment's setting)
        assert _accepts(model.schema, None) and _accepts(threshold.schema, None)
        # And a Model bundle longer than any S3 key is refused by the form, before it reaches an error line
        assert _accepts(model.schema, "s3://b/" + "k" * 1000) and not _accepts(model.schema, "/" + "m" * 5000)


@pytest.mark.parametrize("dag_file", ["score_rides_hourly.py", "score_rides_daily.py"])
def test_parsing_a_dag_file_imports_nothing_heavy(dag_file):
    # Compare what the DAG file adds to what Airflow itself already loaded (it loads SQLAlchemy, for one)
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "plugins")!r})
import airflow.sdk
before = set(sys.modules)
import runpy
runpy.run_path({str(ROOT / "dags" / dag_file)!r})
print("ADDED", json.dumps(sorted(set(sys.modules) - before)))
"""
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    added = set(json.loads(output.split("ADDED ", 1)[1]))
    heavy = {"pandas", "pyarrow", "sklearn", "numpy", "alembic", "boto3"}
    assert "scoring.settings" in added
    assert {name.split(".")[0] for name in added} & heavy == set()
    # Nor the engine's own modules: the batch package re-exports lazily, and tasks import inside their bodies
    assert not added & {"scoring.model", "scoring.batch.plan", "scoring.batch.store", "scoring.batch.store.writes"}


@pytest.mark.parametrize("dag_id", [*DAG_IDS, "monitor_traffic"])
def test_the_dag_and_every_task_say_what_they_do(dags, dag_id):
    dag = dags[dag_id]
    assert dag.description and len(dag.description) < 200  # shown in the DAGs list
    for task in dag.tasks:
        assert task.doc_md and len(task.doc_md.split()) > 15, task.task_id
        assert "fail" in task.doc_md.lower(), task.task_id  # what a failure means
        # Markdown: a line indented four spaces would render as a code block
        assert not [line for line in task.doc_md.splitlines() if line.startswith("    ")], task.task_id


@pytest.mark.parametrize(
    ("dag_id", "timeout", "poke_interval"),
    [
        ("score_rides_hourly", timedelta(hours=3), timedelta(minutes=5)),
        ("score_rides_daily", timedelta(days=1), timedelta(minutes=15)),
    ],
)
def test_a_partition_that_never_arrives_fails_the_run_within_its_cadence(dags, dag_id, timeout, poke_interval):
    sensor = dags[dag_id].get_task("wait_for_partition")
    # The task gives up with its own reason at `timeout`; Airflow's timeout only backs it up one poke later
    assert sensor.timeout == (timeout + poke_interval).total_seconds()
    assert sensor.poke_interval == poke_interval.total_seconds()
    assert sensor.mode == "reschedule" and not sensor.soft_fail and not sensor.never_fail
    # Runs waiting for missing data cannot hold every run slot: each gives up before max_active_runs periods
    period = timedelta(hours=1) if dag_id.endswith("hourly") else timedelta(days=1)
    assert sensor.timeout < dags[dag_id].max_active_runs * period.total_seconds()


def _settings(tmp_path):
    from scoring.settings import Settings

    return Settings(input_root=str(tmp_path / "input"), model_uri=str(tmp_path / "models" / "m" / "1"))


def test_the_sensor_says_where_it_looks_each_poke_and_why_it_gives_up(tmp_path, caplog):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from scoring_airflow.partition_tasks import partition_is_ready

    settings = _settings(tmp_path)
    where = str(tmp_path / "input" / "rides" / "dt=2026-01-01" / "hour=03")
    # While within the wait, a poke finds nothing and says where it looked
    with caplog.at_level(logging.INFO):
        ready = partition_is_ready(settings, "2026-01-01T03", waited=timedelta(minutes=10), wait=timedelta(hours=3))
    assert ready is False
    assert where in caplog.text and "2026-01-01T03" in caplog.text
    # Once the wait is over, the task ends with one line naming the partition, the wait and the place
    with pytest.raises(AirflowSensorTimeout) as timed_out:
        partition_is_ready(settings, "2026-01-01T03", waited=timedelta(hours=3), wait=timedelta(hours=3))
    message = str(timed_out.value)
    assert message.startswith("no data arrived for partition 2026-01-01T03 within 3 hours")
    assert where in message and "\n" not in message
    assert timed_out.value.__cause__ is None and timed_out.value.__context__ is None


def test_a_partition_that_arrives_late_is_still_scored(tmp_path):
    from scoring.demo.synthetic import write_partition
    from scoring_airflow.partition_tasks import partition_is_ready
    from tests.conftest import make_rides

    settings = _settings(tmp_path)
    write_partition(settings.input_root, "rides", PartitionKey.parse("2026-01-01T03"), make_rides(5), files=1)
    assert partition_is_ready(settings, "2026-01-01T03", waited=timedelta(hours=5), wait=timedelta(hours=3))


NOON = datetime(2026, 1, 2, 12, tzinfo=timezone.utc)


def test_a_backfill_with_a_partition_param_is_refused_in_one_line():
    from scoring.errors import InvalidPartitionKey
    from scoring_airflow.partition_tasks import resolve_partition

    # Given a backfill whose runs carry a Partition (the Backfill form offers the field)
    with pytest.raises(InvalidPartitionKey) as refused:
        resolve_partition("2026-01-01T03", NOON, NOON, hourly=True, run_type="backfill")
    # Then the run fails at once, saying what to do
    assert str(refused.value) == "a backfill scores each run's own hour/day; leave Partition empty"
    # And a backfill without one scores its own hour, a manual run the partition it names
    assert resolve_partition(None, NOON, NOON + timedelta(hours=1), hourly=True, run_type="backfill") == "2026-01-02T12"
    assert resolve_partition("2026-01-01T03", NOON, NOON, hourly=True, run_type="manual") == "2026-01-01T03"


@pytest.mark.parametrize(
    ("partition", "hourly", "reason"),
    [
        ("2026-01-01", True, "the hourly job scores hours: give YYYY-MM-DDTHH, e.g. 2026-01-01T00"),
        ("2026-01-01T03", False, "the daily job scores days: give YYYY-MM-DD, e.g. 2026-01-01"),
    ],
)
def test_a_partition_of_the_other_cadence_is_refused(partition, hourly, reason):
    from scoring_airflow.partition_tasks import resolve_partition

    # A day in the hourly job would store the day's rows again under a second key, beside its hours
    with pytest.raises(InvalidPartitionKey) as refused:
        resolve_partition(partition, NOON, NOON, hourly=hourly, run_type="manual")
    assert str(refused.value) == f"partition {partition}: {reason}"


def test_a_malformed_setting_does_not_make_the_dags_vanish(monkeypatch):
    from airflow.models import DagBag

    # Given a deployment whose reject threshold is written as a percentage
    monkeypatch.setenv("SCORING_REJECT_THRESHOLD", "1%")
    # When the DAG files are parsed
    dagbag = DagBag(dag_folder=str(ROOT / "dags"))
    # Then both DAGs are there, the form shows no default, and the run fails on the setting itself
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == ["monitor_traffic", "score_rides_daily", "score_rides_hourly"]
    assert dagbag.dags["score_rides_hourly"].params["reject_threshold"] is None
