"""The compose front door for real: nginx with docker/nginx/nginx.conf in front of `python -m webservice.serve`.

Only the upstream address, the port and the log and temp paths are rewritten for this machine; every
limit, timeout, buffer and error page is the file compose mounts. Needs the nginx binary: skipped
without it, except under CI=true, where .ci/run installs it and its absence fails the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.compose.stack import ROOT
from tests.support.gunicorn import (
    answered_probes,
    free_port,
    parsed_answer,
    raw_answer,
    running_service,
    slow_header_clients,
    stop,
)
from tests.webservice.conftest import TUTORIAL_RIDE

KEY = "front-door-key"
SLOW_CLIENTS = 24  # the number
PROBES = 10
LIMIT = 1024 * 1024  # SCORING_MAX_REQUEST_BYTES in compose, = nginx's client_max_body_size
START_TRIES = 5  # ports tried when another process takes the free one before nginx binds it
READY_WITHIN = 30  # seconds for a started nginx to answer its health check (a bound, not a measurement)
# In every hostile request below; an error page that echoed the request would carry it.
MARKER = b"zz-echo-me"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed; .ci/run should have installed it")
        pytest.skip("nginx is not installed")
    return found


def local_config(upstream: str, port: int, where: Path) -> Path:
    """docker/nginx/nginx.conf pointed at a local upstream and port, logging and buffering under `where`."""
    conf = (ROOT / "docker/nginx/nginx.conf").read_text()
    swaps = {
        r"server web:\d+;": f"server {upstream};",
        r"listen \d+;": f"listen 127.0.0.1:{port};",
        r"pid [^;]+;": f"pid {where / 'nginx.pid'};",
        r"access_log /dev/stdout;": f"access_log {where / 'access.log'};",
        r"error_log /dev/stderr warn;": f"error_log {where / 'error.log'} warn;",
    }
    for pattern, replacement in swaps.items():
        conf, count = re.subn(pattern, replacement, conf)
        assert count == 1, pattern
    temps = "".join(
        f"  {name}_temp_path {where / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {\n", "http {\n" + temps, 1)
    path = where / "nginx.conf"
    path.write_text(conf)
    return path


def started_nginx(binary: str, upstream: str, where: Path) -> tuple[subprocess.Popen, str]:
    """nginx on a free port, started again on another one when something took the port first; its URL once healthy."""
    error_log = where / "error.log"
    for _ in range(START_TRIES):
        # Nothing holds the port between free_port() and nginx's bind, so another process may take it meanwhile
        port = free_port()
        error_log.unlink(missing_ok=True)
        config = local_config(upstream, port, where)
        argv = [binary, "-c", str(config), "-p", str(where), "-e", str(error_log), "-g", "daemon off;"]
        nginx = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        if became_healthy(nginx, url, error_log):
            return nginx, url
        log = error_log.read_text() if error_log.exists() else ""
        if "Address already in use" not in log:
            pytest.fail(f"nginx exited at start:\n{log}")
    pytest.fail(f"nginx found no free port in {START_TRIES} tries")


def became_healthy(nginx: subprocess.Popen, url: str, error_log: Path) -> bool:
    """True once nginx answers its health check; False if it exited first; fails the run if it never answers."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if nginx.poll() is not None:
            return False
        try:
            response = requests.get(f"{url}/nginx-health", timeout=2)
            if response.status_code == 200 and response.json() == {"status": "ok"}:
                return True
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.1)
    stop(nginx)
    log = error_log.read_text() if error_log.exists() else ""
    pytest.fail(f"nginx did not answer /nginx-health within {READY_WITHIN} s:\n{log}")


@pytest.fixture(scope="module")
def front_door(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service as compose runs it (1 MiB limit, an API key) behind nginx; yields nginx's URL."""
    binary = nginx_binary()
    where = tmp_path_factory.mktemp("nginx")
    settings = {"SCORING_MODEL_URI": str(demo_bundle_dir), "SCORING_API_KEY": KEY}
    with running_service(where / "serve.log", SCORING_MAX_REQUEST_BYTES=str(LIMIT), WEB_WORKERS="2", **settings) as (
        service,
        _,
    ):
        nginx, url = started_nginx(binary, service.removeprefix("http://"), where)
        try:
            yield url
        finally:
            stop(nginx)


def test_a_request_passes_through_to_the_service(front_door):
    response = requests.post(f"{front_door}/predict", json=TUTORIAL_RIDE, headers={"X-API-Key": KEY}, timeout=10)
    assert response.status_code == 200 and response.json()["model_name"] == "ride_duration"


def test_an_oversized_body_gets_the_services_json_413_from_nginx(front_door):
    body = b'{"records": [' + b" " * LIMIT + b"]}"
    response = requests.post(
        f"{front_door}/predict", data=body, headers={"X-API-Key": KEY, "Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"NOT HTTP " + MARKER + b"\r\n\r\n", 400, "bad_request"),
        (b"GET /" + MARKER * 900 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + MARKER * 900 + b"\r\n\r\n", 431, "header_fields_too_large"),
        (b"TRACE /" + MARKER + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "method_not_allowed"),
        (
            b"GET /" + MARKER + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n",
            501,
            "not_implemented",
        ),
        (b"GET /" + MARKER + b" HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /_errors/" + MARKER + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "not_found"),
    ],
    ids=["bad request line", "long url", "long header", "TRACE", "gzip transfer coding", "HTTP/2.0", "/_errors"],
)
def test_nginxs_own_refusals_are_json_and_echo_nothing(front_door, request_bytes, status, code):
    answer = raw_answer(front_door, request_bytes)
    answered_status, headers, body = parsed_answer(answer)
    assert answered_status == status
    assert headers["content-type"].lower().startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == code and set(error) == {"code", "message"} and error["message"]
    assert MARKER not in answer


def test_slow_header_clients_do_not_stop_other_requests_through_nginx(front_door):
    # Given 24 connections to nginx that each send one header line a second and never finish their request head
    with slow_header_clients(front_door, SLOW_CLIENTS) as slow:
        assert len(slow) == SLOW_CLIENTS
        # When ordinary /predict requests arrive through nginx meanwhile, Then every one is answered
        assert answered_probes(front_door, PROBES, TUTORIAL_RIDE, {"X-API-Key": KEY}) == PROBES
