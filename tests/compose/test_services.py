"""What each compose service runs exists, gets the settings it needs, and starts in a working order."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shlex
import tempfile
from dataclasses import fields
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest

from scoring.cli import build_parser
from scoring.settings import Settings
from scoring.stream.runner import load_handler
from tests.compose.stack import (
    ROOT,
    argv,
    environment,
    healthcheck_argv,
    image_path_source,
    mounts,
    parse_dockerfile,
    repo_path_of,
)
from webservice.serve import SERVICE_APP

AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
]
# The Settings fields each service cannot do without (the rest keep their documented defaults).
REQUIRED_SETTINGS = {
    "seed": {"database_url", "model_uri", "model_roots", "input_root", "staging_root"},
    "airflow-worker": {"database_url", "model_uri", "model_roots", "input_root", "staging_root"},
    "airflow-scheduler": {"model_uri", "model_roots", "input_root"},
    "web": {"model_uri", "model_roots"},
    "lambda": {"model_uri", "model_roots", "stream_output", "output_stream"},
}
SETTING_FIELDS = {field.name for field in fields(Settings)}


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart", "no") == "no"


def scoring_settings(service: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in environment(service).items() if k.startswith("SCORING_")}


# --- start order -----------------------------------------------------------------------------------------


def test_the_stack_has_every_component(services):
    expected = {"preflight", "postgres", "redis", "localstack", "seed", "web", "nginx", "lambda", "stream-runner"}
    expected |= {"stream-runner-sqs", "grafana"}
    assert expected | set(AIRFLOW_SERVICES) <= set(services)


def test_every_long_running_service_has_a_healthcheck(services):
    missing = [
        name
        for name, service in services.items()
        if not is_one_shot(service) and (not service.get("healthcheck") or service["healthcheck"].get("disable"))
    ]
    assert missing == []


def test_depends_on_conditions_match_their_targets(services):
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy; it has no check"
            elif condition == "service_completed_successfully":
                assert is_one_shot(services[target]), f"{name} waits for {target} to exit, but it restarts"
            else:
                pytest.fail(f"{name} -> {target}: start order needs a condition, got {condition}")


def test_one_shot_services_are_awaited_by_what_needs_them(services):
    for name in ("preflight", "airflow-init", "seed"):
        assert is_one_shot(services[name])
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    for name in ("airflow-worker", "web", "lambda", "stream-runner", "stream-runner-sqs"):
        assert services[name]["depends_on"]["seed"]["condition"] == "service_completed_successfully"


def test_start_order_has_no_cycle(services):
    # Given the order: each service after everything it depends on
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for target in services[name].get("depends_on", {}):
            visit(target, (*path, name))
        if name not in order:
            order.append(name)

    for name in services:
        visit(name, ())
    # Then the databases and LocalStack come before the one-shots, and those before their users
    assert order.index("postgres") < order.index("airflow-init") < order.index("airflow-scheduler")
    assert order.index("localstack") < order.index("seed") < order.index("lambda") < order.index("stream-runner")


def test_workers_can_be_scaled(services):
    worker = services["airflow-worker"]
    # A fixed name or a published port would make `--scale airflow-worker=N` fail on the second replica.
    assert "container_name" not in worker and "ports" not in worker
    assert argv(worker["command"]) == ["celery", "worker"]


def test_published_host_ports_are_distinct(services):
    published = [spec.rsplit(":", 1)[0] for service in services.values() for spec in service.get("ports", [])]
    assert len(published) == len(set(published)), published


# --- what runs exists ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_cli():
    """Airflow's own argument parser for its core commands plus the celery provider's (`airflow celery ...`)."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="compose_airflow_home_"))
    import argparse

    from airflow.cli import cli_config
    from airflow.cli.cli_parser import _add_command
    from airflow.providers.celery.cli.definition import get_celery_cli_commands

    parser = argparse.ArgumentParser(prog="airflow", exit_on_error=False)
    subcommands = parser.add_subparsers(dest="subcommand", required=True)
    for command in [*cli_config.core_commands, *get_celery_cli_commands()]:
        _add_command(subcommands, command)
    return parser


def parses(parser, args: list[str]) -> bool:
    try:
        parser.parse_args(args)
    except (SystemExit, Exception):
        return False
    return True


def test_the_airflow_parser_refuses_what_airflow_refuses(airflow_cli):
    assert parses(airflow_cli, ["celery", "worker"])
    assert not parses(airflow_cli, ["webserver"])  # Airflow 2's command, gone in Airflow 3
    assert not parses(airflow_cli, ["jobs", "check", "--job-type", "NoSuchJob"])


@pytest.mark.parametrize("name", AIRFLOW_SERVICES[1:])
def test_airflow_commands_and_healthchecks_are_real(services, airflow_cli, name):
    service = services[name]
    # The image's entrypoint runs `airflow <command>`.
    assert parses(airflow_cli, argv(service["command"])), service["command"]
    check = healthcheck_argv(service)
    if check[0] == "airflow":
        assert parses(airflow_cli, [arg.replace("$HOSTNAME", "host") for arg in check[1:]]), check


def test_airflow_health_endpoints_are_the_ones_airflow_serves(services):
    api = healthcheck_argv(services["airflow-apiserver"])
    assert api[-1] == "http://localhost:8080/api/v2/monitor/health"
    scheduler_env = environment(services["airflow-scheduler"])
    assert scheduler_env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert healthcheck_argv(services["airflow-scheduler"])[-1] == "http://localhost:8974/health"


@pytest.mark.parametrize("name", ["airflow-init", "seed"])
def test_init_scripts_are_in_the_image_where_compose_runs_them(services, name):
    service = services[name]
    assert service["build"]["dockerfile"] == "docker/airflow.Dockerfile"
    shell, script = argv(service["entrypoint"])
    assert shell == "/bin/bash"
    dockerfile = parse_dockerfile(ROOT / service["build"]["dockerfile"])
    source = image_path_source(dockerfile, script, service["build"].get("target"))
    assert source is not None and source.is_file(), f"{script} is not copied into the image"


def scoring_commands(script: Path, env: dict[str, str]) -> list[list[str]]:
    """The `scoring ...` command lines of a shell script, with its variables expanded from `env` and from
    the script's own top-level assignments (NAME=value), as bash would."""
    variables = dict(env)
    commands = []
    for line in script.read_text().splitlines():
        line = line.strip()
        if assignment := re.fullmatch(r"([a-z_][a-z0-9_]*)=(\S+)", line):
            variables[assignment[1]] = expand_shell(assignment[2], variables)
        elif line.startswith("scoring "):
            commands.append([expand_shell(word, variables).strip('"') for word in shlex.split(line)[1:]])
    return commands


def expand_shell(word: str, variables: dict[str, str]) -> str:
    """${NAME}, ${NAME:?...}, ${NAME:-default} and $NAME; an unset name without a default fails the test."""

    def value(match: re.Match[str]) -> str:
        name, op, default = match[1] or match[4], match[2], match[3]
        if variables.get(name):
            return variables[name]
        assert op == ":-", f"${{{name}}} would be unset in the container"
        return default

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}|\$(\w+)", value, word)


def test_the_seed_scripts_scoring_commands_parse_with_the_seeds_environment(services):
    commands = scoring_commands(ROOT / "docker/init/seed.sh", environment(services["seed"]))
    assert [words[:2] for words in commands] == [["demo", "--day"], ["db", "upgrade"]]
    demo, upgrade = (build_parser().parse_args(words) for words in commands)
    seed = scoring_settings(services["seed"])
    assert (demo.input, demo.model) == (seed["SCORING_INPUT_ROOT"], seed["SCORING_MODEL_URI"])
    assert demo.rows_per_hour > 0
    assert upgrade.database == seed["SCORING_DATABASE_URL"]


@pytest.mark.parametrize("name", ["stream-runner", "stream-runner-sqs"])
def test_stream_runners_run_a_real_scoring_command_with_a_real_handler(services, name):
    service = services[name]
    assert argv(service["entrypoint"]) == ["scoring"]
    args = build_parser().parse_args(argv(service["command"]))
    assert args.handler.__name__ == "_run_command"
    # The handler file is bind-mounted from the repository; the runner's own loader accepts it.
    handler_file, _, function = args.function.partition(":")
    source = repo_path_of(service, handler_file)
    assert source is not None and source.is_file()
    assert callable(load_handler(f"{source}:{function}"))
    check = healthcheck_argv(service)
    assert repo_path_of(service, check[1]) == source and check[2] == "reachable"


def test_the_lambda_runs_the_handler_the_image_holds(services):
    service = services["lambda"]
    dockerfile = parse_dockerfile(ROOT / service["build"]["dockerfile"])
    target = service["build"].get("target")
    (handler,) = argv(service["command"]) or dockerfile.final("CMD", target)
    module, _, function = handler.rpartition(".")
    source = image_path_source(dockerfile, f"${{LAMBDA_TASK_ROOT}}/{module}.py", target)
    assert source == ROOT / "lambda/lambda_function.py"
    assert function in top_level_names(source)
    # The healthcheck's script is the bind-mounted one and its mode exists.
    check = healthcheck_argv(service)
    assert repo_path_of(service, check[1]) == ROOT / "docker/stream/rie_invoke.py" and check[2] == "warm"
    assert urlsplit(check[3]).port == 8080 and service["ports"][0].endswith(":8080")


def test_the_web_service_runs_the_images_launcher_on_the_service_app(services):
    service = services["web"]
    dockerfile = parse_dockerfile(ROOT / service["build"]["dockerfile"])
    python, flag, module = argv(service["command"])
    assert (python, flag) == ("python", "-m")
    # The launcher module is installed in the image (the package source is copied in and pip-installed),
    # and the app it serves by default is defined where it says
    assert module == "webservice.serve" and (ROOT / "webservice/serve.py").is_file()
    assert image_path_source(dockerfile, "/tmp/src/webservice", service["build"].get("target")) == ROOT / "webservice"
    app_module, _, attribute = SERVICE_APP.partition(":")
    assert attribute in top_level_names(ROOT / (app_module.replace(".", "/") + ".py"))
    # Reached by nginx only, on the port the launcher binds on every interface of the container.
    assert "ports" not in service and [str(port) for port in service["expose"]] == ["8000"]
    assert environment(service)["WEB_HOST"] == "0.0.0.0" and environment(service)["PORT"] == "8000"


def top_level_names(source: Path) -> set[str]:
    """Names a module defines at top level (read, not imported: importing would load a model)."""
    tree = ast.parse(source.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


# --- settings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REQUIRED_SETTINGS))
def test_each_bundle_is_under_the_services_trusted_roots(services, name):
    # Given the model and its trusted roots as the service's environment sets them (no default fills them in)
    env = scoring_settings(services[name])
    model_uri, roots = env["SCORING_MODEL_URI"], env["SCORING_MODEL_ROOTS"]
    # Then the root is the folder that holds the bundles (models/), and the bundle is inside it
    assert model_uri.startswith(roots.rstrip("/") + "/"), name
    assert PurePosixPath(roots).name == "models" and PurePosixPath(model_uri).parent.parent.name == "models"
    assert Settings.from_env(env).trusted_model_roots == (roots,)


def test_every_scoring_variable_is_a_settings_field(services):
    for name, service in services.items():
        unknown = {
            key for key in scoring_settings(service) if key.removeprefix("SCORING_").lower() not in SETTING_FIELDS
        }
        assert not unknown, f"{name} sets variables Settings ignores: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(REQUIRED_SETTINGS))
def test_each_service_gets_the_settings_it_needs(services, name):
    settings = Settings.from_env(scoring_settings(services[name]))
    defaults = Settings()
    missing = {f for f in REQUIRED_SETTINGS[name] if getattr(settings, f) in (None, getattr(defaults, f))}
    assert not missing, f"{name} runs on demo defaults for {sorted(missing)}"


@pytest.mark.parametrize("name", [name for name in REQUIRED_SETTINGS if name != "lambda"])
def test_local_paths_are_on_the_services_volumes(services, name):
    service = services[name]
    targets = [mount.target for mount in mounts(service)]
    for key in ("SCORING_MODEL_URI", "SCORING_INPUT_ROOT", "SCORING_STAGING_ROOT"):
        path = scoring_settings(service).get(key)
        if path and not path.startswith("s3://"):
            assert any(path.startswith(target + "/") for target in targets), f"{name}: {key}={path} is not on a volume"


def test_batch_and_online_read_what_the_seed_writes(services):
    seed = scoring_settings(services["seed"])
    for name in ("airflow-worker", "airflow-scheduler", "web"):
        env = scoring_settings(services[name])
        assert env["SCORING_MODEL_URI"] == seed["SCORING_MODEL_URI"], name
    for key in ("SCORING_INPUT_ROOT", "SCORING_STAGING_ROOT", "SCORING_DATABASE_URL"):
        assert scoring_settings(services["airflow-worker"])[key] == seed[key]
    # The volume is one and the same, mounted read-only where nothing is written.
    assert {m.source for m in mounts(services["web"])} == {"scoring-data"} and mounts(services["web"])[0].read_only


def test_streaming_uses_what_the_seed_creates(services):
    seed = environment(services["seed"])
    function = environment(services["lambda"])
    assert function["SCORING_MODEL_URI"] == seed["STREAM_MODEL_URI"]
    assert function["SCORING_STREAM_OUTPUT"] == "kinesis"
    assert function["SCORING_OUTPUT_STREAM"] == seed["PREDICTIONS_STREAM"]
    kinesis = build_parser().parse_args(argv(services["stream-runner"]["command"]))
    assert kinesis.kinesis_stream == seed["RIDE_EVENTS_STREAM"]
    sqs = build_parser().parse_args(argv(services["stream-runner-sqs"]["command"]))
    assert urlsplit(sqs.sqs_queue_url).path.rsplit("/", 1)[-1] == seed["RIDE_EVENTS_QUEUE"]
    for name in ("stream-runner", "stream-runner-sqs"):
        runner = environment(services[name])
        url = urlsplit(runner["LAMBDA_INVOKE_URL"])
        assert (url.hostname, url.port) == ("lambda", 8080)
        # What docker/stream/rides.py sends to and reads from in these containers
        assert (runner["RIDE_EVENTS_STREAM"], runner["PREDICTIONS_STREAM"]) == (
            seed["RIDE_EVENTS_STREAM"],
            seed["PREDICTIONS_STREAM"],
        )
        assert runner["RIDE_EVENTS_QUEUE_URL"] == sqs.sqs_queue_url


@pytest.mark.parametrize("name", ["seed", "lambda", "stream-runner", "stream-runner-sqs"])
def test_aws_clients_go_to_localstack(services, name):
    url = urlsplit(environment(services[name])["AWS_ENDPOINT_URL"])
    assert url.hostname == "localstack" and url.port == 4566
    assert "4566" in services["localstack"]["ports"][0].rsplit(":", 1)[-1]


def test_airflow_components_share_keys_and_endpoints(services):
    shared = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__BASE_URL")
    values = {key: {environment(services[name]).get(key) for name in AIRFLOW_SERVICES} for key in shared}
    assert all(len(found) == 1 and None not in found for found in values.values()), values
    assert values["AIRFLOW__API__BASE_URL"] == {"http://airflow-apiserver:8080"}
    for name in AIRFLOW_SERVICES:
        env = environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        # The DAGs' hook reads the connection; the settings fallback names the same database.
        assert env["AIRFLOW_CONN_SCORING_DB"] == env["SCORING_DATABASE_URL"]


def test_databases_are_the_two_the_postgres_init_creates(services):
    env = environment(services["airflow-scheduler"])
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    predictions = urlsplit(env["AIRFLOW_CONN_SCORING_DB"])
    assert (metadata.hostname, metadata.path, metadata.username) == ("postgres", "/airflow", "airflow")
    assert (predictions.hostname, predictions.path, predictions.username) == ("postgres", "/scoring", "scoring")
    postgres = environment(services["postgres"])
    assert metadata.password == postgres["AIRFLOW_DB_PASSWORD"]
    assert predictions.password == postgres["PREDICTIONS_DB_PASSWORD"]
    assert [m.source for m in mounts(services["postgres"]) if m.target == "/docker-entrypoint-initdb.d"] == [
        "./docker/postgres"
    ]


def test_the_login_airflow_init_writes_is_the_one_the_api_server_reads(services):
    init, api = environment(services["airflow-init"]), environment(services["airflow-apiserver"])
    passwords_file = api["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert init["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == passwords_file
    user = init["AIRFLOW_ADMIN_USER"]
    assert api["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{user}:admin"
    folder = str(Path(passwords_file).parent)
    for name in ("airflow-init", "airflow-apiserver"):
        assert [m.source for m in mounts(services[name]) if m.target == folder] == ["airflow-auth"], name


def python_healthchecks(services) -> dict[str, str]:
    """The inline programs of `python -c` healthchecks, by service."""
    found = {}
    for name, service in services.items():
        check = healthcheck_argv(service) if "healthcheck" in service else []
        if check[:1] in (["python"], ["python3"]) and check[1] == "-c":
            found[name] = check[2]
    return found


def test_inline_python_healthchecks_compile(services):
    programs = python_healthchecks(services)
    assert {"localstack", "web"} <= set(programs)
    for name, program in programs.items():
        compile(program, f"<{name} healthcheck>", "exec")


@pytest.mark.parametrize(
    ("statuses", "exit_code"),
    [
        ({"s3": "running", "kinesis": "running", "sqs": "running", "lambda": "disabled"}, 0),
        ({"s3": "running", "kinesis": "available", "sqs": "running"}, 1),
        ({"s3": "running", "sqs": "running"}, 1),
    ],
)
def test_localstack_is_healthy_once_its_three_services_run(services, statuses, exit_code):
    body = io.BytesIO(json.dumps({"services": statuses, "version": "4.14.0"}).encode())
    with mock.patch("urllib.request.urlopen", return_value=body), pytest.raises(SystemExit) as stop:
        exec(python_healthchecks(services)["localstack"], {})
    assert int(stop.value.code or 0) == exit_code
