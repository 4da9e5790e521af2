"""Crash safety with a real SIGKILL'd subprocess, and S3 partitions through a moto server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
import sqlalchemy as sa

from scoring.batch.store.engines import make_engine
from tests.conftest import make_rides
from tests.integration.batch_helpers import HOUR, JOB, run, stored, write_rides

pytestmark = pytest.mark.postgres


def _score_in_subprocess(root, model_dir, database_url, staging) -> subprocess.Popen:
    # The bundle is trusted by its folder: --model alone does not widen the trusted roots.
    env = {**os.environ, "SCORING_STAGING_ROOT": staging, "SCORING_CHUNK_ROWS": "5000"}
    env["SCORING_MODEL_ROOTS"] = str(model_dir.parent)
    command = [sys.executable, "-m", "scoring.cli", "score", "--job", JOB, "--partition", str(HOUR)]
    command += ["--input", root, "--model", str(model_dir), "--database", database_url]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_blocked_publish(engine: sa.Engine, timeout: float = 60.0) -> None:
    """Until another backend is inside the publish transaction (rows deleted and copied), waiting for our lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND state = 'active' AND (query LIKE 'DELETE FROM scoring_runs%' OR query LIKE 'INSERT INTO scoring_runs%')"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar():
                return
        time.sleep(0.1)
    raise AssertionError("the publisher never reached its scoring_runs record")


def test_sigkill_mid_publish_leaves_previous_rows_and_next_run_converges(
    pg_schema_url, pg_engine, predictor, demo_bundle_dir, tmp_path
):
    # Given a partition published once
    root, staging = str(tmp_path / "in"), str(tmp_path / "stage")
    write_rides(root, make_rides(3000))
    first = run(predictor, pg_engine, root, staging)
    # And a new version of it (more rows), whose publisher we stop inside its transaction:
    # our lock on scoring_runs holds it after it has deleted and copied the rows, before commit.
    write_rides(root, make_rides(4000, seed=99))
    locker = make_engine(pg_schema_url)
    with locker.connect() as lock_conn:
        lock_conn.execute(sa.text("LOCK TABLE scoring_runs IN ACCESS EXCLUSIVE MODE"))
        process = _score_in_subprocess(root, demo_bundle_dir, pg_schema_url, staging)
        try:
            _wait_for_blocked_publish(pg_engine)
            # When the process is killed outright, mid-publish
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        lock_conn.rollback()
    locker.dispose()
    assert process.returncode == -signal.SIGKILL
    # Then the previous rows are intact: same count, same run
    after_crash = stored(pg_engine)
    assert len(after_crash) == 3000 and set(after_crash["run_id"]) == {first.run_id}
    # And the next run converges on the new data, one copy each
    second = run(predictor, pg_engine, root, staging)
    final = stored(pg_engine)
    assert len(final) == 4000 and final["record_id"].is_unique and set(final["run_id"]) == {second.run_id}


@pytest.mark.aws
def test_local_and_s3_partitions_give_the_same_predictions(aws, pg_engine, sqlite_engine, predictor, tmp_path):
    # Given the same parquet and CSV files locally and in an S3 bucket (moto over HTTP)
    rides = make_rides(700)
    local_root = str(tmp_path / "in")
    write_rides(local_root, rides, files=2)
    boto3.client("s3").create_bucket(Bucket="rides-input")
    write_rides("s3://rides-input/landing", rides, files=2)
    # When each is scored (S3 into PostgreSQL, staging on S3 too; local into SQLite)
    from_s3 = run(predictor, pg_engine, "s3://rides-input/landing", "s3://rides-input/staging")
    from_local = run(predictor, sqlite_engine, local_root, str(tmp_path / "stage"))
    # Then the stored predictions are identical
    assert from_s3.scored_rows == from_local.scored_rows == 700
    s3_rows, local_rows = stored(pg_engine), stored(sqlite_engine)
    assert s3_rows["record_id"].tolist() == local_rows["record_id"].tolist()
    assert s3_rows["prediction"].tolist() == local_rows["prediction"].tolist()


@pytest.mark.aws
def test_s3_csv_partition_scores(aws, sqlite_engine, predictor):
    boto3.client("s3").create_bucket(Bucket="rides-csv")
    write_rides("s3://rides-csv/in", make_rides(120), files=1, file_format="csv")
    summary = run(predictor, sqlite_engine, "s3://rides-csv/in", "s3://rides-csv/staging")
    assert summary.scored_rows == 120
