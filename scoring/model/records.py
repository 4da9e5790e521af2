"""Scoring JSON records for the online and streaming adapters: validate all, predict once, per-record outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoring.model.manifest import class_key
from scoring.model.predict import NON_FINITE_PREDICTION, Predictor, finite_mask
from scoring.model.record_ids import canonical_id
from scoring.model.small import SMALL_PATH_MAX_RECORDS, Scored, SmallPath


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

    @classmethod
    def scored(
        cls, position: int, record_id: str | None, prediction: float, label: object, probabilities: object
    ) -> RecordOutcome:
        """A scored record's outcome, built without the frozen dataclass's per-field setattr calls (a fifth of a
        100-record request's scoring time went there); equal in every way to the keyword constructor's."""
        outcome = object.__new__(cls)
        outcome.__dict__.update(
            position=position,
            record_id=record_id,
            prediction=prediction,
            error=None,
            label=label,
            probabilities=probabilities,
        )
        return outcome

    @property
    def ok(self) -> bool:
        return self.error is None

    def answer(self, output: str) -> dict[str, object]:
        """What online and stream answer for this record: the label (else the prediction) under `output`,
        plus the class probabilities when there are any."""
        value = self.label if self.label is not None else self.prediction
        return {output: value, **({"probabilities": self.probabilities} if self.probabilities else {})}


def score_records(predictor: Predictor, records: Sequence[object]) -> list[RecordOutcome]:
    """One outcome per record, in order; every valid record is scored in a single vectorised predict.

    Up to SMALL_PATH_MAX_RECORDS records go the small-request path (scoring.model.small), more the
    columnar one; both give the same outcomes, bit for bit (tests/unit/test_small_path.py).
    """
    records = list(records)
    scored = None
    if 0 < len(records) <= SMALL_PATH_MAX_RECORDS:
        small = SmallPath.of(predictor)
        scored = small.score(records) if small is not None else None
    if scored is None:
        scored = score_columnar(predictor, records)
    return outcomes_of(predictor, records, scored)


def score_columnar(predictor: Predictor, records: list[object]) -> Scored:
    """Validate and predict through pandas (any number of records, any model)."""
    validation = predictor.schema.validate_records(records)
    values, probabilities = predictor.predict_with_probabilities(validation.valid)
    id_field = predictor.schema.id_field
    ids = validation.valid[id_field].tolist() if id_field else [None] * len(validation.valid)
    rejected = {int(position): str(reason) for position, reason in validation.rejected.items()}
    return Scored(validation.valid.index.tolist(), ids, values, probabilities, rejected)


def outcomes_of(predictor: Predictor, records: list[object], scored: Scored) -> list[RecordOutcome]:
    """The outcome of every record from what either path scored: an overflowed prediction is refused here."""
    classes = predictor.bundle.manifest.classes
    keys = [class_key(label) for label in classes] if scored.probabilities is not None and classes else None
    per_class = scored.probabilities.tolist() if keys is not None else None  # type: ignore[union-attr]
    values = scored.values.tolist() if isinstance(scored.values, np.ndarray) else scored.values
    finite = finite_mask(values)
    outcomes: list[RecordOutcome | None] = [None] * len(records)
    label_of = predictor.label_of
    for row, (position, record_id, value) in enumerate(zip(scored.positions, scored.ids, values, strict=True)):
        if finite is not None and not finite[row]:
            outcomes[position] = RecordOutcome(position, record_id, error=NON_FINITE_PREDICTION)
            continue
        probabilities = dict(zip(keys, per_class[row], strict=True)) if keys and per_class else None
        outcomes[position] = RecordOutcome.scored(position, record_id, value, label_of(value), probabilities)
    id_field = predictor.schema.id_field
    for position, reason in scored.rejected.items():
        record = records[position]
        raw_id = record.get(id_field) if (id_field and isinstance(record, dict)) else None
        outcomes[position] = RecordOutcome(position, canonical_id(raw_id)[0], error=reason)
    return outcomes  # type: ignore[return-value]
