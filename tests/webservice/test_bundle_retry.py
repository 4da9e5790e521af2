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
from webservice.app import create_app as build_app
from webservice.model_slot import backoff_delays
from webservice.service import EXTENSION_KEY, start_retrying


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
        # Then its retry loop started with the app, before any request, and it is alive
        gate.wait_parked()
        assert client.get("/health").status_code == 200
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


def test_an_app_built_to_be_forked_retries_only_where_it_is_started(store, gate, load_calls):
    # Given the app as gunicorn's master builds it before forking (preload_app), its store unreachable
    app = build_app(Settings(model_uri=store.uri), retry_delays=gate.delays, retry_now=False)
    # Then no retry loop runs in the building process
    assert not retry_threads()
    assert gate.asked == 0
    # When a worker starts (gunicorn.conf.py's post_worker_init), its loop starts, once however often asked
    start_retrying(app)
    start_retrying(app)
    gate.wait_parked()
    assert len(retry_threads()) == 1
    # And an app that is not the service is left alone
    start_retrying(object())
    assert load_calls == [store.uri]


def test_a_retry_loop_stops_when_told_and_starts_no_other(store, load_calls):
    # Given a service whose store stays unreachable, with hour-long waits between attempts
    app = create_app(Settings(model_uri=store.uri), retry_delays=lambda: itertools.repeat(3600.0))
    [loop] = retry_threads()
    # When it is stopped (tests do, so loops do not pile up across apps)
    app.extensions[EXTENSION_KEY].slot.stop()
    loop.join(timeout=HANG_GUARD_SECONDS)
    # Then the loop ended during its wait, without another attempt, and requests start no new one
    assert not loop.is_alive()
    assert app.test_client().get("/ready").status_code == 503
    assert not retry_threads()
    assert load_calls == [store.uri]


def test_retries_that_run_out_say_so_once_and_start_no_other_loop(store, load_calls, caplog):
    # Given a service whose store stays unreachable, allowed one more attempt only
    with caplog.at_level(logging.INFO, logger="webservice"):
        app = create_app(Settings(model_uri=store.uri), retry_delays=lambda: iter([0.0]))
        for thread in retry_threads():
            thread.join(timeout=HANG_GUARD_SECONDS)
        # When requests arrive after the loop ran out
        statuses = [app.test_client().get("/ready").status_code for _ in range(3)]
    # Then it stays unready, one line says the retries stopped, and no loop started again
    assert statuses == [503] * 3
    assert not retry_threads()
    assert load_calls == [store.uri] * 2
    stopped = [r for r in caplog.records if "retries stopped" in r.getMessage()]
    assert [(r.levelname, "attempt 2" in r.getMessage()) for r in stopped] == [("ERROR", True)]


def test_backoff_doubles_from_one_second_to_a_one_minute_cap():
    assert list(itertools.islice(backoff_delays(), 9)) == [1, 2, 4, 8, 16, 32, 60, 60, 60]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["granian", "gunicorn", "gunicorn-gthread"])
def test_under_the_shipped_launcher_every_worker_loads_a_store_that_comes_up_after_start(
    server, store, demo_bundle_dir, predictor, tmp_path: Path
):
    # Given `python -m webservice.serve` with two workers (gunicorn loads the app in its master, then forks
    # them; Granian builds it in each) started while its S3 bundle store refuses connections, shipped backoff
    workers = 2
    port = free_port()
    env = {
        **{name: value for name, value in clean_environment().items() if not name.startswith(("WEB_", "AWS_"))},
        **store.environment(),
        "PORT": str(port),
        "WEB_SERVER": server,
        "WEB_WORKERS": str(workers),
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
        # Then it answers but is not ready (one request, so it reaches one worker)
        first = poll(url, "/ready", lambda status: status is not None, process, log_path)
        assert first == 503, log_path.read_text()
        # When the store comes up holding the bundle, and no request is sent at all
        store.come_up_with(demo_bundle_dir)
        # Then every worker loads the model by itself, with no restart and no request to start it
        wait_for_log(LOADED, workers, process, log_path)
        # And the service is ready, and every request is scored by whichever worker takes it
        poll(url, "/ready", lambda status: status == 200, process, log_path)
        expected = predict_valid(predictor, [TUTORIAL_RIDE])[0]
        responses = [
            requests.post(f"{url}/predict", json=TUTORIAL_RIDE, headers={"Connection": "close"}, timeout=10)
            for _ in range(20)
        ]
        assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
        assert {r.json()["duration"] for r in responses} == {expected}
    finally:
        stop(process)
    logged = log_path.read_text()
    assert "model bundle not loaded: cannot reach" in logged
    # Each worker loaded once; gunicorn's master, which serves nothing, never tried again
    assert logged.count(LOADED) == workers, logged
    assert "Traceback" not in logged


LOADED = "model bundle loaded on attempt"


def wait_for_log(text: str, count: int, process: subprocess.Popen, log_path: Path) -> None:
    """Wait, sending no request, until the server's log holds `text` `count` times; fails if it exits or hangs."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while log_path.read_text().count(text) < count:
        assert process.poll() is None, f"the server exited:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"{text!r} never logged {count} times:\n{log_path.read_text()}"
        time.sleep(0.2)


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
