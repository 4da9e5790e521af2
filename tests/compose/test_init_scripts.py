"""The init scripts compose runs, run here without Docker: on the machine's PostgreSQL, moto and SQLite."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import boto3
import pytest
import sqlalchemy as sa

from scoring.batch.store.engines import make_engine, upgrade
from tests.compose.stack import ROOT

POSTGRES_INIT = ROOT / "docker/postgres/create-databases.sh"
AIRFLOW_INIT = ROOT / "docker/init/airflow-init.sh"
SEED = ROOT / "docker/init/seed.sh"
BIN = str(Path(sys.executable).parent)


def run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)


# --- docker/postgres/create-databases.sh -----------------------------------------------------------------


@dataclass(frozen=True)
class InitialisedServer:
    """What one run of the postgres init script was given: (role, database) by prefix, and the reader role."""

    url: str
    owners: dict[str, tuple[str, str]]
    reader: str
    env: dict[str, str]

    def as_role(self, role: str, database: str) -> str:
        """A URL logging in as `role` (the test server trusts local logins, so no password is needed)."""
        server = urlsplit(self.url)
        return f"postgresql+psycopg2://{quote(role)}@{server.hostname}:{server.port or 5432}/{quote(database)}"


@pytest.fixture
def initialised_server(postgres_url: str) -> Iterator[InitialisedServer]:
    """The init script run twice (a restarted init must not fail) with throwaway names, dropped afterwards."""
    # Given unique names (some needing quotes) and a password a naive script would break on
    suffix = uuid.uuid4().hex[:8]
    owners = {"AIRFLOW": (f"af-{suffix}", f"afdb_{suffix}"), "PREDICTIONS": (f"sc_{suffix}", f"scdb-{suffix}")}
    reader = f"reader-{suffix}"
    server = urlsplit(postgres_url)
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": server.hostname or "127.0.0.1",
        "PGPORT": str(server.port or 5432),
        "POSTGRES_USER": server.username or "postgres",
        "GRAFANA_DB_USER": reader,
        "GRAFANA_DB_PASSWORD": "it's-$ecret",
    }
    for prefix, (role, database) in owners.items():
        env |= {f"{prefix}_DB_USER": role, f"{prefix}_DB_NAME": database, f"{prefix}_DB_PASSWORD": "it's-$ecret"}
    admin = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        for _ in range(2):
            result = run(POSTGRES_INIT, env)
            assert result.returncode == 0, result.stderr
            assert "it's-$ecret" not in result.stdout + result.stderr
        yield InitialisedServer(postgres_url, owners, reader, env)
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for _, database in owners.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            for role in [reader, *(role for role, _ in owners.values())]:
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_init_creates_two_databases_each_owned_by_its_role(initialised_server):
    # Then each database exists, owned by its own login role, which has a password
    admin = sa.create_engine(initialised_server.url.replace("postgresql://", "postgresql+psycopg2://"))
    with admin.connect() as conn:
        for role, database in initialised_server.owners.values():
            owner = conn.execute(
                sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :d"), {"d": database}
            ).scalar_one()
            login, has_password = conn.execute(
                sa.text("SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = :r"),
                {"r": role},
            ).one()
            assert (owner, login, has_password) == (role, True, True)
        # And the reader is a plain login with a password, owning nothing
        reader = conn.execute(
            sa.text(
                "SELECT rolcanlogin, rolpassword IS NOT NULL, rolsuper, rolcreatedb, rolcreaterole"
                " FROM pg_authid WHERE rolname = :r"
            ),
            {"r": initialised_server.reader},
        ).one()
        assert tuple(reader) == (True, True, False, False, False)
    admin.dispose()


def denied(engine: sa.Engine, sql: str) -> bool:
    """Whether PostgreSQL refuses this statement to the engine's role (and rolls it back)."""
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    except sa.exc.DBAPIError as error:
        message = str(error.orig)
        return any(reason in message for reason in ("permission denied", "must be owner", "read-only transaction"))
    return False


@pytest.mark.postgres
def test_the_grafana_reader_may_select_what_the_owners_migrations_create_and_nothing_more(initialised_server):
    # Given the predictions database migrated by its owner after the init script ran (as seed does)
    owner, database = initialised_server.owners["PREDICTIONS"]
    owner_engine = make_engine(initialised_server.as_role(owner, database))
    reader_engine = make_engine(initialised_server.as_role(initialised_server.reader, database))
    try:
        upgrade(owner_engine)
        with owner_engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO partition_metrics (job, partition_key, run_id, feature, metric, value, drifted)"
                    " VALUES ('rides', '2026-03-01T00', 'run-1', 'trip_distance', 'psi', 0.02, false)"
                )
            )
        # When Grafana's role reads every table its panels and a curious user may query
        with reader_engine.connect() as conn:
            for table in ("partition_metrics", "traffic_metrics", "prediction_log", "predictions", "scoring_runs"):
                conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            assert conn.execute(sa.text("SELECT value FROM partition_metrics")).scalar_one() == 0.02
        # Then it can change nothing, even after switching the read-only default off
        for sql in (
            "INSERT INTO partition_metrics (job, partition_key, run_id, feature, metric, value, drifted)"
            " VALUES ('x', 'x', 'x', 'x', 'x', 0, false)",
            "DELETE FROM partition_metrics",
            "UPDATE predictions SET prediction = 0",
            "TRUNCATE prediction_log",
            "DROP TABLE scoring_runs",
            "CREATE TABLE grafana_was_here (id int)",
        ):
            assert denied(reader_engine, sql), sql
            assert denied(reader_engine, f"SET TRANSACTION READ WRITE; {sql}"), sql
        with owner_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM partition_metrics")).scalar_one() == 1
            assert "scoring_runs" in sa.inspect(conn).get_table_names()
        # And a rerun of the script on the migrated database (an older volume, by hand) still succeeds
        assert run(POSTGRES_INIT, initialised_server.env).returncode == 0
    finally:
        owner_engine.dispose()
        reader_engine.dispose()


def test_postgres_init_refuses_to_run_without_passwords():
    result = run(POSTGRES_INIT, {"PATH": os.environ["PATH"]})
    assert result.returncode != 0 and "AIRFLOW_DB_PASSWORD" in result.stderr


# --- docker/init/airflow-init.sh -------------------------------------------------------------------------


@pytest.fixture
def fake_airflow(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in `airflow` on PATH that records its arguments (and fails when FAKE_AIRFLOW_FAIL is set)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "airflow-calls"
    bin_dir.mkdir()
    fake = bin_dir / "airflow"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n[ -z "$FAKE_AIRFLOW_FAIL" ]\n')
    fake.chmod(0o755)
    return bin_dir, calls


def airflow_init_env(tmp_path: Path, bin_dir: Path, password: str) -> dict[str, str]:
    return {
        "PATH": f"{bin_dir}:{BIN}:/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_UID": str(os.getuid()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "auth" / "passwords.json"),
        "AIRFLOW_ADMIN_USER": "admin",
        "AIRFLOW_ADMIN_PASSWORD": password,
    }


def test_airflow_init_migrates_and_fixes_the_login_from_env(tmp_path, fake_airflow):
    bin_dir, calls = fake_airflow
    passwords = tmp_path / "auth" / "passwords.json"
    for password in ("first-password", "changed-in-env"):
        result = run(AIRFLOW_INIT, airflow_init_env(tmp_path, bin_dir, password))
        assert result.returncode == 0, result.stderr
        # The simple auth manager's file holds exactly the .env login, readable by its owner only
        assert json.loads(passwords.read_text()) == {"admin": password}
        assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
        assert password not in result.stdout + result.stderr
    assert calls.read_text().splitlines() == ["db migrate", "db migrate"]
    assert (tmp_path / "airflow" / "logs").is_dir()


def test_airflow_init_fails_when_the_migration_fails(tmp_path, fake_airflow):
    bin_dir, _ = fake_airflow
    env = airflow_init_env(tmp_path, bin_dir, "pw") | {"FAKE_AIRFLOW_FAIL": "1"}
    assert run(AIRFLOW_INIT, env).returncode != 0


# --- docker/init/seed.sh and localstack_resources.py ------------------------------------------------------


@pytest.fixture
def localstack_resources():
    import importlib.util

    spec = importlib.util.spec_from_file_location("localstack_resources", ROOT / "docker/init/localstack_resources.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stream_names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "STREAM_MODEL_URI": f"s3://bundles-{suffix}/models/ride_duration/1",
        "RIDE_EVENTS_STREAM": f"events-{suffix}",
        "PREDICTIONS_STREAM": f"predictions-{suffix}",
        "RIDE_EVENTS_QUEUE": f"queue-{suffix}",
        "DEAD_LETTER_QUEUE": f"dead-letters-{suffix}",
    }


@pytest.mark.aws
def test_localstack_resources_are_created_once_and_kept(aws, demo_bundle_dir, localstack_resources, capsys):
    env = stream_names() | {"BUNDLE_DIR": str(demo_bundle_dir)}
    assert localstack_resources.main(env) == 0
    assert localstack_resources.main(env) == 0  # a second seed run changes nothing and does not fail
    kinesis = boto3.client("kinesis")
    for stream in (env["RIDE_EVENTS_STREAM"], env["PREDICTIONS_STREAM"]):
        assert (
            kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
        )
    sqs = boto3.client("sqs")
    for queue in (env["RIDE_EVENTS_QUEUE"], env["DEAD_LETTER_QUEUE"]):
        assert len(sqs.list_queues(QueueNamePrefix=queue)["QueueUrls"]) == 1
    dead_letter_url = sqs.get_queue_url(QueueName=env["DEAD_LETTER_QUEUE"])["QueueUrl"]
    assert f"dead-letter queue {dead_letter_url}" in capsys.readouterr().out


@pytest.mark.aws
def test_the_dead_letter_queue_is_optional(aws, demo_bundle_dir, localstack_resources):
    # A compose file from before the dead-letter queue still seeds
    env = stream_names() | {"BUNDLE_DIR": str(demo_bundle_dir)}
    dead_letters = env.pop("DEAD_LETTER_QUEUE")
    assert localstack_resources.main(env) == 0
    assert boto3.client("sqs").list_queues(QueueNamePrefix=dead_letters).get("QueueUrls", []) == []


@pytest.mark.aws
def test_localstack_resources_names_what_is_missing(aws, localstack_resources, capsys):
    assert localstack_resources.main({"BUNDLE_DIR": "x"}) == 2
    assert "STREAM_MODEL_URI" in capsys.readouterr().err


@pytest.mark.aws
def test_seed_prepares_data_database_and_aws_for_every_mode(aws, demo_bundle_dir, tmp_path):
    # Given the shared volume already holding a bundle (so the slow demo training is skipped)
    shared = tmp_path / "shared"
    model = shared / "models" / "ride_duration" / "1"
    shutil.copytree(demo_bundle_dir, model)
    names = stream_names()
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        **{key: os.environ[key] for key in os.environ if key.startswith("AWS_")},
        **names,
        "AIRFLOW_UID": str(os.getuid()),
        "SCORING_MODEL_URI": str(model),
        "SCORING_INPUT_ROOT": str(shared / "data" / "input"),
        "SCORING_STAGING_ROOT": str(shared / "staging"),
        "SCORING_DATABASE_URL": f"sqlite:///{tmp_path / 'scoring.db'}",
        "DEMO_DAY": "2026-01-01",
        "DEMO_ROWS_PER_HOUR": "10",
    }
    # When the seed runs
    result = run(SEED, env)
    assert result.returncode == 0, result.stdout + result.stderr
    # Then the predictions tables exist, the bundle is on S3 byte for byte, and staging is ready
    tables = sa.inspect(make_engine(env["SCORING_DATABASE_URL"])).get_table_names()
    assert {"predictions", "scoring_runs", "rejected_records"} <= set(tables)
    bucket, _, prefix = names["STREAM_MODEL_URI"].removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    for name in ("model.bin", "model.json"):
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()
        assert body == (model / name).read_bytes()
    assert (shared / "staging").is_dir()
    assert "already in place" in result.stdout
