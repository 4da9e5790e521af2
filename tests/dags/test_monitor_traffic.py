"""The hourly traffic DAG on PostgreSQL: logged predictions of a closed hour become traffic_metrics per source;
a drifted hour warns once and emits scoring://drift/monitor_traffic, a clean one emits nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from scoring.demo.synthetic import generate_rides
from tests.dags.test_dags import dagbag, scoring_env  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.airflow]


def _log_hour(url: str, predictor, source: str, hour: datetime, distance_factor: float, seed: int) -> int:
    """Log an hour of scored rides for `source` as the web service or the Lambda would."""
    from scoring.model.records import score_records
    from scoring.monitoring.prediction_log import PredictionLog

    # 6000 rides: at 1500 an hour the binned Wasserstein's noise alone reaches the 0.1 threshold (5 of 24 clean
    # hours flagged), at 6000 none of 24 is (worst 0.088).
    rides = generate_rides(6000, start=datetime(2026, 1, 1, tzinfo=timezone.utc), span=timedelta(days=28), seed=seed)
    rides["trip_distance"] *= distance_factor
    records = rides[["PULocationID", "DOLocationID", "trip_distance"]].to_dict("records")
    outcomes = score_records(predictor, records)
    log = PredictionLog.from_url(url, source, capacity=20_000, background=False)
    log.record(outcomes, records, "ride_duration", "1")
    log.flush()
    # Spread over the hour: logged_at is set at record time, so move the rows into the hour under test.
    import sqlalchemy as sa

    from scoring.batch.store.engines import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE prediction_log SET logged_at = :hour + (id % 3600) * interval '1 second' "
                "WHERE source = :source AND logged_at > now() - interval '1 hour'"
            ),
            {"hour": hour, "source": source},
        )
    engine.dispose()
    return log.written


def test_each_closed_hour_of_traffic_gets_metrics_and_drift_emits_an_event(
    airflow_db,
    scoring_env,  # noqa: F811
    dagbag,  # noqa: F811
    pg_schema_url,
    predictor,
    caplog,
):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, text

    from scoring.batch.store.engines import make_engine

    # Given the demo bundle (with its reference profile), clean online traffic at 10:00 and 11:00, and
    # stream traffic whose trip distances were tripled at 11:00
    ten, eleven = datetime(2026, 1, 1, 10, tzinfo=timezone.utc), datetime(2026, 1, 1, 11, tzinfo=timezone.utc)
    logged = _log_hour(pg_schema_url, predictor, "online", ten, 1.0, seed=1)
    _log_hour(pg_schema_url, predictor, "online", eleven, 1.0, seed=2)
    _log_hour(pg_schema_url, predictor, "stream", eleven, 3.0, seed=3)
    dag = dagbag.dags["monitor_traffic"]
    # When the DAG runs for both hours
    with caplog.at_level(logging.WARNING):
        clean = dag.test(logical_date=ten)
        drifted = dag.test(logical_date=eleven)
    # Then both succeed
    assert clean.state == drifted.state == "success"
    # And traffic_metrics holds each source's hour, counting what was logged
    engine = make_engine(pg_schema_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM traffic_metrics")).all()
    engine.dispose()
    counts = {(r.job, r.partition_key): r.value for r in rows if r.feature == "*" and r.metric == "input_rows"}
    assert counts == {
        ("online", "2026-01-01T10"): float(logged),
        ("online", "2026-01-01T11"): float(logged),
        ("stream", "2026-01-01T11"): float(logged),
    }
    flagged = {(r.job, r.partition_key, r.feature) for r in rows if r.drifted}
    # And only the tripled stream hour is flagged, on the distance and on the prediction
    assert flagged == {("stream", "2026-01-01T11", "trip_distance"), ("stream", "2026-01-01T11", "duration")}
    # And one warning names it, and only that run emits the drift event, naming the hour and features
    warnings = [r.getMessage() for r in caplog.records if "drifted from the model's reference" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("stream traffic of 2026-01-01T11 drifted")
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == "scoring://drift/monitor_traffic")
        ).all()
        extras = [(event.source_run_id, event.extra) for event in events]
    assert [run_id for run_id, _ in extras] == [drifted.run_id]
    assert extras[0][1]["partition"] == "2026-01-01T11"
    assert set(extras[0][1]["sources"]["stream"]) == {"trip_distance", "duration"}


def test_a_rerun_replaces_the_hours_metrics(airflow_db, scoring_env, dagbag, pg_schema_url, predictor):  # noqa: F811
    from sqlalchemy import text

    from scoring.batch.store.engines import make_engine

    hour = datetime(2026, 1, 2, 5, tzinfo=timezone.utc)
    _log_hour(pg_schema_url, predictor, "online", hour, 1.0, seed=4)
    dag = dagbag.dags["monitor_traffic"]
    first = dag.test(logical_date=hour)
    second = dag.test(logical_date=hour + timedelta(seconds=1), run_conf={"hour": "2026-01-02T05"})
    assert first.state == second.state == "success"
    engine = make_engine(pg_schema_url)
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT DISTINCT run_id FROM traffic_metrics")).scalars().all()
    engine.dispose()
    assert runs == [second.run_id]
