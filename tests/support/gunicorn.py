"""The real web service on a free port, always stopped: as shipped (python -m webservice.serve, Granian), or
under gunicorn with its configuration."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "webservice" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without the variables the service reads, plus `settings`."""
    own = ("SCORING_", "GUNICORN_", "PROMETHEUS_MULTIPROC_DIR", "PORT")
    kept = {name: value for name, value in os.environ.items() if not name.startswith(own)}
    return {**kept, "PYTHONPATH": str(REPO), **settings}


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to the whole group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def running_gunicorn(log_path: Path, **settings: str) -> Iterator[str]:
    """gunicorn with the shipped config and these SCORING_/GUNICORN_ settings; yields its base URL once ready."""
    port = free_port()
    env = clean_environment(GUNICORN_BIND=f"127.0.0.1:{port}", **settings)
    command = [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "webservice.wsgi:app"]
    with _running(command, env, port, log_path) as (url, process):
        yield url
    assert process.returncode == 0, log_path.read_text()


@contextmanager
def running_service(log_path: Path, *args: str, **settings: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m webservice.serve` on a free port with these settings; yields its URL and process once ready."""
    port = free_port()
    inherited = {name: value for name, value in clean_environment().items() if not name.startswith("WEB_")}
    env = {**inherited, "PORT": str(port), "WEB_ACCESS_LOG": "off", **settings}
    with _running([sys.executable, "-m", "webservice.serve", *args], env, port, log_path) as running:
        yield running


@contextmanager
def _running(
    command: list[str], env: dict[str, str], port: int, log_path: Path
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `command` (a server on `port`), wait for its /ready, yield its URL and process; always stopped."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the server exited early:\n{log_path.read_text()}"
            try:
                if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the server never became ready:\n{log_path.read_text()}"
            time.sleep(0.2)
        yield url, process
    finally:
        stop(process)


@contextmanager
def slow_header_clients(url: str, count: int, interval: float = 1.0) -> Iterator[list[socket.socket]]:
    """`count` connections that send a request line, then one header line every `interval` seconds, never finishing.

    The classic slowloris: each one looks like a live client to a server that gives every connection a
    thread while it reads the request head. They drip until the block ends, then close.
    """
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: slow\r\n")
        sockets.append(sock)
    stopped = threading.Event()

    def drip() -> None:
        line = 0
        while not stopped.wait(interval):
            line += 1
            for sock in sockets:
                # The server may have given up on this one: that is its right.
                with contextlib.suppress(OSError):
                    sock.sendall(f"X-Drip-{line}: x\r\n".encode())

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        yield sockets
    finally:
        stopped.set()
        dripper.join(timeout=10)
        for sock in sockets:
            sock.close()


def answered_probes(url: str, count: int, body: dict, headers: dict[str, str], timeout: float = 10) -> int:
    """How many of `count` POST /predict requests, each on a fresh connection, got a 200 within `timeout` seconds."""
    answered = 0
    for _ in range(count):
        try:
            response = requests.post(
                f"{url}/predict", json=body, headers={**headers, "Connection": "close"}, timeout=timeout
            )
        except requests.RequestException:
            continue
        answered += response.status_code == 200
    return answered


def raw_answer(url: str, request: bytes) -> bytes:
    """Send raw bytes (what no HTTP client would send), read until the server closes: its whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parsed_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """An HTTP answer's status, headers (lower-case names) and body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, headers (lower-case names) and body."""
    return parsed_answer(raw_answer(url, request))


def predictions_counted(url: str) -> float:
    """scoring_predictions_total as one /metrics scrape (any worker may answer it) adds it up."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "scoring_predictions_total"
    )


def assert_a_chunked_body_over_the_limit_is_refused(url: str, session: requests.Session) -> None:
    """A generator body goes out chunked, with no Content-Length to check up front: refused while it streams."""
    chunks = (
        b'{"records": [' if i == 0 else b'{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 3},'
        for i in range(200)
    )
    response = session.post(f"{url}/predict", data=chunks, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def assert_metrics_add_up_across_workers(url: str, session: requests.Session, record: dict) -> None:
    """Records predicted over two connections (so several workers take some) are counted in full by every scrape."""
    # Given a known number of records predicted, from concurrent connections
    before = predictions_counted(url)
    with requests.Session() as other:
        other.headers.update(session.headers)
        for _ in range(10):
            session.post(f"{url}/predict", json=record, timeout=10)
            other.post(f"{url}/predict", json={"records": [record] * 3}, timeout=10)
    # When /metrics is scraped several times, over fresh connections that any worker may answer,
    # Then every scrape sees the total of all workers
    assert {predictions_counted(url) for _ in range(6)} == {before + 40}
