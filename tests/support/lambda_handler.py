"""The Lambda handler file loaded as a fresh container would load it, under chosen SCORING_* settings."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
HANDLER_PATH = REPO / "lambda" / "lambda_function.py"

# Every SCORING_ variable the handler reads; cleared first so the developer's shell cannot leak in.
STREAM_SETTINGS = (
    "SCORING_MODEL_URI",
    "SCORING_MODEL_ROOTS",
    "SCORING_BUNDLE_KEY",
    "SCORING_STREAM_OUTPUT",
    "SCORING_OUTPUT_STREAM",
    "SCORING_OUTPUT_QUEUE_URL",
    "SCORING_DEAD_LETTER_QUEUE_URL",
)


def load_handler_module(path: Path = HANDLER_PATH) -> ModuleType:
    """Import lambda_function.py afresh (a cold start): `lambda` is a keyword, so it is loaded by path."""
    spec = importlib.util.spec_from_file_location(f"lambda_function_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stream_env(monkeypatch: pytest.MonkeyPatch, demo_bundle_dir: Path) -> Callable[..., None]:
    """Set the handler's SCORING_* environment: the demo bundle unless SCORING_MODEL_URI is given."""

    def configure(**settings: str) -> None:
        for name in STREAM_SETTINGS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
        for name, value in settings.items():
            monkeypatch.setenv(name, value)

    return configure


@pytest.fixture
def cold_start(stream_env: Callable[..., None]) -> Callable[..., ModuleType]:
    """Load the handler afresh under the given SCORING_* settings, as a new Lambda container would."""

    def start(**settings: str) -> ModuleType:
        stream_env(**settings)
        return load_handler_module()

    return start
