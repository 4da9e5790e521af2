"""A CLI run that fails while it is being planned still writes its failed scoring_runs row, with the reason."""

from __future__ import annotations

import pytest

from scoring import cli
from tests.conftest import make_rides
from tests.integration.batch_helpers import JOB, runs, write_rides
from tests.unit.test_trust import _evil_bundle

pytestmark = pytest.mark.postgres

PARTITION = "2026-03-01T05"


@pytest.fixture
def cli_env(monkeypatch, tmp_path, demo_bundle_dir):
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "stage"))
    monkeypatch.delenv("SCORING_MODEL_ROOTS", raising=False)
    return tmp_path


def _score(capsys, tmp_path, database: str, *extra: str) -> str:
    """`scoring score` of the test partition, which must fail; its one error line."""
    argv = ["score", "--job", JOB, "--partition", PARTITION, "--input", str(tmp_path / "in"), "--database", database]
    assert cli.main([*argv, *extra]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _untrusted_bundle(tmp_path, demo_bundle_dir) -> list[str]:
    write_rides(str(tmp_path / "in"), make_rides(20), files=1)
    return ["--model", str(_evil_bundle(tmp_path / "attacker" / "1", tmp_path / "pwned", demo_bundle_dir))]


def _id_field_is_an_input(tmp_path, demo_bundle_dir) -> list[str]:
    write_rides(str(tmp_path / "in"), make_rides(20), files=1)
    return ["--id-field", "trip_distance"]


def _missing_partition(tmp_path, demo_bundle_dir) -> list[str]:
    return []


def _empty_partition(tmp_path, demo_bundle_dir) -> list[str]:
    (tmp_path / "in" / "rides" / "dt=2026-03-01" / "hour=05").mkdir(parents=True)
    return []


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (_untrusted_bundle, "outside the trusted model roots"),
        (_id_field_is_an_input, "id field 'trip_distance' is an input"),
        (_missing_partition, PARTITION),
        (_empty_partition, PARTITION),
    ],
    ids=["untrusted bundle", "id field is an input", "missing partition", "empty partition"],
)
def test_a_run_that_fails_while_planned_is_recorded_with_its_reason(
    cli_env, capsys, pg_engine, pg_schema_url, demo_bundle_dir, failure, reason
):
    # Given a migrated database and a run that cannot be planned
    extra = failure(cli_env, demo_bundle_dir)
    # When it is scored through the CLI
    error = _score(capsys, cli_env, pg_schema_url, *extra)
    # Then it fails in one line, and its scoring_runs row says it failed and why, with nothing scored
    assert reason in error
    recorded = runs(pg_engine)
    assert len(recorded) == 1, recorded
    row = recorded.iloc[0]
    assert (row["status"], row["job"], row["partition_key"]) == ("failed", JOB, PARTITION)
    assert reason in row["message"] and row["message"].startswith("the run could not be planned: ")
    assert (row["input_rows"], row["scored_rows"], row["rejected_rows"]) == (0, 0, 0)
    assert not (cli_env / "pwned").exists()


def test_an_untrusted_bundle_is_recorded_without_its_manifest_being_read(
    cli_env, capsys, pg_engine, pg_schema_url, demo_bundle_dir
):
    # Given a bundle outside the roots whose manifest claims to be the deployment's model
    extra = _untrusted_bundle(cli_env, demo_bundle_dir)
    _score(capsys, cli_env, pg_schema_url, *extra)
    # Then the row names no model: nothing the untrusted manifest says was read into it
    row = runs(pg_engine).iloc[0]
    assert (row["model_name"], row["model_version"], row["model_sha256"]) == ("", "", "")


def test_a_run_whose_database_is_behind_records_nothing_and_says_what_to_run(cli_env, capsys, pg_schema_url):
    # Given a database never migrated, and a partition that is not there either
    error = _score(capsys, cli_env, pg_schema_url)
    # Then the database check fails first, and no table is created to record it in
    assert "scoring db upgrade" in error
    import sqlalchemy as sa

    from scoring.batch.store.engines import make_engine

    engine = make_engine(pg_schema_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")).scalar() == 0
    engine.dispose()
