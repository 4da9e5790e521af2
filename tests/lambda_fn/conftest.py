"""Recorded Lambda events (the handler and AWS fixtures are shared: tests/support/)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.webservice.generic_bundles import GenericModel, build_fraud_bundle, build_risk_bundle, import_fraud_bundle

EVENTS = Path(__file__).resolve().parent / "events"


@pytest.fixture
def recorded_event() -> Callable[[str], dict]:
    """Load a recorded Lambda event from tests/lambda_fn/events/ (a fresh copy each call)."""
    return lambda name: json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def fraud_model(tmp_path_factory: pytest.TempPathFactory) -> GenericModel:
    """A binary fraud classifier on amount, merchant and country, with no id field."""
    return build_fraud_bundle(tmp_path_factory.mktemp("fraud") / "fraud" / "3")


@pytest.fixture(scope="session")
def risk_model(tmp_path_factory: pytest.TempPathFactory) -> GenericModel:
    """A multiclass risk model returning per-class probabilities, its records named by case_id."""
    return build_risk_bundle(tmp_path_factory.mktemp("risk") / "risk" / "7")


@pytest.fixture(scope="session")
def imported_fraud_model(tmp_path_factory: pytest.TempPathFactory) -> GenericModel:
    """The fraud classifier imported from its pickle with no --features: every name in its manifest was inferred."""
    return import_fraud_bundle(tmp_path_factory.mktemp("imported"))
