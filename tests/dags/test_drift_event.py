"""Drift in a DAG run: never a failure; one warning naming the features and a scoring://drift/<dag_id> event."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from scoring.batch.partitions import PartitionKey
from tests.conftest import make_rides
from tests.dags.test_dags import dagbag, scoring_env  # noqa: F401  (fixtures)


@pytest.mark.postgres
@pytest.mark.airflow
def test_a_drifted_partition_warns_once_and_emits_the_drift_event(
    airflow_db,
    scoring_env,  # noqa: F811
    dagbag,  # noqa: F811
    predictor,
    monkeypatch,
    caplog,
):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    import scoring.batch.monitor as monitor
    from scoring.demo.synthetic import write_partition
    from scoring.monitoring.profile import ReferenceProfile, input_kinds

    # Given a bundle with a reference profile of clean rides
    valid = predictor.schema.validate_frame(make_rides(20_000, seed=3)).valid
    kinds = input_kinds(predictor.bundle.manifest)
    profile = ReferenceProfile.build(valid, predictor.predict(valid), kinds, predictor.bundle.manifest.output)
    monkeypatch.setattr(monitor, "reference_of", lambda bundle: profile)
    # And an hour whose trip distances were tripled, and a clean one
    tripled = make_rides(2_000, seed=8)
    tripled["trip_distance"] *= 3
    write_partition(str(scoring_env), "rides", PartitionKey.parse("2026-01-01T11"), tripled, files=2)
    write_partition(str(scoring_env), "rides", PartitionKey.parse("2026-01-01T12"), make_rides(2_000), files=2)
    dag = dagbag.dags["score_rides_hourly"]
    # When the DAG runs for both hours
    with caplog.at_level(logging.WARNING):
        drifted = dag.test(logical_date=datetime(2026, 1, 1, 11, tzinfo=timezone.utc))
        clean = dag.test(logical_date=datetime(2026, 1, 1, 12, tzinfo=timezone.utc))
    # Then both succeed: drift never fails a run
    assert drifted.state == clean.state == "success"
    # And one warning names the drifted hour's features
    warnings = [r.getMessage() for r in caplog.records if "drifted from the model's reference" in r.getMessage()]
    assert len(warnings) == 1 and "2026-01-01T11" in warnings[0] and "trip_distance" in warnings[0]
    # And only the drifted hour emits a drift event, naming the partition and the features
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == "scoring://drift/score_rides_hourly")
        ).all()
        # Other tests' runs in the session's Airflow database may have drifted too: only these two count.
        extras = [
            (event.source_run_id, event.extra)
            for event in events
            if event.source_run_id in (drifted.run_id, clean.run_id)
        ]
    assert [run_id for run_id, _ in extras] == [drifted.run_id]
    extra = extras[0][1]
    assert extra["partition"] == "2026-01-01T11" and "trip_distance" in extra["features"]
