"""Fixtures shared by every test folder: a trained demo bundle and synthetic rides."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from scoring.bundle import ModelBundle, load_bundle
from scoring.predict import Predictor
from scoring.synthetic import generate_rides
from scoring.training import train_demo_bundle


@pytest.fixture(scope="session")
def demo_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo bundle trained once per session (small, so the suite stays quick)."""
    directory = tmp_path_factory.mktemp("bundle") / "ride_duration" / "1"
    train_demo_bundle(str(directory), rows=20_000)
    return directory


@pytest.fixture(scope="session")
def demo_bundle(demo_bundle_dir: Path) -> ModelBundle:
    return load_bundle(str(demo_bundle_dir))


@pytest.fixture(scope="session")
def predictor(demo_bundle: ModelBundle) -> Predictor:
    return Predictor(demo_bundle)


def make_rides(n: int, seed: int = 11) -> pd.DataFrame:
    """Synthetic rides with TLC columns, for tests that need a frame."""
    return generate_rides(n, start=datetime(2026, 3, 1, tzinfo=timezone.utc), span=timedelta(hours=1), seed=seed)


@pytest.fixture
def rides() -> pd.DataFrame:
    return make_rides(500)
