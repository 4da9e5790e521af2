"""Scoring JSON records for the online and streaming adapters: validate all, predict once, per-record outcome."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoring.model.predict import Predictor, split_finite
from scoring.model.record_ids import canonical_id


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one input record: a prediction, or the reason it could not be scored.

    `record_id` is the id's canonical text (scoring.model.record_ids), None when it had none or it was refused.
    A classifier in label mode also carries the `label`; one that returns probabilities, them per class.
    """

    position: int
    record_id: str | None
    prediction: float | None = None
    error: str | None = None
    label: object | None = None
    probabilities: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def answer(self, output: str) -> dict[str, object]:
        """What online and stream answer for this record: the label (else the prediction) under `output`,
        plus the class probabilities when there are any."""
        value = self.label if self.label is not None else self.prediction
        return {output: value, **({"probabilities": self.probabilities} if self.probabilities else {})}


def score_records(predictor: Predictor, records: Sequence[object]) -> list[RecordOutcome]:
    """One outcome per record, in order; every valid record is scored in a single vectorised predict."""
    validation = predictor.schema.validate_records(list(records))
    values, probabilities = predictor.predict_with_probabilities(validation.valid)
    finite = np.isfinite(values)
    valid, predictions, rejected = split_finite(validation.valid, values, validation.rejected)
    id_field = predictor.schema.id_field
    ids = valid[id_field].tolist() if id_field else [None] * len(valid)
    per_class = _per_class(predictor, probabilities[finite] if probabilities is not None else None, len(valid))
    outcomes = {
        position: RecordOutcome(
            position, record_id, prediction=value, label=predictor.label_of(value), probabilities=class_probabilities
        )
        for position, record_id, value, class_probabilities in zip(
            valid.index.tolist(), ids, predictions.tolist(), per_class, strict=True
        )
    }
    for position, reason in rejected.items():
        record = records[int(position)]
        raw_id = record.get(id_field) if (id_field and isinstance(record, dict)) else None
        outcomes[int(position)] = RecordOutcome(int(position), canonical_id(raw_id)[0], error=str(reason))
    return [outcomes[i] for i in range(len(records))]


def _per_class(predictor: Predictor, probabilities: np.ndarray | None, rows: int) -> list[dict[str, float] | None]:
    """Per row, its class probabilities keyed by the class label's text (JSON keys are text), or None."""
    classes = predictor.bundle.manifest.classes
    if probabilities is None or classes is None:
        return [None] * rows
    keys = [class_key(label) for label in classes]
    return [dict(zip(keys, row, strict=True)) for row in probabilities.tolist()]


def class_key(label: object) -> str:
    """A class label as a JSON object key: strings as they are, numbers and booleans as JSON writes them."""
    return label if isinstance(label, str) else json.dumps(label)
