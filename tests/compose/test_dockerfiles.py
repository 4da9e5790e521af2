"""The images compose builds: the intended bases, and every COPY source present in the build context."""

from __future__ import annotations

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
    text = (ROOT / "docker/airflow.Dockerfile").read_text()
    install = re.search(r"RUN pip install (.+?)(?:&&|$)", text.replace("\\\n", " "), re.S)
    assert install is not None
    command = install[1]
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
