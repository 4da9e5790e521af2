"""The compose file as `cp .env.example .env && docker compose up` would read it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.compose.stack import COMPOSE_FILE, ENV_EXAMPLE, load_compose, read_env_file


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="session")
def raw_compose() -> dict[str, Any]:
    """The YAML before interpolation (anchors merged), to see which variables it uses and how."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="session")
def compose(env_example: dict[str, str]) -> dict[str, Any]:
    return load_compose(env_example)


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]
