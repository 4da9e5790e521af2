"""Predictor: a verified bundle plus its feature recipe, predicting for frames of any length."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from scoring.model.bundle import ModelBundle
from scoring.model.features import Recipe, get_recipe, records_for_vectorizer
from scoring.model.vectorize import transform_columns

# Extreme but valid inputs (a distance of 1e308) can overflow a linear model; such a row is
# rejected like invalid input rather than stored or answered as infinity.
NON_FINITE_PREDICTION = "the model's prediction is not finite (an input is far outside the training range)"


class Predictor:
    """Turns validated input rows into predictions, the same way in batch, online and streaming."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self.recipe: Recipe = get_recipe(bundle.manifest.features)
        self._vectorizer, self._estimator = _fast_path_parts(bundle)

    @property
    def schema(self):
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

    def predict_naive(self, inputs: pd.DataFrame) -> np.ndarray:
        """The classic tutorial path (per-row dicts, dv.transform); kept as the reference for tests and benchmarks."""
        features = self.recipe.build(inputs)
        records = records_for_vectorizer(features)
        if self.bundle.vectorizer is not None:
            return np.asarray(self.bundle.model.predict(self.bundle.vectorizer.transform(records)), dtype=float)
        return np.asarray(self.bundle.model.predict(records), dtype=float)


def _fast_path_parts(bundle: ModelBundle):
    """(vectorizer, what predicts after it) when a DictVectorizer leads; (None, model) otherwise."""
    if bundle.vectorizer is not None:
        return bundle.vectorizer, bundle.model
    model = bundle.model
    if isinstance(model, Pipeline):
        from sklearn.feature_extraction import DictVectorizer

        first = model.steps[0][1]
        if isinstance(first, DictVectorizer):
            return first, model[1:]
        # Any other pipeline is given the feature frame itself (e.g. a ColumnTransformer first).
    return None, model
