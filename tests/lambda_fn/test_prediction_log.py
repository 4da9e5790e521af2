"""The Lambda logs what it published to prediction_log before each invocation returns, and a database outage
changes nothing of its answer."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres


@pytest.fixture
def plain_lambda(cold_start, monkeypatch):
    """A cold Lambda without a prediction log (tests/support's cold start does not clear this variable)."""
    monkeypatch.delenv("SCORING_PREDICTION_LOG_URL", raising=False)
    return cold_start()


def _logged(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT * FROM prediction_log ORDER BY id")).all()


def test_the_lambda_logs_each_published_prediction_with_its_inputs(
    plain_lambda, cold_start, recorded_event, pg_engine, pg_schema_url
):
    # Given a cold Lambda with a prediction log, and one without
    plain = plain_lambda
    logged = cold_start(SCORING_PREDICTION_LOG_URL=pg_schema_url)
    # When both handle the recorded Kinesis batch (valid rides and some that are not)
    answer = logged.lambda_handler(recorded_event("kinesis_rides.json"), None)
    # Then the answer is the same as without the log
    assert answer == plain.lambda_handler(recorded_event("kinesis_rides.json"), None)
    # And every published prediction is in prediction_log by the time the invocation returned, from the stream
    rows = _logged(pg_engine)
    published = answer["predictions"]
    assert len(rows) == len(published) > 0
    assert {r.source for r in rows} == {"stream"}
    assert {(r.model_name, r.model_version) for r in rows} == {("ride_duration", "1")}
    answers = [message["prediction"] for message in published]
    assert sorted(r.record_id for r in rows) == sorted(str(a["ride_id"]) for a in answers)
    by_id = {str(a["ride_id"]): a["duration"] for a in answers}
    assert all(r.prediction == pytest.approx(by_id[r.record_id]) for r in rows)
    # And only the model's inputs are kept of each record
    assert all(set(r.inputs) <= {"PULocationID", "DOLocationID", "trip_distance"} for r in rows)
    assert logged.HANDLER.prediction_log.written == len(rows)


def test_a_database_outage_fails_no_record(plain_lambda, cold_start, recorded_event, caplog):
    # Given a Lambda whose prediction log points where no database listens
    plain = plain_lambda
    logged = cold_start(SCORING_PREDICTION_LOG_URL="postgresql://postgres@127.0.0.1:1/test")
    # When it handles a batch
    with caplog.at_level(logging.WARNING):
        answer = logged.lambda_handler(recorded_event("kinesis_rides.json"), None)
    # Then its answer is the one without a log, the lost records are counted and a warning says so
    assert answer == plain.lambda_handler(recorded_event("kinesis_rides.json"), None)
    assert logged.HANDLER.prediction_log.failed == len(answer["predictions"])
    assert any(r.getMessage().startswith("prediction log: ") for r in caplog.records)
