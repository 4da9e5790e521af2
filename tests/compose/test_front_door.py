"""What stands in front of the stack: nginx before the web service, and the preflight before any secret is used."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.compose.stack import ROOT, environment, healthcheck_argv, mounts, repo_path_of

NGINX_CONF = "/etc/nginx/nginx.conf"
SECRETS = (
    "POSTGRES_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "PREDICTIONS_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "GRAFANA_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)


@pytest.fixture(scope="module")
def nginx_conf(services) -> str:
    source = repo_path_of(services["nginx"], NGINX_CONF)
    assert source == ROOT / "docker/nginx/nginx.conf" and source.is_file()
    return source.read_text()


def directive(conf: str, name: str) -> list[str]:
    """Every value of a directive in an nginx config, comments ignored."""
    text = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    return [value.strip() for value in re.findall(rf"(?m)^[ \t]*{name}[ \t]+([^;{{\n]+);", text)]


def size_in_bytes(value: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match is not None, value
    return int(match[1]) * units[match[2]]


def test_nginx_is_the_official_image_with_the_repositorys_config_mounted_read_only(services):
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:") and "build" not in nginx
    (mount,) = [m for m in mounts(nginx) if m.target == NGINX_CONF]
    assert mount.is_bind and mount.read_only


def test_the_web_port_is_published_by_nginx_and_nginx_waits_for_a_healthy_web(services, nginx_conf):
    nginx, web = services["nginx"], services["web"]
    assert "ports" not in web
    (published,) = nginx["ports"]
    assert published.startswith("127.0.0.1:8000:")
    assert nginx["depends_on"]["web"]["condition"] == "service_healthy"
    # The container port published is the one nginx listens on, and it proxies to the web service's port
    assert directive(nginx_conf, "listen") == [published.rsplit(":", 1)[1]]
    assert directive(nginx_conf, "server") == [f"web:{web['expose'][0]}"]
    assert directive(nginx_conf, "proxy_pass") == ["http://scoring_web"]


def test_nginx_reads_whole_requests_with_timeouts_and_the_services_size_limit(services, nginx_conf):
    # Buffered both ways, so gunicorn sees a request only once it has fully arrived
    assert directive(nginx_conf, "proxy_request_buffering") == ["on"]
    assert directive(nginx_conf, "proxy_buffering") == ["on"]
    # Slow heads and bodies are cut off
    for name in ("client_header_timeout", "client_body_timeout"):
        (value,) = directive(nginx_conf, name)
        assert 0 < int(value.removesuffix("s")) <= 60, name
    # The body limit is the web service's own, so nginx never forwards what gunicorn would refuse, nor refuses less
    limit = int(environment(services["web"])["SCORING_MAX_REQUEST_BYTES"])
    (max_body,) = directive(nginx_conf, "client_max_body_size")
    assert size_in_bytes(max_body) == limit


def test_nginx_has_a_healthcheck_it_answers_itself(services, nginx_conf):
    check = healthcheck_argv(services["nginx"])
    assert check[0] == "wget" and check[-1] == "http://127.0.0.1:8000/nginx-health"
    assert re.search(r"location = /nginx-health \{\s*access_log off;[^}]*return 200 ", nginx_conf)


def run_preflight(services, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The preflight's command, run here with /bin/sh as its container would run it."""
    service = services["preflight"]
    shell, script = service["entrypoint"]
    source = repo_path_of(service, script)
    assert shell == "/bin/sh" and source is not None and source.is_file()
    return subprocess.run([shell, str(source)], env=env, capture_output=True, text=True, timeout=30)


def test_the_preflight_refuses_the_env_example_placeholders_by_name(services, env_example):
    # Given the stack's environment exactly as .env.example sets it
    result = run_preflight(services, environment(services["preflight"]))
    # Then the preflight fails, naming every secret
    assert result.returncode == 1
    for name in SECRETS:
        assert name in result.stderr


def test_the_preflight_passes_own_secrets_and_refuses_even_one_placeholder(services):
    own = {name: f"own-{name.lower().replace('_', '-')}-Zx81" for name in SECRETS}
    assert run_preflight(services, own).returncode == 0
    one_left = {**own, "AIRFLOW_JWT_SECRET": "change-me-change-me"}
    refused = run_preflight(services, one_left)
    assert refused.returncode == 1 and "AIRFLOW_JWT_SECRET" in refused.stderr


def test_every_service_holding_a_secret_starts_after_the_preflight(services, env_example):
    secret_values = {env_example[name] for name in SECRETS}

    def holds_secret(name: str) -> bool:
        return any(any(secret in value for secret in secret_values) for value in environment(services[name]).values())

    def after_preflight(name: str) -> bool:
        targets = services[name].get("depends_on", {})
        return "preflight" in targets or any(after_preflight(target) for target in targets)

    holders = [name for name in services if name != "preflight" and holds_secret(name)]
    assert {"postgres", "airflow-init", "airflow-apiserver", "seed", "web", "lambda", "grafana"} <= set(holders)
    assert [name for name in holders if not after_preflight(name)] == []
    assert services["postgres"]["depends_on"]["preflight"]["condition"] == "service_completed_successfully"


def test_the_web_image_listens_on_every_interface_but_the_launcher_alone_does_not(services):
    dockerfile = (ROOT / "webservice/Dockerfile").read_text()
    assert re.search(r"(?m)^ENV .*WEB_HOST=0\.0\.0\.0", dockerfile)
    from webservice.serve import ServeSettings

    # Left to itself the launcher (either server) binds loopback; compose opens it for nginx only
    assert ServeSettings.from_env({}).host == "127.0.0.1"
    assert ServeSettings.from_env({"WEB_SERVER": "gunicorn"}).host == "127.0.0.1"
    assert services["web"]["command"] == ["python", "-m", "webservice.serve"]
    assert environment(services["web"])["WEB_HOST"] == "0.0.0.0" and "ports" not in services["web"]


def test_the_preflight_script_is_where_compose_mounts_it(services):
    assert Path(repo_path_of(services["preflight"], "/preflight/check-secrets.sh")).name == "check-secrets.sh"


def test_nginxs_own_errors_answer_the_services_json_shape(nginx_conf):
    import json

    from webservice.errors import HTTP_CODES
    from webservice.worker import PARSER_ERRORS

    # Every status nginx itself answers (bad head, body or URL or header over the limit, TRACE, a transfer coding
    # or HTTP version it does not speak, service down; tests/compose/test_nginx_live.py sends each for real)
    pages = {}
    for value in directive(nginx_conf, "error_page"):
        *statuses, target = value.split()
        for status in statuses:
            pages[status] = target
    assert {"400", "405", "413", "414", "494", "501", "502", "504", "505"} <= set(pages)
    # and no page for 408, which nginx never sends (it closes a slow client's connection without an answer)
    assert "408" not in pages
    # goes to an internal location that returns the service's {"error": {"code", "message"}} as JSON
    assert re.search(r"location \^~ /_errors/ \{\s*internal;\s*default_type application/json;", nginx_conf)
    bodies = dict(re.findall(r"location = (/_errors/\d+) \{ return \d+ '([^']+)'; \}", nginx_conf))
    for status, target in pages.items():
        error = json.loads(bodies[target])["error"]
        assert set(error) == {"code", "message"} and error["message"], status
        # static text: no nginx variable, so nothing of the request is echoed
        assert "$" not in bodies[target], status
    codes = {status: json.loads(bodies[target])["error"]["code"] for status, target in pages.items()}
    # with the codes the service itself uses for the same statuses
    assert codes["413"] == HTTP_CODES[413] == "payload_too_large"
    assert codes["400"] == PARSER_ERRORS[400][0] and codes["414"] == PARSER_ERRORS[414][0]
    assert codes["494"] == PARSER_ERRORS[431][0]
    assert codes["405"] == HTTP_CODES[405] and codes["501"] == PARSER_ERRORS[501][0]
    # while the service's own errors pass through as it wrote them
    assert directive(nginx_conf, "proxy_intercept_errors") in ([], ["off"])


def test_make_serve_sets_no_host_or_server_of_its_own():
    # `make serve` runs the launcher as it is: loopback and Granian unless the caller's environment says otherwise
    result = subprocess.run(["make", "-n", "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "python -m webservice.serve" in result.stdout
    assert not re.search(r"\b(WEB_HOST|GUNICORN_HOST|WEB_SERVER)=", result.stdout)
    assert "0.0.0.0" not in result.stdout
