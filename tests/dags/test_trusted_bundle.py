"""The trigger form's Model bundle cannot run code on a worker: a bundle outside the trusted roots fails the run at once."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from scoring.batch.partitions import PartitionKey
from tests.conftest import make_rides
from tests.dags.conftest import ROOT
from tests.unit.test_trust import _evil_bundle


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_model_bundle_param_outside_the_roots_fails_plan_without_retries(
    airflow_db, monkeypatch, tmp_path, demo_bundle_dir, pg_engine, pg_schema_url, caplog, capfd
):
    from airflow.models import DagBag

    from scoring.demo.synthetic import write_partition

    # Given a deployment whose model lives in demo_bundle_dir, a migrated predictions database (pg_engine),
    # and a partition ready to score: plan gets past every check but the bundle's
    root = tmp_path / "input"
    monkeypatch.setenv("SCORING_INPUT_ROOT", str(root))
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "staging"))
    monkeypatch.setenv("AIRFLOW_CONN_SCORING_DB", pg_schema_url)
    write_partition(str(root), "rides", PartitionKey.parse("2026-01-01T05"), make_rides(50), files=1)
    # And a user who triggers it with a bundle of their own, whose pickle runs code
    marker = tmp_path / "pwned"
    evil = _evil_bundle(tmp_path / "attacker" / "1", marker, demo_bundle_dir)
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["score_rides_hourly"]
    # When the run is triggered with it
    with caplog.at_level(logging.INFO):
        run = dag.test(
            logical_date=datetime(2026, 1, 1, 5, tzinfo=timezone.utc),
            run_conf={"partition": "2026-01-01T05", "model_uri": str(evil)},
        )
    # Then plan fails on its first try, for the bundle's place (not a database or input problem)
    assert run.state == "failed"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan")
    assert plan.state == "failed" and plan.try_number == 1
    logged = "\n".join(r.getMessage() for r in caplog.records) + capfd.readouterr().out
    assert "UntrustedBundle" in logged and "outside the trusted model roots" in logged
    assert "DatabaseBehind" not in logged
    # And nothing was scored, and the pickle never ran
    assert not [ti for ti in run.get_task_instances() if ti.task_id == "score_shard" and ti.state == "success"]
    assert not marker.exists()
    # And the refused run left its failed row with the reason, naming no model from the untrusted manifest
    with pg_engine.connect() as connection:
        rows = connection.exec_driver_sql("select status, message, model_name from scoring_runs").all()
    assert [(status, model) for status, _, model in rows] == [("failed", "")]
    assert "could not be planned" in rows[0][1] and "outside the trusted model roots" in rows[0][1]
