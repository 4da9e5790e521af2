"""The service as `make serve` and the image run it: `python -m webservice.serve` (Granian), over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import predict_valid
from tests.support.gunicorn import (
    answered_probes,
    assert_a_chunked_body_over_the_limit_is_refused,
    assert_metrics_add_up_across_workers,
    raw_exchange,
    running_service,
    slow_header_clients,
)
from tests.webservice.conftest import TUTORIAL_RIDE
from webservice.serve import ServeSettings, gunicorn_environment

KEY = "serve-test-key"
WORKERS = 2
SLOW_CLIENTS = 40
PROBES = 10


@pytest.fixture(scope="module")
def served(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_service(
        log_path,
        SCORING_MODEL_URI=str(demo_bundle_dir),
        SCORING_API_KEY=KEY,
        SCORING_MAX_REQUEST_BYTES="4096",
        WEB_WORKERS=str(WORKERS),
    ) as running:
        yield running


@pytest.fixture
def server(served) -> str:
    return served[0]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["X-API-Key"] = KEY
        yield http


def test_granian_serves_the_tutorial_payload_as_the_core_predicts_it(server, session, predictor):
    response = session.post(f"{server}/predict", json=TUTORIAL_RIDE, timeout=10)
    assert response.headers["server"] == "granian"
    expected = predict_valid(predictor, [TUTORIAL_RIDE])[0]
    assert response.json() == {"duration": expected, "model_name": "ride_duration", "model_version": "1"}


def test_errors_the_app_answers_are_json(server, session):
    bad_json = session.post(f"{server}/predict", data=b"{oops", headers={"Content-Type": "application/json"})
    nan = session.post(f"{server}/predict", data=b'{"PULocationID": NaN}', headers={"Content-Type": "application/json"})
    too_big = session.post(f"{server}/predict", json={"records": [TUTORIAL_RIDE] * 200})
    assert (bad_json.status_code, bad_json.json()["error"]["code"]) == (400, "invalid_json")
    # A NaN literal is still read (orjson refuses it; the standard library reads it) and refused by field
    assert nan.status_code == 422
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_body_over_the_limit_is_refused(server, session):
    assert_a_chunked_body_over_the_limit_is_refused(server, session)


def test_requests_granian_refuses_itself_get_no_html_and_echo_nothing(server):
    # Given a request Granian's HTTP parser refuses before the app sees it (Granian offers no hook for its body)
    status, headers, body = raw_exchange(server, b"GARBAGE\r\n\r\n")
    # Then it answers 400 without a body: no HTML page, nothing of the request echoed
    assert status == 400
    assert body == b"" and b"GARBAGE" not in body


def test_metrics_add_up_across_granian_workers(server, session):
    assert_metrics_add_up_across_workers(server, session, TUTORIAL_RIDE)


def test_slow_body_clients_do_not_stop_other_requests(server):
    # Given 40 connections that each sent a complete head announcing a body, then drip one byte of it a second
    host, port = server.removeprefix("http://").split(":")
    slow = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"
        )
        slow.append(sock)
    try:
        time.sleep(1)
        for sock in slow:
            sock.sendall(b" ")
        # When ordinary /predict requests arrive meanwhile, Then every one is answered (each slow body holds a thread)
        assert answered_probes(server, PROBES, TUTORIAL_RIDE, {"X-API-Key": KEY}) == PROBES
    finally:
        for sock in slow:
            sock.close()


def test_slow_header_clients_do_not_stop_other_requests(server):
    # Given 40 connections that each send one header line a second and never finish their request head
    with slow_header_clients(server, SLOW_CLIENTS) as slow:
        assert len(slow) == SLOW_CLIENTS
        # When ordinary /predict requests arrive meanwhile, Then every one is answered
        assert answered_probes(server, PROBES, TUTORIAL_RIDE, {"X-API-Key": KEY}) == PROBES


def test_a_slow_header_client_is_cut_off_after_the_header_timeout(served):
    # Given a client that sends a request line and then nothing
    url, _ = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: slow\r\n")
        started = time.monotonic()
        # When it waits, Then the server closes the connection after the header timeout (5 s), not 30 s or never
        while sock.recv(1024):
            pass
        assert 3 < time.monotonic() - started < 15


def test_sighup_reloads_workers_one_by_one_without_refusing_requests(served, session):
    # Given the running service, When its launcher gets SIGHUP while requests keep arriving
    url, process = served
    os.kill(process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    statuses = []
    while time.monotonic() < deadline:
        statuses.append(session.post(f"{url}/predict", json=TUTORIAL_RIDE, timeout=10).status_code)
        time.sleep(0.05)
    # Then every request was answered while the workers were replaced
    assert set(statuses) == {200}


def test_sigterm_stops_the_service_and_removes_its_metrics_directory(demo_bundle_dir, tmp_path):
    # Given the service started without a metrics directory of its own (it makes one under TMPDIR)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    settings = {"SCORING_MODEL_URI": str(demo_bundle_dir), "WEB_WORKERS": "1", "TMPDIR": str(temporary)}
    with running_service(tmp_path / "serve.log", **settings) as (url, process):
        requests.post(f"{url}/predict", json=TUTORIAL_RIDE, timeout=10)
        assert [p.name[:16] for p in temporary.iterdir()] == ["scoring-metrics-"]
    # When SIGTERM stopped it (running_service's stop), Then it exited cleanly and removed the directory
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"server": "granian", "host": "127.0.0.1", "port": 8000, "threads": 64, "header_timeout_s": 5}),
        ({"WEB_SERVER": "gunicorn"}, {"threads": 8}),
        ({"WEB_HOST": "0.0.0.0", "PORT": "9001"}, {"host": "0.0.0.0", "port": 9001}),
        ({"GUNICORN_HOST": "0.0.0.0", "GUNICORN_WORKERS": "3"}, {"host": "0.0.0.0", "workers": 3}),
        ({"WEB_WORKERS": "5", "WEB_THREADS": "2"}, {"workers": 5, "threads": 2}),
        ({"WEB_ACCESS_LOG": "off"}, {"access_log": False}),
        ({"WEB_SERVER": "gunicorn-gthread"}, {"server": "gunicorn-gthread"}),
    ],
)
def test_serve_settings_come_from_the_environment(environ, expected):
    settings = ServeSettings.from_env(environ)
    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.parametrize("environ", [{"WEB_SERVER": "uwsgi"}, {"WEB_WORKERS": "0"}, {"PORT": "eighty"}])
def test_bad_serve_settings_are_one_line_errors(environ):
    with pytest.raises(ValueError, match="WEB_SERVER|WEB_WORKERS|PORT"):
        ServeSettings.from_env(environ)


def test_gunicorn_gets_the_same_bind_workers_and_header_timeout():
    settings = ServeSettings.from_env({"WEB_SERVER": "gunicorn", "WEB_WORKERS": "3", "PORT": "9002"})
    env = gunicorn_environment(settings, {})
    assert env["GUNICORN_BIND"] == "127.0.0.1:9002" and env["GUNICORN_WORKERS"] == "3"
    assert env["GUNICORN_KEEPALIVE"] == "5" and env["GUNICORN_WORKER_CLASS"].endswith("JsonErrorGeventWorker")


class _Execed(Exception):
    """Stands in for os.execve: the launcher would be replaced by gunicorn here."""


@pytest.mark.parametrize(("server", "warned"), [("gunicorn-gthread", True), ("gunicorn", False)])
def test_the_launcher_warns_once_when_the_threaded_worker_is_chosen(monkeypatch, capsys, server, warned):
    import webservice.serve

    # Given WEB_SERVER naming a gunicorn worker (execve stopped before gunicorn replaces the process)
    monkeypatch.setenv("WEB_SERVER", server)

    def execve(*_args):
        raise _Execed

    monkeypatch.setattr(webservice.serve.os, "execve", execve)
    # When the launcher starts
    with pytest.raises(_Execed):
        webservice.serve.main([])
    # Then only the threaded worker, which slow clients stop, gets one warning line saying so
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert lines == ([webservice.serve.GTHREAD_WARNING] if warned else [])
    assert not warned or "slowly" in lines[0]
