"""/predict queues each scored record for prediction_log, never waits for it, and counts what it loses in /metrics."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from scoring.monitoring.prediction_log import PredictionLog
from tests.webservice.conftest import TUTORIAL_RIDE
from webservice.service import current_service

RIDES = [{**TUTORIAL_RIDE, "ride_id": 100 + i, "trip_distance": 1.0 + i} for i in range(3)]


def dropped(client, reason: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "scoring_prediction_log_dropped_total" and sample.labels["reason"] == reason
    )


@pytest.mark.postgres
def test_each_scored_record_is_logged_with_its_inputs_prediction_and_version(make_app, pg_engine, pg_schema_url):
    # Given the service with a prediction log on a migrated database
    app = make_app(prediction_log_url=pg_schema_url)
    client = app.test_client()
    # When a batch of rides is scored, and a request with an invalid ride is refused
    answer = client.post("/predict", json={"records": RIDES}).get_json()
    assert client.post("/predict", json={"records": [{"PULocationID": True}]}).status_code == 422
    with app.app_context():
        current_service().prediction_log._current().flush()
    # Then prediction_log holds the three scored rides (nothing of the refused request), as answered
    with pg_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM prediction_log ORDER BY record_id")).all()
    assert [r.record_id for r in rows] == ["100", "101", "102"]
    assert [r.prediction for r in rows] == [p["duration"] for p in answer["predictions"]]
    assert {(r.source, r.model_name, r.model_version) for r in rows} == {("online", "ride_duration", "1")}
    assert rows[0].inputs == {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 1.0}


def test_a_full_queue_drops_records_without_waiting_and_metrics_count_them(make_app, monkeypatch):
    # Given a prediction log whose queue holds two records and whose database is down
    def refuse() -> None:
        raise ConnectionError("database down")

    monkeypatch.setattr(
        PredictionLog, "from_url", classmethod(lambda cls, url, source, **kw: cls(refuse, source, capacity=2, **kw))
    )
    client = make_app(prediction_log_url="postgresql://nobody@127.0.0.1:1/none").test_client()
    # When five rides are scored
    response = client.post("/predict", json={"records": RIDES + RIDES[:2]})
    # Then the request is answered, and the three that did not fit are counted as dropped (the writer never
    # connected, so the answer did not wait for it)
    assert response.status_code == 200
    assert dropped(client, "queue_full") == 3


def test_without_a_log_url_nothing_is_logged(client):
    assert current_service_of(client).prediction_log is None


def current_service_of(client):
    with client.application.app_context():
        return current_service()


@pytest.mark.postgres
def test_a_sampled_log_keeps_whole_requests_in_about_the_sampled_share(make_app, pg_engine, pg_schema_url):
    # Given the service logging a tenth of its requests
    app = make_app(prediction_log_url=pg_schema_url, prediction_log_sample=0.1)
    client = app.test_client()
    # When 400 requests of three rides are scored
    for _ in range(400):
        assert client.post("/predict", json={"records": RIDES}).status_code == 200
    with app.app_context():
        current_service().prediction_log._current().flush()
    # Then whole requests were logged (each logged request's three rides together), about a tenth of them
    with pg_engine.connect() as connection:
        ids = [row.record_id for row in connection.execute(sa.text("SELECT record_id FROM prediction_log"))]
    assert ids.count("100") == ids.count("101") == ids.count("102")
    assert 10 <= ids.count("100") <= 80  # 40 expected; outside these bounds once in about 10**9 runs


@pytest.mark.parametrize("sample", [0.0, -0.5, 1.5, float("nan")])
def test_a_sample_outside_0_to_1_is_refused_by_name(sample):
    from scoring.errors import ConfigError
    from scoring.settings import Settings

    with pytest.raises(ConfigError, match="SCORING_PREDICTION_LOG_SAMPLE"):
        Settings.from_env({"SCORING_PREDICTION_LOG_SAMPLE": str(sample)})
