"""What a shard stages per scored row besides the prediction: a classifier's label and class probabilities.

A regression bundle stages neither (the columns stay NULL in the table). A bundle that returns a
label stages the label's text; one that returns probabilities also stages them as a JSON object
`{"<class>": p, ...}`, which the store keeps as JSONB. Both are built in Arrow, column by column,
so a classifier's run costs no Python call per row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scoring.batch.staging import prediction_schema
from scoring.model.predict import Predictor

LABEL_RETURNS = ("label", "probabilities")


@dataclass(frozen=True)
class ClassOutputs:
    """The label text of each class (by its index) and the JSON key of each probability, when staged."""

    labels: pa.Array | None = None
    probability_keys: tuple[str, ...] | None = None

    @classmethod
    def of(cls, predictor: Predictor) -> ClassOutputs:
        """What the predictor's bundle returns besides its value: nothing for a regressor."""
        manifest = predictor.bundle.manifest
        classes = list(manifest.classes or [])
        if manifest.returns not in LABEL_RETURNS or not classes:
            return cls()
        labels = pa.array([label_text(predictor.label_of(float(i))) for i in range(len(classes))], pa.string())
        keys = tuple(json.dumps(label_text(c)) for c in classes) if manifest.returns == "probabilities" else None
        return cls(labels=labels, probability_keys=keys)

    @property
    def schema(self) -> pa.Schema:
        return prediction_schema(label=self.labels is not None, probabilities=self.probability_keys is not None)

    def columns(self, values: np.ndarray, probabilities: np.ndarray | None) -> dict[str, pa.Array]:
        """The staged label and probabilities of rows whose predictions are `values` (class indexes in label mode)."""
        columns: dict[str, pa.Array] = {}
        if self.labels is not None:
            columns["label"] = self.labels.take(pa.array(values.astype(np.int64)))
        if self.probability_keys is not None:
            columns["probabilities"] = probabilities_json(self.probability_keys, probabilities, len(values))
        return columns


def label_text(label: object) -> str:
    """A class label as the label column holds it: a string as it is, any other JSON value as JSON (1, true)."""
    return label if isinstance(label, str) else json.dumps(label)


def probabilities_json(keys: tuple[str, ...], probabilities: np.ndarray | None, rows: int) -> pa.Array:
    """One JSON object per row, `{key: probability, ...}`, from a rows x classes matrix."""
    if probabilities is None or rows == 0:
        return pa.nulls(rows, pa.string())
    parts: list[object] = []
    for column, key in enumerate(keys):
        parts.append(("{" if column == 0 else ",") + key + ":")
        parts.append(pc.cast(pa.array(np.asarray(probabilities[:, column], dtype=np.float64)), pa.string()))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")
