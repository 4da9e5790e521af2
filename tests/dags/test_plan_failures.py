"""A DAG run refused at plan leaves one failed scoring_runs row: on its last try, or at once when no retry can help."""

from __future__ import annotations

import pytest

from scoring.errors import PartitionNotFound, UntrustedBundle
from tests.unit.test_trust import _evil_bundle

JOB, PARTITION, DAG_RUN = "score_rides_hourly", "2026-02-01T05", "manual__2026-02-01T05:00:00+00:00"


@pytest.fixture
def options(monkeypatch, tmp_path, demo_bundle_dir, pg_engine, pg_schema_url):
    """The run's options on a migrated PostgreSQL schema; the partition it asks for never arrived."""
    from scoring_airflow.partition_tasks import run_options

    monkeypatch.delenv("AIRFLOW_CONN_SCORING_DB", raising=False)
    monkeypatch.setenv("SCORING_DATABASE_URL", pg_schema_url)
    monkeypatch.setenv("SCORING_INPUT_ROOT", str(tmp_path / "input"))
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "staging"))
    return lambda **params: run_options(params)


def _recorded(pg_engine) -> list[tuple[str, str]]:
    with pg_engine.connect() as connection:
        return connection.exec_driver_sql("select run_id, status from scoring_runs order by run_id").all()


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_plan_failure_a_retry_may_fix_is_recorded_once_on_the_last_try(options, pg_engine):
    from scoring_airflow.run_tasks import plan, scoring_run_id

    # Given a partition that is missing, which Airflow retries (4 tries)
    for try_number in (1, 2, 3, 4):
        # When plan fails on each try
        with pytest.raises(PartitionNotFound):
            plan(
                options(),
                job=JOB,
                partition=PARTITION,
                run_id=scoring_run_id(JOB, DAG_RUN, try_number),
                last_try=try_number == 4,
            )
    # Then only the last try left a row
    assert _recorded(pg_engine) == [(f"{DAG_RUN}.{JOB}.try4", "failed")]


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_plan_failure_no_retry_can_fix_is_recorded_on_its_first_try(options, pg_engine, tmp_path, demo_bundle_dir):
    from scoring_airflow.run_tasks import plan, scoring_run_id

    # Given a trigger naming a bundle outside the trusted roots, which fails at once
    evil = _evil_bundle(tmp_path / "attacker" / "1", tmp_path / "pwned", demo_bundle_dir)
    # When plan refuses it on the first of several possible tries
    with pytest.raises(UntrustedBundle):
        plan(
            options(model_uri=str(evil)),
            job=JOB,
            partition=PARTITION,
            run_id=scoring_run_id(JOB, DAG_RUN, 1),
            last_try=False,
        )
    # Then the run is recorded as failed now: no later try will come to record it
    assert _recorded(pg_engine) == [(f"{DAG_RUN}.{JOB}.try1", "failed")]
