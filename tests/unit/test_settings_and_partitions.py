"""Settings from the environment, and partition keys."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from scoring.batch.partitions import PartitionKey
from scoring.errors import ConfigError, InvalidJobName, InvalidPartitionKey
from scoring.settings import Settings


def test_settings_read_prefixed_variables_and_keep_defaults():
    settings = Settings.from_env(
        {"SCORING_DATABASE_URL": "postgresql://x/y", "SCORING_REJECT_THRESHOLD": "0.05", "SCORING_API_KEY": ""}
    )
    assert settings.database_url == "postgresql://x/y"
    assert settings.reject_threshold == 0.05
    assert settings.api_key is None
    assert settings.chunk_rows == Settings().chunk_rows


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SCORING_CHUNK_ROWS": "many"}, "SCORING_CHUNK_ROWS must be a int"),
        ({"SCORING_REJECT_THRESHOLD": "2"}, "between 0 and 1"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("text", "segments"),
    [("2026-01-01T03", ["dt=2026-01-01", "hour=03"]), ("2026-01-01", ["dt=2026-01-01"])],
)
def test_partition_key_round_trip(text, segments):
    key = PartitionKey.parse(text)
    assert str(key) == text
    assert key.path_segments() == segments


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-01-01T24", "names hour 24; hours run from 00 to 23"),
        ("2026-01-01T99", "names hour 99; hours run from 00 to 23"),
        ("2026-13-01", "names month 13; months run from 01 to 12"),
        ("2026-00-01", "names month 0; months run from 01 to 12"),
        ("2026-02-30", "names day 30 of 2026-02, which has 28 days"),
        ("0000-01-01", "names year 0000; years start at 0001"),
        ("yesterday", "is neither YYYY-MM-DD (daily) nor YYYY-MM-DDTHH (hourly)"),
        ("2026-01-01T3", "is neither YYYY-MM-DD (daily) nor YYYY-MM-DDTHH (hourly)"),
        ("2026-01-01T03:00", "is neither YYYY-MM-DD (daily) nor YYYY-MM-DDTHH (hourly)"),
    ],
)
def test_bad_partition_key_is_refused_saying_what_is_wrong(text, reason):
    with pytest.raises(InvalidPartitionKey) as refused:
        PartitionKey.parse(text)
    assert str(refused.value) == f"partition key {text!r} {reason}"


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("2026-01-01T03", True),
        ("2026-01-01", True),
        ("2026-02-30", True),
        ("2026-13-01", False),
        ("2026-01-01T24", False),
        ("2026-01-01T3", False),
        ("x", False),
    ],
)
def test_the_trigger_form_pattern_is_the_syntax_parse_accepts(text, accepted):
    import re

    from scoring.batch.partitions import PARTITION_KEY_PATTERN

    # The form refuses impossible months, days and hours inline; what a pattern cannot judge (Feb 30)
    # passes it, and parse then names the problem
    assert (re.fullmatch(PARTITION_KEY_PATTERN, text) is not None) is accepted


UTC = timezone.utc


@pytest.mark.parametrize(
    ("logical_date", "run_after", "hourly", "expected"),
    [
        # scheduled: logical date = start of the hour that just closed
        (datetime(2026, 1, 1, 3, tzinfo=UTC), datetime(2026, 1, 1, 4, tzinfo=UTC), True, "2026-01-01T03"),
        # manual at a round hour, long closed: that hour, the slot of the scheduled 03:00 run
        (datetime(2026, 1, 1, 3, tzinfo=UTC), datetime(2026, 11, 25, 22, 35, tzinfo=UTC), True, "2026-01-01T03"),
        # manual "now": the hour has not closed, so the last closed one
        (datetime(2026, 1, 1, 4, 20, tzinfo=UTC), datetime(2026, 1, 1, 4, 20, 5, tzinfo=UTC), True, "2026-01-01T03"),
        # REST trigger without a logical date
        (None, datetime(2026, 1, 1, 4, 20, tzinfo=UTC), True, "2026-01-01T03"),
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), False, "2026-01-01"),
        (datetime(2026, 1, 2, 9, tzinfo=UTC), datetime(2026, 1, 2, 9, 1, tzinfo=UTC), False, "2026-01-01"),
    ],
)
def test_partition_for_a_dag_run(logical_date, run_after, hourly, expected):
    assert str(PartitionKey.for_run(logical_date, run_after, hourly=hourly)) == expected


@pytest.mark.parametrize("job", ["score_rides_hourly", "score-rides.v2", "_backfill", "J" * 200])
def test_job_names_that_fit_the_column_and_a_folder_are_accepted(job):
    from scoring.batch import validate_job_name

    assert validate_job_name(job) == job


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("", "job name is empty"),
        (".", "must start with a letter, a digit or '_'"),
        ("..", "must start with a letter, a digit or '_'"),
        ("-x", "must start with a letter, a digit or '_'"),
        ("a/b", "may hold only letters, digits"),
        ("a b", "may hold only letters, digits"),
        ("a\x00b", "may hold only letters, digits"),
        ("j" * 201, "longer than 200 characters"),
    ],
)
def test_bad_job_names_are_refused_by_plan_run(tmp_path, job, message):
    from types import SimpleNamespace

    from scoring.batch import plan_run

    # plan_run refuses before listing a file or reading the model, so neither need exist
    with pytest.raises(InvalidJobName, match=message):
        plan_run(
            job=job,
            partition=PartitionKey.parse("2026-01-01T03"),
            input_root=str(tmp_path),
            dataset="rides",
            staging_root=str(tmp_path / "stage"),
            model_uri=str(tmp_path / "model"),
            model=SimpleNamespace(sha256="0" * 64, name="m", version="1"),
        )
    assert not (tmp_path / "stage").exists()


# --- run options and derived record ids ----------------------------------------------------------


@pytest.mark.parametrize("name", ["rides", "green_taxi", "yellow-2024.v2", "_x", "0"])
def test_plain_dataset_names_are_accepted(name):
    from scoring.batch.options import validate_dataset

    assert validate_dataset(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "/etc", "a/b", "a\\b", "s3://bucket/x", ".hidden", "x\n", "x\x00", "d" * 129]
)
def test_a_dataset_that_could_lead_elsewhere_is_refused_wherever_a_path_is_built(tmp_path, name):
    from scoring.batch.reader import partition_uri

    # Every partition path is built by partition_uri, so a hostile SCORING_DATASET never reaches the filesystem
    with pytest.raises(ConfigError, match="^dataset ") as refused:
        partition_uri(str(tmp_path), name, PartitionKey.parse("2026-01-01T03"))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("uri", "folder", "expected"),
    [
        ("/in/rides/dt=2026-01-01/hour=03/part-0.parquet", "/in/rides/dt=2026-01-01/hour=03", "part-0.parquet"),
        ("/in/rides/dt=2026-01-01/hour=03/part-0.parquet", "/in/rides/dt=2026-01-01", "hour=03/part-0.parquet"),
        ("s3://b/in/rides/dt=2026-01-01/hour=03/p.csv", "s3://b/in/rides/dt=2026-01-01", "hour=03/p.csv"),
        ("s3://b/in/rides/dt=2026-01-01/hour=03/p.csv", "s3://b/in/rides/dt=2026-01-01/", "hour=03/p.csv"),
        ("/elsewhere/p.parquet", "/in/rides/dt=2026-01-01", "p.parquet"),
        ("/in/rides/dt=2026-01-01/bad\udcff.parquet", "/in/rides/dt=2026-01-01", "bad\ufffd.parquet"),
    ],
)
def test_a_file_is_named_by_its_path_below_the_partition_folder(uri, folder, expected):
    from scoring.batch.record_names import name_in_partition

    assert name_in_partition(uri, folder) == expected


def test_derived_ids_are_file_and_row_from_any_offset():
    import numpy as np

    from scoring.batch.record_names import derived_ids

    assert derived_ids("hour=03/p.parquet", np.array([0, 1, 100_000])).to_pylist() == [
        "hour=03/p.parquet:0",
        "hour=03/p.parquet:1",
        "hour=03/p.parquet:100000",
    ]


def test_the_dataset_setting_is_read_from_the_environment():
    assert Settings.from_env({"SCORING_DATASET": "green_taxi"}).dataset == "green_taxi"
    assert Settings.from_env({}).with_overrides(dataset="yellow").dataset == "yellow"


def test_a_traffic_hour_is_a_partition_key_of_the_one_syntax():
    from scoring.errors import InvalidPartitionKey
    from scoring.monitoring.traffic import hour_key, parse_hour

    start = datetime(2026, 1, 1, 3, tzinfo=UTC)
    assert hour_key(datetime(2026, 1, 1, 3, 59, tzinfo=UTC)) == "2026-01-01T03" == str(PartitionKey(start.date(), 3))
    assert parse_hour("2026-01-01T03") == start
    # The same refusals, with the same reasons, as a batch partition's; a day is not an hour
    for text, reason in [
        ("2026-13-01T03", "names month 13"),
        ("2026-01-01T24", "names hour 24"),
        ("2026-02-30T00", "names day 30 of 2026-02"),
        ("2026-01-01", "names a day; give an hour, e.g. 2026-01-01T00"),
    ]:
        with pytest.raises(InvalidPartitionKey, match=reason):
            parse_hour(text)


@pytest.mark.parametrize(
    ("hourly", "accepted", "refused"),
    [(True, "2026-01-01T03", "2026-01-01"), (False, "2026-01-01", "2026-01-01T03")],
)
def test_each_cadence_has_its_own_key_pattern(hourly, accepted, refused):
    from scoring.partition_keys import key_pattern

    assert re.fullmatch(key_pattern(hourly=hourly), accepted)
    assert not re.fullmatch(key_pattern(hourly=hourly), refused)
    assert not re.fullmatch(key_pattern(hourly=hourly), "2026-13-01T03"[: len(accepted)])
