"""docker-compose.yml against the Compose Specification, and its variables against .env.example."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from tests.compose.stack import InterpolationError, load_compose, references


def validate(compose: dict[str, Any]) -> None:
    """Raise ValueError unless the (interpolated) file follows the Compose Specification."""
    PyCompose.from_yaml(yaml.safe_dump(compose, sort_keys=False)).validate()


def test_compose_file_follows_the_compose_specification(compose):
    validate(compose)


@pytest.mark.parametrize(
    ("path", "bad_value"),
    [
        (("airflow-worker", "depends_on", "seed", "condition"), "service_done"),
        (("postgres", "healthcheck", "interval"), "often"),
        (("nginx", "ports"), ["eight-thousand"]),
        (("redis", "restart_policy"), "always"),
    ],
)
def test_the_specification_check_rejects_a_broken_file(compose, path, bad_value):
    # Given the file with one value spoiled
    broken = copy.deepcopy(compose)
    target = broken["services"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad_value
    # Then the validator refuses it, so the test above can fail
    with pytest.raises(ValueError):
        validate(broken)


def test_every_variable_has_a_value_in_env_example_or_a_default(raw_compose, env_example):
    unresolved = {ref.name for ref in references(raw_compose) if not ref.has_default and not env_example.get(ref.name)}
    assert not unresolved, f"set these in .env.example or give them a ${{VAR:-default}}: {sorted(unresolved)}"


def test_secrets_have_no_default_and_fail_loudly_without_env(raw_compose, env_example):
    # Given the secrets (passwords, keys) the file uses
    secrets = {"POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "PREDICTIONS_DB_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"}
    secrets |= {"AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    used = {ref.name: ref for ref in references(raw_compose)}
    assert secrets <= used.keys()
    for name in secrets:
        # Then none has a default in the compose file: each must come from .env
        assert all(r.is_required for r in references(raw_compose) if r.name == name), name
        without = {key: value for key, value in env_example.items() if key != name}
        with pytest.raises(InterpolationError, match=name):
            load_compose(without)


def test_env_example_holds_placeholders_only(env_example):
    passwords = ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "PREDICTIONS_DB_PASSWORD", "AIRFLOW_ADMIN_PASSWORD")
    for name in (*passwords, "GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert env_example[name].startswith("change-me"), name
    assert env_example["AIRFLOW_JWT_SECRET"].startswith("change-me")
    assert base64.urlsafe_b64decode(env_example["AIRFLOW_FERNET_KEY"]).startswith(b"change-me")


def test_env_example_keys_are_usable_as_they_are(env_example):
    # A malformed Fernet key stops every Airflow component at start; HS512 wants 64 bytes of secret.
    from cryptography.fernet import Fernet

    Fernet(env_example["AIRFLOW_FERNET_KEY"])
    assert len(env_example["AIRFLOW_JWT_SECRET"]) >= 64


@pytest.mark.parametrize(
    "name", ["POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "PREDICTIONS_DB_PASSWORD", "GRAFANA_DB_PASSWORD"]
)
def test_database_passwords_need_no_url_encoding(env_example, name):
    # They are pasted into database URLs: characters such as @ : / # would break them.
    assert env_example[name].replace("-", "").replace("_", "").isalnum()


def test_every_env_example_setting_is_used(raw_compose, env_example):
    used = {ref.name for ref in references(raw_compose)}
    assert set(env_example) - used == set()
