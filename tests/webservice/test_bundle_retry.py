"""A bundle store that cannot be reached at startup is asked again in the background until the model loads; a
bundle that is missing, invalid or untrusted (ModelLoadError) is not. Real parts: boto3 against a port that
refuses connections, then a moto server on that port."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scoring.settings import Settings
from tests.conftest import predict_valid
from tests.support.gunicorn import REPO, clean_environment, free_port, stop
from tests.webservice.conftest import TUTORIAL_RIDE
from tests.webservice.unreachable_store import HANG_GUARD_SECONDS, Gate, UnreachableStore, retry_threads
from webservice import create_app
from webservice import service as service_module
from webservice.model_slot import backoff_delays


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[UnreachableStore]:
    store = UnreachableStore()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in store.environment().items():
        monkeypatch.setenv(name, value)
    yield store
    store.stop()


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.close()
    for thread in retry_threads():
        thread.join(timeout=HANG_GUARD_SECONDS)


@pytest.fixture
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every bundle load the service starts, by URI (the real load still runs)."""
    calls: list[str] = []
    real = service_module.load_bundle

    def counted(uri, trust):
        calls.append(uri)
        return real(uri, trust)

    monkeypatch.setattr(service_module, "load_bundle", counted)
    return calls


def test_a_store_unreachable_at_startup_is_retried_until_the_model_serves(
    store, gate, load_calls, demo_bundle_dir, predictor, caplog
):
    # Given a service started while its S3 bundle store refuses connections
    with caplog.at_level(logging.INFO, logger="webservice"):
        client = create_app(Settings(model_uri=store.uri), retry_delays=gate.delays).test_client()
        # Then it is alive, and its first request (a liveness probe) started the retry loop in this process
        assert client.get("/health").status_code == 200
        gate.wait_parked()
        # But it is not ready and scores nothing
        assert client.get("/ready").get_json()["checks"] == {"model": "not loaded"}
        assert client.post("/predict", json=TUTORIAL_RIDE).status_code == 503
        # When the retry loop tries again while the store is still down
        gate.let_one_attempt()
        gate.wait_parked()
        assert client.get("/ready").status_code == 503
        # And then the store comes up holding the bundle, and the loop tries once more
        store.come_up_with(demo_bundle_dir)
        gate.let_one_attempt()
        for thread in retry_threads():
            thread.join(timeout=HANG_GUARD_SECONDS)
    # Then the service is ready and serves the bundle's predictions, its OpenAPI document describing the model
    assert client.get("/ready").status_code == 200
    response = client.post("/predict", json=TUTORIAL_RIDE)
    assert response.status_code == 200
    assert response.get_json()["duration"] == predict_valid(predictor, [TUTORIAL_RIDE])[0]
    assert "PULocationID" in str(client.get("/openapi.json").get_json())
    # And the store was read three times, the loop stopped asking for delays once loaded, and each failed
    # attempt logged exactly one line, without a traceback
    assert load_calls == [store.uri] * 3
    assert gate.asked == 2
    failures = [r for r in caplog.records if "unreachable" in r.getMessage() or "not loaded" in r.getMessage()]
    assert [r.levelname for r in failures] == ["ERROR", "WARNING"]
    assert "attempt 2" in failures[1].getMessage()
    assert all(r.exc_info is None for r in failures)
    assert not retry_threads()


def test_a_model_load_error_is_attempted_exactly_once(gate, load_calls, tmp_path: Path, caplog):
    # Given a bundle that is missing for good (a ModelLoadError, not an unreachable store)
    missing = tmp_path / "models" / "ride_duration" / "1"
    missing.parent.mkdir(parents=True)
    with caplog.at_level(logging.INFO, logger="webservice"):
        client = create_app(Settings(model_uri=str(missing)), retry_delays=gate.delays).test_client()
        # When requests arrive (each would start a retry loop if there were one)
        statuses = [client.get("/ready").status_code for _ in range(3)]
        statuses.append(client.post("/predict", json=TUTORIAL_RIDE).status_code)
    # Then the service stays unready, and the bundle was read once: no loop runs, none asked for a delay
    assert statuses == [503] * 4
    assert load_calls == [str(missing)]
    assert not retry_threads()
    assert gate.asked == 0
    assert [r.levelname for r in caplog.records if "not loaded" in r.getMessage()] == ["ERROR"]


def test_a_bundle_reachable_but_invalid_on_retry_stops_the_loop(store, gate, load_calls, tmp_path: Path):
    # Given a service started while its store refused connections
    client = create_app(Settings(model_uri=store.uri), retry_delays=gate.delays).test_client()
    assert client.get("/ready").status_code == 503
    gate.wait_parked()
    # When the store comes up without the bundle (a ModelLoadError now) and the loop tries again
    empty = tmp_path / "empty"
    empty.mkdir()
    store.come_up_with(empty)
    gate.let_one_attempt()
    for thread in retry_threads():
        thread.join(timeout=HANG_GUARD_SECONDS)
    # Then the loop has stopped for good: more requests start no new one, and the store was read twice
    assert client.get("/ready").status_code == 503
    assert not retry_threads()
    assert load_calls == [store.uri] * 2


def test_backoff_doubles_from_one_second_to_a_one_minute_cap():
    assert list(itertools.islice(backoff_delays(), 9)) == [1, 2, 4, 8, 16, 32, 60, 60, 60]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["granian", "gunicorn", "gunicorn-gthread"])
def test_under_the_shipped_launcher_a_store_that_comes_up_after_start_is_loaded(
    server, store, demo_bundle_dir, predictor, tmp_path: Path
):
    # Given `python -m webservice.serve` (gunicorn loads the app in its master, then forks the worker)
    # started while its S3 bundle store refuses connections, with the shipped backoff
    port = free_port()
    env = {
        **{name: value for name, value in clean_environment().items() if not name.startswith(("WEB_", "AWS_"))},
        **store.environment(),
        "PORT": str(port),
        "WEB_SERVER": server,
        "WEB_WORKERS": "1",
        "WEB_ACCESS_LOG": "off",
        "SCORING_MODEL_URI": store.uri,
    }
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webservice.serve"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Then it answers but is not ready (this first request starts the worker's retry loop)
        first = poll(url, "/ready", lambda status: status is not None, process, log_path)
        assert first == 503, log_path.read_text()
        # When the store comes up holding the bundle
        store.come_up_with(demo_bundle_dir)
        # Then, with no restart, the worker becomes ready and serves the bundle's predictions
        poll(url, "/ready", lambda status: status == 200, process, log_path)
        response = requests.post(f"{url}/predict", json=TUTORIAL_RIDE, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["duration"] == predict_valid(predictor, [TUTORIAL_RIDE])[0]
    finally:
        stop(process)
    logged = log_path.read_text()
    assert "model bundle not loaded: cannot reach" in logged
    assert "model bundle loaded on attempt" in logged
    assert "Traceback" not in logged


def poll(url: str, path: str, done, process: subprocess.Popen, log_path: Path) -> int | None:
    """GET `url + path` until `done(status)` (None while nothing answers); fails if the server exits or hangs."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while True:
        assert process.poll() is None, f"the server exited:\n{log_path.read_text()}"
        try:
            status: int | None = requests.get(f"{url}{path}", timeout=5).status_code
        except requests.ConnectionError:
            status = None
        if done(status):
            return status
        assert time.monotonic() < deadline, f"{path} never answered as expected:\n{log_path.read_text()}"
        time.sleep(0.2)
