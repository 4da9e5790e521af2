"""Scoring JSON records for the online and streaming adapters: validate all, predict once, per-record outcome."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scoring.model.predict import NON_FINITE_PREDICTION, Predictor


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one input record: a prediction, or the reason it could not be scored."""

    position: int
    record_id: str | None
    prediction: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def score_records(predictor: Predictor, records: Sequence[object]) -> list[RecordOutcome]:
    """One outcome per record, in order; every valid record is scored in a single vectorised predict."""
    validation = predictor.schema.validate_records(list(records))
    predictions = predictor.predict(validation.valid)
    id_field = predictor.schema.id_field
    outcomes: dict[int, RecordOutcome] = {}
    ids = validation.valid[id_field].tolist() if id_field else [None] * len(validation.valid)
    for position, record_id, value in zip(validation.valid.index.tolist(), ids, predictions.tolist(), strict=True):
        if math.isfinite(value):
            outcomes[position] = RecordOutcome(position, record_id, prediction=value)
        else:
            outcomes[position] = RecordOutcome(position, record_id, error=NON_FINITE_PREDICTION)
    for position, reason in validation.rejected.items():
        record = records[int(position)]
        raw_id = record.get(id_field) if (id_field and isinstance(record, dict)) else None
        outcomes[int(position)] = RecordOutcome(
            int(position), None if raw_id is None else str(raw_id), error=str(reason)
        )
    return [outcomes[i] for i in range(len(records))]
