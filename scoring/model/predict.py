"""Predictor: a verified bundle plus its feature recipe, predicting for frames of any length."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.model.bundle import ModelBundle, feature_vectorizer
from scoring.model.features import Recipe, get_recipe
from scoring.model.schema import InputSchema
from scoring.model.vectorize import transform_columns

# Extreme but valid inputs (a distance of 1e308) can overflow a linear model; such a row is
# rejected like invalid input rather than stored or answered as infinity.
NON_FINITE_PREDICTION = "the model's prediction is not finite (an input is far outside the training range)"


class Predictor:
    """Turns validated input rows into predictions, the same way in batch, online and streaming."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self.recipe: Recipe = get_recipe(bundle.manifest.features)
        self._vectorizer, self._estimator = feature_vectorizer(bundle.vectorizer, bundle.model)

    @property
    def schema(self) -> InputSchema:
        """The validator of the bundle's inputs and id."""
        return self.bundle.schema

    def predict(self, inputs: pd.DataFrame) -> np.ndarray:
        """Predictions for already-validated inputs, in row order, as float64."""
        if len(inputs) == 0:
            return np.empty(0, dtype=float)
        features = self.recipe.build(inputs)
        if self._vectorizer is not None:
            matrix = transform_columns(self._vectorizer, features)
            return np.asarray(self._estimator.predict(matrix), dtype=float)
        return np.asarray(self._estimator.predict(features), dtype=float)


def split_finite(
    valid: pd.DataFrame, predictions: np.ndarray, rejected: pd.Series
) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """The rows and predictions that are finite, and `rejected` plus every other row (NON_FINITE_PREDICTION).

    The one rule for an overflowed prediction in every mode: infinity is neither stored nor answered.
    """
    finite = np.isfinite(predictions)
    if finite.all():
        return valid, predictions, rejected
    overflowed = pd.Series(NON_FINITE_PREDICTION, index=valid.index[~finite], dtype=object)
    return valid[finite], predictions[finite], pd.concat([rejected, overflowed]).sort_index()
