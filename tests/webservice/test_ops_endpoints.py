"""GET /health, /ready, /model, /metrics and the OpenAPI document."""

from __future__ import annotations

import shutil

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scoring.settings import Settings
from tests.webservice.conftest import TUTORIAL_RIDE
from webservice import create_app
from webservice.readiness import DatabaseProbe, database_to_check


def test_health_answers_while_the_process_lives(client):
    response = client.get("/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_ready_when_the_model_is_loaded_and_no_database_is_configured(client):
    response = client.get("/ready")
    assert (response.status_code, response.get_json()) == (200, {"status": "ready", "checks": {"model": "ok"}})


def test_not_ready_without_a_model(make_app, tmp_path):
    response = make_app(bundle=None, model_uri=str(tmp_path / "missing")).test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "not ready", "checks": {"model": "not loaded"}}


def test_ready_checks_a_configured_database(make_app, tmp_path):
    client = make_app(database_url=f"sqlite:///{tmp_path / 'scoring.db'}").test_client()
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"model": "ok", "database": "ok"}


def test_not_ready_when_the_configured_database_is_unreachable(make_app):
    # Port 9 (discard) has no PostgreSQL behind it: the connection is refused at once.
    client = make_app(database_url="postgresql://scorer:hunter2@127.0.0.1:9/nowhere").test_client()
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"model": "ok", "database": "unreachable (OperationalError)"}
    assert "hunter2" not in response.get_data(as_text=True)


@pytest.mark.postgres
def test_ready_with_the_real_postgresql(make_app, postgres_url):
    response = make_app(database_url=postgres_url).test_client().get("/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"]["database"] == "ok"


def test_database_probe_remembers_its_answer_for_a_while(tmp_path):
    # Given a probe on a SQLite file whose directory will vanish, and a clock the test controls
    directory = tmp_path / "db"
    directory.mkdir()
    now = [100.0]
    probe = DatabaseProbe(f"sqlite:///{directory / 'scoring.db'}", cache_seconds=5, clock=lambda: now[0])
    assert probe.check().ok
    shutil.rmtree(directory)
    # When asked again inside the window, then the remembered answer comes back without a query
    now[0] += 4.9
    assert probe.check().ok
    # When the window has passed, then the probe looks again and sees the failure
    now[0] += 0.2
    assert probe.check().detail == "unreachable (OperationalError)"


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        (None, None),
        ("sqlite:////srv/predictions.db", "sqlite:////srv/predictions.db"),
        ("postgresql://db/x", "postgresql://db/x"),
    ],
)
def test_only_a_database_chosen_on_purpose_is_part_of_readiness(database_url, expected):
    settings = Settings() if database_url is None else Settings(database_url=database_url)
    assert database_to_check(settings) == expected


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        # Set to the default URL on purpose: the service was pointed at that database, so /ready checks it
        ({"SCORING_DATABASE_URL": "sqlite:///var/scoring.db"}, "sqlite:///var/scoring.db"),
        ({"SCORING_DATABASE_URL": "postgresql://db/x"}, "postgresql://db/x"),
    ],
)
def test_readiness_checks_the_database_whenever_its_variable_is_set(environ, expected):
    assert database_to_check(Settings.from_env(environ)) == expected


def test_metrics_sum_the_workers_directory_named_at_app_creation(demo_bundle, tmp_path, monkeypatch):
    # Given a multiprocess directory named in the settings, and none in the environment of this process
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    app = create_app(Settings(prometheus_multiproc_dir=str(tmp_path)), bundle=demo_bundle)
    # When /metrics is scraped, then it reads that directory (empty here), not this app's own registry
    client = app.test_client()
    client.get("/health")
    body = client.get("/metrics").get_data(as_text=True)
    assert "scoring_http_request_duration_seconds" not in body
    # And without the setting, the app's own registry answers with what it observed
    own = create_app(Settings(), bundle=demo_bundle).test_client()
    own.get("/health")
    assert "scoring_http_request_duration_seconds_count" in own.get("/metrics").get_data(as_text=True)


def test_model_describes_the_loaded_bundle(client, demo_bundle):
    body = client.get("/model").get_json()
    assert (body["name"], body["version"], body["sha256"]) == ("ride_duration", "1", demo_bundle.manifest.sha256)
    assert [(f["name"], f["type"], f["required"]) for f in body["inputs"]] == [
        ("PULocationID", "integer", True),
        ("DOLocationID", "integer", True),
        ("trip_distance", "number", True),
    ]
    assert body["limits"] == {"max_records": 1000, "max_bytes": 1_048_576}
    # The JSON Schema of one record accepts the tutorial payload and refuses what the validator refuses.
    jsonschema.validate(TUTORIAL_RIDE, body["input_schema"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**TUTORIAL_RIDE, "DOLocationID": 10.7}, body["input_schema"])


def samples(client) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics scrape, keyed by `sample_key`."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        sample_key(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample_key(name: str, **labels: str) -> tuple[str, tuple]:
    return name, tuple(sorted(labels.items()))


def test_metrics_count_latency_predictions_and_errors_by_code(client):
    # Given two good requests (1 and 3 records), one invalid record and one unknown path
    client.post("/predict", json=TUTORIAL_RIDE)
    client.post("/predict", json={"records": [TUTORIAL_RIDE] * 3})
    client.post("/predict", json={**TUTORIAL_RIDE, "trip_distance": "far"})
    client.get("/favicon.ico")
    # When the metrics are scraped
    seen = samples(client)
    # Then records predicted, errors by status and code, and latencies by endpoint are all there
    assert seen[sample_key("scoring_predictions_total", model_name="ride_duration", model_version="1")] == 4
    assert seen[sample_key("scoring_http_errors_total", code="invalid_input", status="422")] == 1
    assert seen[sample_key("scoring_http_errors_total", code="not_found", status="404")] == 1
    latency = "scoring_http_request_duration_seconds"
    ok_predict = {"endpoint": "/predict", "method": "POST", "status": "200"}
    assert seen[sample_key(f"{latency}_count", **ok_predict)] == 2
    assert seen[sample_key(f"{latency}_bucket", **ok_predict, le="+Inf")] == 2
    assert seen[sample_key(f"{latency}_count", endpoint="unmatched", method="GET", status="404")] == 1


def test_each_app_counts_from_zero(make_app):
    first, second = make_app().test_client(), make_app().test_client()
    first.post("/predict", json=TUTORIAL_RIDE)
    assert not any(name == "scoring_predictions_total" for name, _ in samples(second))


def test_openapi_document_is_valid_and_mirrors_the_manifest(make_app):
    validator = pytest.importorskip("openapi_spec_validator")
    document = make_app(max_request_records=50).test_client().get("/openapi.json").get_json()
    validator.validate(document)
    record = document["components"]["schemas"]["Record"]
    assert record["required"] == ["PULocationID", "DOLocationID", "trip_distance"]
    assert record["properties"]["PULocationID"] == {"type": "integer", "minimum": 0.0}
    assert record["properties"]["trip_distance"] == {"type": "number", "minimum": 0.0}
    assert document["components"]["schemas"]["Batch"]["properties"]["records"]["maxItems"] == 50
    assert "security" not in document["paths"]["/predict"]["post"]


def test_openapi_declares_the_key_only_when_one_is_configured(make_app):
    document = make_app(api_key="k").test_client().get("/openapi.json").get_json()
    assert document["paths"]["/predict"]["post"]["security"] == [{"ApiKeyHeader": []}, {"BearerAuth": []}]
    assert "security" not in document["paths"]["/health"]["get"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (TUTORIAL_RIDE, "200"),
        ({"records": [{**TUTORIAL_RIDE, "ride_id": 1}, TUTORIAL_RIDE]}, "200"),
        ({"records": [TUTORIAL_RIDE, {"PULocationID": "x"}]}, "422"),
        ({"records": 3}, "400"),
    ],
)
def test_responses_match_the_documented_schemas(client, body, status):
    document = client.get("/openapi.json").get_json()
    response = client.post("/predict", json=body)
    assert str(response.status_code) == status
    schema = document["paths"]["/predict"]["post"]["responses"][status]["content"]["application/json"]["schema"]
    # The components ride along so that "#/components/..." references resolve inside the document.
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(response.get_json())


def test_unknown_methods_paths_and_statuses_share_one_label_value_each(client):
    # Given many requests with made-up methods and paths, as a scanner or a fuzzer sends them
    for number in range(300):
        client.open(f"/probe-{number}", method=f"X{number}")
        client.get(f"/no/such/page/{number}")
        client.open("/predict", method=f"PATCH{number}")
    # When the metrics are scraped
    latency = [
        dict(labels) for name, labels in samples(client) if name == "scoring_http_request_duration_seconds_count"
    ]
    # Then the label values stay few: the methods HTTP defines, the service's routes, the statuses it answers
    methods = {labels["method"] for labels in latency}
    endpoints = {labels["endpoint"] for labels in latency}
    assert methods == {"GET", "other"}
    assert endpoints == {"unmatched"}  # a 405 has no matched rule either
    assert len(latency) <= 3
