"""The Lambda handler file loaded as a fresh container would load it, under chosen SCORING_* settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from scoring.stream.runner import load_module

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
    """Load lambda_function.py afresh under the given SCORING_* settings, as a new Lambda container would.

    `lambda` is a keyword, so the file is loaded by path, with the runner's own loader.
    """

    def start(**settings: str) -> ModuleType:
        stream_env(**settings)
        return load_module(HANDLER_PATH)

    return start
