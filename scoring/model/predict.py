"""Predictor: a verified bundle plus its declared features, predicting for frames of any length.

Every prediction is one float64 per row, whatever the task: a regressor's value; a binary
classifier's probability of its positive class (predict_proba's column for it); or, in label mode,
the index of the predicted label in the manifest's `classes` (label_of turns it back into the label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer

from scoring.errors import ModelLoadError
from scoring.model.bundle import ModelBundle, feature_vectorizer
from scoring.model.declaration import Declaration
from scoring.model.features import build_features
from scoring.model.schema import InputSchema
from scoring.model.vectorize import transform_columns

# Extreme but valid inputs (a distance of 1e308) can overflow a linear model; such a row is
# rejected like invalid input rather than stored or answered as infinity.
NON_FINITE_PREDICTION = "the model's prediction is not finite (an input is far outside the training range)"
LABEL_RETURNS = ("label", "probabilities")


class Predictor:
    """Turns validated input rows into predictions, the same way in batch, online and streaming."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self.declaration: Declaration = bundle.manifest.declaration
        self._vectorizer, self._estimator = feature_vectorizer(bundle.vectorizer, bundle.model)
        # Per manifest class, its column in the model's classes_ (predict_proba's column order).
        self._columns: np.ndarray | None = None
        if bundle.manifest.task != "regression":
            self._model_classes, self._columns = _class_columns(bundle)

    @property
    def schema(self) -> InputSchema:
        """The validator of the bundle's inputs and id."""
        return self.bundle.schema

    def predict(self, inputs: pd.DataFrame) -> np.ndarray:
        """Predictions for already-validated inputs, in row order, as float64."""
        return self.predict_with_probabilities(inputs)[0]

    def predict_with_probabilities(self, inputs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions as `predict` gives them, plus per-class probabilities (rows x manifest classes) when the
        bundle returns them, else None."""
        manifest = self.bundle.manifest
        wants_probabilities = manifest.returns == "probabilities"
        if len(inputs) == 0:
            empty = np.empty((0, len(manifest.classes or ())), dtype=float) if wants_probabilities else None
            return np.empty(0, dtype=float), empty
        return self.predict_model_input(self._model_input(inputs))

    def predict_model_input(self, model_input: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """As predict_with_probabilities, from what the estimator itself is fed (the vectorizer's matrix, or the
        feature frame), for at least one row: the one place where a task's answer is read off the estimator."""
        manifest = self.bundle.manifest
        if manifest.task == "regression":
            return np.asarray(self._estimator.predict(model_input), dtype=float), None
        assert self._columns is not None
        if manifest.returns == "probability":
            proba = np.asarray(self._estimator.predict_proba(model_input), dtype=float)
            return proba[:, self._columns[_index_of(manifest.classes, manifest.positive_class)]], None
        labels = self._estimator.predict(model_input)
        indexes = self._label_indexes(labels)
        if manifest.returns != "probabilities":
            return indexes, None
        proba = np.asarray(self._estimator.predict_proba(model_input), dtype=float)
        return indexes, proba[:, self._columns]

    def label_of(self, value: float) -> object | None:
        """The class label a label-mode prediction stands for; None for values and probabilities."""
        manifest = self.bundle.manifest
        if manifest.returns not in LABEL_RETURNS or manifest.classes is None:
            return None
        return manifest.classes[int(value)]

    @property
    def vectorizer(self) -> DictVectorizer | None:
        """The DictVectorizer in front of the estimator (the bundle's own, or a Pipeline's first step), if any."""
        return self._vectorizer

    @property
    def estimator(self) -> Any:
        """What predicts from the vectorizer's matrix (or from the feature frame when there is no vectorizer)."""
        return self._estimator

    def _model_input(self, inputs: pd.DataFrame) -> Any:
        features = build_features(self.declaration, inputs)
        if self._vectorizer is not None:
            return transform_columns(self._vectorizer, features)
        return features

    def _label_indexes(self, labels: np.ndarray) -> np.ndarray:
        """Each predicted label's index in the manifest's classes, as float64."""
        assert self._columns is not None
        column_to_class = np.empty(len(self._model_classes), dtype=float)
        column_to_class[self._columns] = np.arange(len(self._columns), dtype=float)
        return column_to_class[pd.Index(self._model_classes).get_indexer(np.asarray(labels))]


def _class_columns(bundle: ModelBundle) -> tuple[np.ndarray, np.ndarray]:
    """Per class the manifest names, its column among the model's classes_; ModelLoadError when they differ."""
    manifest = bundle.manifest
    model_classes = getattr(bundle.model, "classes_", None)
    if model_classes is None or not hasattr(bundle.model, "predict_proba"):
        raise ModelLoadError(f"{bundle.uri}: the manifest says {manifest.task} but the model is not a classifier")
    classes = list(manifest.classes or ())
    known = list(np.asarray(model_classes).tolist())
    if len(known) != len(classes) or any(_index_of(known, c) is None for c in classes):
        raise ModelLoadError(f"{bundle.uri}: the manifest's classes differ from the model's classes_")
    return np.asarray(model_classes), np.array([_index_of(known, c) for c in classes], dtype=np.int64)


def _index_of(values: Any, wanted: object) -> Any:
    """The position of `wanted` among `values` (equal, and a boolean only for a boolean), or None."""
    for position, value in enumerate(values or ()):
        if value == wanted and isinstance(value, bool) == isinstance(wanted, bool):
            return position
    return None


def finite_mask(predictions: np.ndarray | Sequence[float]) -> np.ndarray | None:
    """Which predictions are finite, or None when all are (the usual case): the one rule for an overflowed
    prediction in every mode, which is neither stored nor answered (NON_FINITE_PREDICTION)."""
    if not isinstance(predictions, np.ndarray):
        # A small request's Python floats: their C-level sum is finite only if every one is, and builds no array.
        if math.isfinite(sum(predictions)):
            return None
        predictions = np.asarray(predictions, dtype=float)
    finite = np.isfinite(predictions)
    return None if finite.all() else finite


def split_finite(
    valid: pd.DataFrame, predictions: np.ndarray, rejected: pd.Series
) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """The rows and predictions that are finite (finite_mask), and `rejected` plus every other row
    (NON_FINITE_PREDICTION), in row order."""
    finite = finite_mask(predictions)
    if finite is None:
        return valid, predictions, rejected
    overflowed = pd.Series(NON_FINITE_PREDICTION, index=valid.index[~finite], dtype=object)
    return valid[finite], predictions[finite], pd.concat([rejected, overflowed]).sort_index()
