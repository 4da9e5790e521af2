"""Scoring JSON records for the online and streaming adapters: validate all, predict once, per-record outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scoring.model.predict import Predictor, split_finite
from scoring.model.record_ids import canonical_id


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one input record: a prediction, or the reason it could not be scored.

    `record_id` is the id's canonical text (scoring.model.record_ids), None when it had none or it was refused.
    """

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
    valid, predictions, rejected = split_finite(
        validation.valid, predictor.predict(validation.valid), validation.rejected
    )
    id_field = predictor.schema.id_field
    ids = valid[id_field].tolist() if id_field else [None] * len(valid)
    outcomes = {
        position: RecordOutcome(position, record_id, prediction=value)
        for position, record_id, value in zip(valid.index.tolist(), ids, predictions.tolist(), strict=True)
    }
    for position, reason in rejected.items():
        record = records[int(position)]
        raw_id = record.get(id_field) if (id_field and isinstance(record, dict)) else None
        outcomes[int(position)] = RecordOutcome(int(position), canonical_id(raw_id)[0], error=str(reason))
    return [outcomes[i] for i in range(len(records))]
