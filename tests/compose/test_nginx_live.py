"""The compose front door for real: nginx with docker/nginx/nginx.conf in front of `python -m webservice.serve`.

Only the upstream address, the port and the log and temp paths are rewritten for this machine; every
limit, timeout, buffer and error page is the file compose mounts. Needs the nginx binary: skipped
without it, except under CI=true, where .ci/run installs it and its absence fails the run.
"""

from __future__ import annotations

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
from tests.support.gunicorn import answered_probes, free_port, running_service, slow_header_clients, stop
from tests.webservice.conftest import TUTORIAL_RIDE

KEY = "front-door-key"
SLOW_CLIENTS = 24  # the number
PROBES = 10
LIMIT = 1024 * 1024  # SCORING_MAX_REQUEST_BYTES in compose, = nginx's client_max_body_size


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
        port = free_port()
        config = local_config(service.removeprefix("http://"), port, where)
        argv = [binary, "-c", str(config), "-p", str(where), "-e", str(where / "error.log"), "-g", "daemon off;"]
        nginx = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                assert nginx.poll() is None, (where / "error.log").read_text()
                try:
                    if requests.get(f"{url}/nginx-health", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
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
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "header_fields_too_large"),
    ],
    ids=["bad request line", "long url", "long header"],
)
def test_nginxs_own_refusals_are_json_and_echo_nothing(front_door, request_bytes, status, code):
    import socket

    host, port = front_door.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == str(status).encode()
    assert b"content-type: application/json" in head.lower()
    assert f'"code": "{code}"'.encode() in body and b"<html" not in body.lower() and b"aaaa" not in body


def test_slow_header_clients_do_not_stop_other_requests_through_nginx(front_door):
    # Given 24 connections to nginx that each send one header line a second and never finish their request head
    with slow_header_clients(front_door, SLOW_CLIENTS) as slow:
        assert len(slow) == SLOW_CLIENTS
        # When ordinary /predict requests arrive through nginx meanwhile, Then every one is answered
        assert answered_probes(front_door, PROBES, TUTORIAL_RIDE, {"X-API-Key": KEY}) == PROBES
