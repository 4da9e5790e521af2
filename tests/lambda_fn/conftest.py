"""Recorded Lambda events (the handler and AWS fixtures are shared: tests/support/)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

EVENTS = Path(__file__).resolve().parent / "events"


@pytest.fixture
def recorded_event() -> Callable[[str], dict]:
    """Load a recorded Lambda event from tests/lambda_fn/events/ (a fresh copy each call)."""
    return lambda name: json.loads((EVENTS / name).read_text())
