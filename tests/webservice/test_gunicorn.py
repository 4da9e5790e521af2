"""The service under real gunicorn, over real HTTP: the configuration shipped in webservice/gunicorn.conf.py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import predict_valid
from tests.support.gunicorn import (
    CONFIG,
    answered_probes,
    assert_a_chunked_body_over_the_limit_is_refused,
    assert_metrics_add_up_across_workers,
    raw_exchange,
    running_gunicorn,
    slow_header_clients,
)
from tests.webservice.conftest import TUTORIAL_RIDE

KEY = "gunicorn-test-key"
WORKERS = 2
# More slow clients than the two workers had threads (2 x 8) before the gevent worker: then they stopped
# most other requests; now each holds a greenlet, and its header wait ends with the keep-alive timeout.
SLOW_CLIENTS = 24
PROBES = 12


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
    expected = predict_valid(predictor, [TUTORIAL_RIDE])[0]
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
    assert_a_chunked_body_over_the_limit_is_refused(server, session)


def test_metrics_add_up_across_workers(server, session):
    assert_metrics_add_up_across_workers(server, session, TUTORIAL_RIDE)


def test_probes_answer(server):
    assert requests.get(f"{server}/health", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{server}/ready", timeout=10).json() == {"status": "ready", "checks": {"model": "ok"}}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"bind": "127.0.0.1:8000", "preload_app": True, "timeout": 30}),
        ({"PORT": "9001"}, {"bind": "127.0.0.1:9001"}),
        ({"GUNICORN_BIND": "0.0.0.0:8000"}, {"bind": "0.0.0.0:8000"}),
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
    # In a child process: loading the config monkey-patches for gevent, as it must inside gunicorn's master.
    script = (
        "import json, runpy, sys; config = runpy.run_path(sys.argv[1]); "
        "print(json.dumps({name: config[name] for name in sys.argv[2:]}))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script, str(CONFIG), *expected], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(shown) == expected


def test_sigterm_stops_an_idle_gevent_worker_gracefully(demo_bundle_dir, tmp_path):
    # Given the shipped config (gevent, 2 workers) where one worker has served nothing
    with running_gunicorn(
        tmp_path / "gunicorn.log", SCORING_MODEL_URI=str(demo_bundle_dir), GUNICORN_WORKERS="2"
    ) as url:
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
    # Then SIGTERM stopped every worker within gunicorn's grace (running_gunicorn asserts exit code 0; an idle
    # worker patched only after the fork ignored it until killed)
    assert "Shutting down: Master" in (tmp_path / "gunicorn.log").read_text()


def test_slow_header_clients_do_not_stop_other_requests(server):
    # Given 24 connections that each send one header line a second and never finish their request head
    with slow_header_clients(server, SLOW_CLIENTS) as slow:
        assert len(slow) == SLOW_CLIENTS
        # When ordinary /predict requests arrive meanwhile, each on a new connection
        answered = answered_probes(server, PROBES, TUTORIAL_RIDE, {"X-API-Key": KEY})
    # Then every one of them is answered
    assert answered == PROBES


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n", 400, "bad_request"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 120 + b"\r\n", 431, "header_fields_too_large"),
    ],
)
def test_requests_gunicorn_refuses_get_a_json_error(server, request_bytes, status, code):
    # Given a request the HTTP parser refuses before the app sees it
    # When it is sent as raw bytes
    answered_status, headers, body = raw_exchange(server, request_bytes)
    # Then the answer is the service's JSON error shape, not gunicorn's HTML page, and echoes nothing back
    assert answered_status == status
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert b"GARBAGE" not in body and b"aaaa" not in body
