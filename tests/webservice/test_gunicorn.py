"""The service under real gunicorn, over real HTTP: the configuration shipped in webservice/gunicorn.conf.py."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gunicorn import CONFIG, running_gunicorn
from tests.webservice.conftest import TUTORIAL_RIDE

KEY = "gunicorn-test-key"
WORKERS = 2


@pytest.fixture(scope="module")
def server(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gunicorn with the shipped config on a free port; always stopped, even when startup fails."""
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with running_gunicorn(
        log_path,
        SCORING_MODEL_URI=str(demo_bundle_dir),
        SCORING_API_KEY=KEY,
        SCORING_MAX_REQUEST_BYTES="4096",
        GUNICORN_WORKERS=str(WORKERS),
    ) as url:
        yield url


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["X-API-Key"] = KEY
        yield http


def test_tutorial_payload_over_http_equals_the_core(server, session, predictor):
    response = session.post(f"{server}/predict", json=TUTORIAL_RIDE, timeout=10)
    assert response.status_code == 200
    expected = predictor.predict(predictor.schema.require_valid([TUTORIAL_RIDE]))[0]
    assert response.json() == {"duration": expected, "model_name": "ride_duration", "model_version": "1"}


def test_errors_over_http_are_json(server, session):
    bad_json = session.post(
        f"{server}/predict", data=b"{oops", headers={"Content-Type": "application/json"}, timeout=10
    )
    no_key = requests.post(f"{server}/predict", json=TUTORIAL_RIDE, timeout=10)
    invalid = session.post(f"{server}/predict", json={"records": [TUTORIAL_RIDE, {"PULocationID": True}]}, timeout=10)
    assert (bad_json.status_code, bad_json.json()["error"]["code"]) == (400, "invalid_json")
    assert (no_key.status_code, no_key.json()["error"]["code"]) == (401, "unauthorized")
    assert invalid.status_code == 422 and invalid.json()["error"]["problems"][0]["index"] == 1


def test_a_chunked_body_over_the_limit_is_refused_while_streaming(server, session):
    # A generator body goes out with Transfer-Encoding: chunked and no Content-Length to check up front.
    chunks = (
        b'{"records": [' if i == 0 else b'{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 3},'
        for i in range(200)
    )
    response = session.post(f"{server}/predict", data=chunks, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_metrics_add_up_across_workers(server, session):
    # Given a known number of records predicted, from concurrent connections so both workers take some
    before = predictions_counted(server)
    with requests.Session() as other:
        other.headers["X-API-Key"] = KEY
        for _ in range(10):
            session.post(f"{server}/predict", json=TUTORIAL_RIDE, timeout=10)
            other.post(f"{server}/predict", json={"records": [TUTORIAL_RIDE] * 3}, timeout=10)
    # When /metrics is scraped several times, over fresh connections that any worker may answer
    scrapes = {predictions_counted(server) for _ in range(6)}
    # Then every scrape sees the total of all workers
    assert scrapes == {before + 40}


def predictions_counted(url: str) -> float:
    text = requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "scoring_predictions_total"
    )


def test_probes_answer(server):
    assert requests.get(f"{server}/health", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{server}/ready", timeout=10).json() == {"status": "ready", "checks": {"model": "ok"}}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"bind": "0.0.0.0:8000", "preload_app": True, "timeout": 30}),
        ({"PORT": "9001"}, {"bind": "0.0.0.0:9001"}),
        ({"PORT": "9001", "GUNICORN_BIND": "unix:/run/scoring.sock"}, {"bind": "unix:/run/scoring.sock"}),
        ({"GUNICORN_WORKERS": "7", "GUNICORN_THREADS": "2"}, {"workers": 7, "threads": 2}),
        ({"GUNICORN_ACCESS_LOG": "off"}, {"accesslog": None}),
    ],
)
def test_config_reads_its_overrides_from_the_environment(monkeypatch, tmp_path, environ, expected):
    for name in ("PORT", "GUNICORN_BIND", "GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_ACCESS_LOG"):
        monkeypatch.delenv(name, raising=False)
    # A metrics directory given up front, so loading the config creates none (monkeypatch restores the variable).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = runpy.run_path(str(CONFIG))
    assert {name: config[name] for name in expected} == expected
