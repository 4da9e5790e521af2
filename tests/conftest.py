"""Fixtures shared by every test folder: a demo bundle, synthetic rides, and the real services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from scoring.batch.store.engines import make_engine, upgrade
from scoring.demo.synthetic import generate_rides
from scoring.demo.training import train_demo_bundle
from scoring.model.bundle import ModelBundle, load_bundle
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust
from scoring.settings import normalize_database_url
from tests.webservice.generic_bundles import GenericModel, build_fraud_bundle, build_risk_bundle, import_fraud_bundle

# Shared by every folder: AWS on a moto server, and the Lambda handler as a cold container loads it.
pytest_plugins = ["tests.support.aws", "tests.support.lambda_handler"]


@pytest.fixture(scope="session")
def demo_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo bundle trained once per session (small, so the suite stays quick)."""
    directory = tmp_path_factory.mktemp("bundle") / "ride_duration" / "1"
    train_demo_bundle(str(directory), rows=20_000)
    return directory


@pytest.fixture(scope="session")
def demo_bundle(demo_bundle_dir: Path) -> ModelBundle:
    return load_bundle(str(demo_bundle_dir), BundleTrust.of_bundle(str(demo_bundle_dir)))


@pytest.fixture(scope="session")
def fraud_model(tmp_path_factory: pytest.TempPathFactory) -> GenericModel:
    """A binary fraud classifier on amount, merchant and country, with no id field: it knows nothing of rides."""
    return build_fraud_bundle(tmp_path_factory.mktemp("fraud") / "fraud" / "3")


@pytest.fixture(scope="session")
def risk_model(tmp_path_factory: pytest.TempPathFactory) -> GenericModel:
    """A multiclass risk model returning per-class probabilities, its records named by case_id."""
    return build_risk_bundle(tmp_path_factory.mktemp("risk") / "risk" / "7")


@pytest.fixture(scope="session")
def imported_fraud_model(tmp_path_factory: pytest.TempPathFactory) -> GenericModel:
    """The fraud classifier imported from its pickle with no --features: every name in its manifest was inferred."""
    return import_fraud_bundle(tmp_path_factory.mktemp("imported"))


@pytest.fixture(scope="session")
def predictor(demo_bundle: ModelBundle) -> Predictor:
    return Predictor(demo_bundle)


def make_rides(n: int, seed: int = 11) -> pd.DataFrame:
    """Synthetic rides with TLC columns, for tests that need a frame."""
    return generate_rides(n, start=datetime(2026, 3, 1, tzinfo=timezone.utc), span=timedelta(hours=1), seed=seed)


@pytest.fixture
def rides() -> pd.DataFrame:
    return make_rides(500)


# --- real services -------------------------------------------------------------------------

PG_BASE_URL = os.environ.get("SCORING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> bool:
    try:
        engine = sa.create_engine(normalize_database_url(PG_BASE_URL))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The machine's PostgreSQL; in CI (CI=true) its absence fails the run instead of skipping."""
    if not _postgres_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_BASE_URL}; .ci/run should have started it")
        pytest.skip(f"PostgreSQL is not reachable at {PG_BASE_URL}")
    return PG_BASE_URL


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards: tests never share tables."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalize_database_url(postgres_url))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def pg_engine(pg_schema_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh, migrated schema."""
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'scoring.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def predict_valid(predictor: Predictor, records: list[object]) -> np.ndarray:
    """The core's predictions for records the test means to be valid; a rejected one fails the test by name."""
    result = predictor.schema.validate_records(records)
    assert result.rejected.to_dict() == {}, "the test's own records were rejected"
    return predictor.predict(result.valid)
