"""Feeding the prediction log in tests: a scored record without a model, and the driver choice without psycopg2."""

from __future__ import annotations

import builtins
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Outcome:
    """The fields of scoring.model.RecordOutcome that PredictionLog.record reads."""

    record_id: str | None
    prediction: float | None
    label: object | None = None


def hide_psycopg2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import psycopg2` fail from here on, so the log's connect() takes pg8000, as in the Lambda."""
    real_import = builtins.__import__

    def no_psycopg2(name, *args, **kwargs):
        if name == "psycopg2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg2)
