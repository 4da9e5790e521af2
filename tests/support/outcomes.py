"""A scored record as the prediction log reads it, for tests that feed the log without a model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """The fields of scoring.model.RecordOutcome that PredictionLog.record reads."""

    record_id: str | None
    prediction: float | None
    label: object | None = None
