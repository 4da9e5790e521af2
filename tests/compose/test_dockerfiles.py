"""The images compose builds: the intended bases, and every COPY source present in the build context."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from scoring.settings import Settings
from tests.compose.stack import ROOT, copies, dockerignore_for, is_excluded, parse_dockerfile

BASES = {
    "docker/airflow.Dockerfile": "apache/airflow:3.3.2-python3.11",
    "webservice/Dockerfile": "python:3.11-slim",
    "lambda/Dockerfile": "public.ecr.aws/lambda/python:3.11",
}
# Not in git: `scoring demo` (or `make demo`) writes the demo bundle here, and the web and Lambda images
# bake it in. Settings' default model_uri is that same path.
GENERATED = {"var/models/ride_duration/1"}


def builds(services) -> list[tuple[str, Path, str | None]]:
    """(service, Dockerfile, target) for every service compose builds."""
    found = []
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            assert (ROOT / build["context"]).resolve() == ROOT, f"{name} builds from another context"
            found.append((name, ROOT / build["context"] / build.get("dockerfile", "Dockerfile"), build.get("target")))
    return found


def test_compose_builds_the_three_images_from_their_dockerfiles(services):
    dockerfiles = {path.relative_to(ROOT).as_posix() for _, path, _ in builds(services)}
    assert dockerfiles == set(BASES)
    for _, path, _ in builds(services):
        assert path.is_file()


def test_services_sharing_an_image_build_it_the_same_way(services):
    by_image: dict[str, set[str]] = {}
    for service in services.values():
        if "build" in service:
            by_image.setdefault(service["image"], set()).add(repr(sorted(service["build"].items())))
    assert all(len(ways) == 1 for ways in by_image.values()), by_image


@pytest.mark.parametrize(("dockerfile", "base"), sorted(BASES.items()))
def test_images_start_from_the_intended_base(dockerfile, base):
    stages = parse_dockerfile(ROOT / dockerfile).stages
    assert stages[0].base == base
    # Any later stage builds on an earlier one (e.g. a stage that only adds the baked bundle).
    for position, stage in enumerate(stages[1:], 1):
        assert stage.base in {earlier.name for earlier in stages[:position]}, stage.base


def test_generated_inputs_are_where_scoring_demo_writes_them():
    assert {Settings().model_uri} == GENERATED


@pytest.mark.parametrize("dockerfile", sorted(BASES))
def test_copy_sources_exist_and_reach_the_build_context(services, dockerfile):
    target = next((t for _, path, t in builds(services) if path == ROOT / dockerfile), None)
    parsed = parse_dockerfile(ROOT / dockerfile)
    ignore = dockerignore_for(ROOT / dockerfile)
    for copy in copies(parsed.stages_built_for(target)):
        if copy.from_stage is not None:
            continue
        for source in copy.sources:
            assert "$" not in source, f"{dockerfile}:{copy.line}: unresolved {source}"
            # A wildcard source (COPY lambda/constraints-py*.txt) must match at least one file.
            assert any(ROOT.glob(source)) or source in GENERATED, f"{dockerfile}:{copy.line}: no {source}"
            assert not is_excluded(source, ignore), f"{dockerfile}:{copy.line}: .dockerignore leaves {source} out"


def test_the_airflow_image_keeps_airflow_at_the_base_images_version():
    (command,) = _pip_installs(parse_dockerfile(ROOT / "docker/airflow.Dockerfile"))
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in command
    assert "--constraint /tmp/base-image-versions.txt" in command
    assert '"/tmp/src[airflow]"' in command


def test_the_airflow_image_holds_the_dags_and_plugins_where_airflow_looks():
    destinations = {
        copy.destination: copy.sources for copy in copies(parse_dockerfile(ROOT / "docker/airflow.Dockerfile").stages)
    }
    assert destinations["/opt/airflow/dags"] == ["dags"]
    assert destinations["/opt/airflow/plugins"] == ["plugins"]


@pytest.mark.parametrize(
    ("path", "patterns", "excluded"),
    [
        ("scoring/cli.py", ["*", "!scoring/"], False),
        ("tests/conftest.py", ["*", "!scoring/"], True),
        ("scoring/__pycache__/cli.pyc", ["*", "!scoring/", "**/__pycache__"], True),
        ("var/models/ride_duration/1", ["*", "!var/models/"], False),
        ("var/data/input", ["var/*", "!var/models"], True),
        (".env", ["*", "!pyproject.toml"], True),
    ],
)
def test_dockerignore_matching_follows_docker(path, patterns, excluded):
    assert is_excluded(path, patterns) is excluded


def test_no_build_context_carries_the_env_file():
    for dockerfile in BASES:
        assert is_excluded(".env", dockerignore_for(ROOT / dockerfile)), dockerfile


# The lock files: constraints.txt (make lock) and the Lambda runtime's own (make lambda-lock).
LOCKS = ("constraints.txt", "lambda/constraints-py*.txt")


def _locks_copied_to(parsed, image_path: str) -> list[str]:
    """The repository lock files a COPY put at `image_path` (a wildcard source matched against its name)."""
    folder, name = image_path.rsplit("/", 1)
    found = []
    for copy in copies(parsed.stages):
        for source in copy.sources:
            as_named = copy.destination == image_path and len(copy.sources) == 1
            into_folder = copy.destination.rstrip("/") == folder and fnmatch.fnmatch(name, Path(source).name)
            if (as_named or into_folder) and any(fnmatch.fnmatch(source, lock) for lock in LOCKS):
                found.append(source)
    return found


def _pip_installs(parsed) -> list[str]:
    return [
        i.arguments
        for stage in parsed.stages
        for i in stage.instructions
        if i.keyword == "RUN" and "pip install" in i.arguments
    ]


@pytest.mark.parametrize("dockerfile", sorted(BASES))
def test_every_pip_install_takes_a_constraint_from_a_lock_file(dockerfile):
    # Every image installs at the versions the tests ran with: a lock file copied in, or one derived in the
    # same RUN from a lock copied in (the Airflow image: the lock's pins of what its base image lacks)
    parsed = parse_dockerfile(ROOT / dockerfile)
    installs = _pip_installs(parsed)
    assert installs, dockerfile
    for command in installs:
        constraints = re.findall(r"(?:--constraint|-c)[ =](\S+)", command)
        derived = dict(re.findall(r"lock_beyond_base\.py \S+ (\S+) > (\S+)", command))
        from_locks = [
            path
            for path in constraints
            if _locks_copied_to(parsed, path)
            or any(target == path and _locks_copied_to(parsed, lock) for lock, target in derived.items())
        ]
        assert from_locks, f"{dockerfile}: pip install without a lock file: {command}"


def test_the_airflow_image_pins_only_what_its_base_lacks_and_compares_names_as_pip_does():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lock_beyond_base", ROOT / "docker/lock_beyond_base.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = ["apache-airflow==3.3.2", "typing_extensions==4.12.0", "zope.interface==7.0", "# a comment"]
    lock = [
        "# header",
        "Apache_Airflow==3.3.0",
        "typing-extensions==4.15.0",
        "Zope-Interface==8.0",
        "scikit-learn==1.9.1",
    ]
    assert module.beyond_base(base, lock) == ["scikit-learn==1.9.1"]


def test_the_lambda_image_and_zip_install_the_same_stream_extra():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_zip", ROOT / "lambda/build_zip.py")
    assert spec is not None and spec.loader is not None
    build_zip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_zip)
    (install,) = _pip_installs(parse_dockerfile(ROOT / "lambda/Dockerfile"))
    assert f'"/tmp/src[{build_zip.STREAMING_EXTRA}]"' in install
    assert "pg8000" not in install  # named once, in pyproject's extra
    names = {build_zip.normalized(r) for r in build_zip.streaming_requirements()}
    assert "pg8000" in names and "psycopg2-binary" not in names
