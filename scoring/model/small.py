"""The small-request path: a few JSON records validated, featurized and predicted without pandas.

An online request or a Lambda batch holds one to a few hundred records. For so few, the columnar
path's fixed costs (DataFrames, Categoricals, scikit-learn's input checks) are nearly all of the
time, and the arithmetic is microseconds. Here each record is checked by InputSchema.check_record
(the same rules and reasons as the columnar validator: scoring.model.checks words both), its
features are looked up in the DictVectorizer's vocabulary (a dict), and the rows go to the
estimator as the same CSR matrix the columnar path builds, so predictions are bit for bit the same.

Two shortcuts, each taken only where it cannot change a bit:
- scikit-learn's parameter validation is skipped (`skip_parameter_validation`): it checks the
  estimator's settings, never the data. Its finiteness check stays: a tree casts the matrix to
  float32, where 1e300 becomes infinity and scikit-learn refuses it, so skipping that check
  (`assume_finite`) would answer where the columnar path refuses (the property test found it).
  A batch whose matrix would hold a NaN (an optional number sent as null) goes the columnar way.
- A plain linear regressor (its predict is LinearModel's: `X @ coef_ + intercept_`) is evaluated
  here, row by row, in the order scipy's CSR product sums: from 0.0, over the row's entries in
  column order, then the intercept added. Its float64 input is finite (the validator saw to it),
  which is all scikit-learn's own check would have asked.

A declaration with a frame feature, or a model without a DictVectorizer in front, has no small path.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn

from scoring.model.predict import Predictor

# Up to this many records a call takes the small path. Measured with bench/predict.py --small: it is 7x the
# columnar path at 100 records, 2x at 1,000 and still 1.5x at 3,000, but its cost grows per record while the
# columnar path's is mostly fixed, so the limit stays where both are a few milliseconds.
SMALL_PATH_MAX_RECORDS = 1000

# (column in the vocabulary, value) of one row's present features.
Entry = tuple[int, float]
_BY_COLUMN = itemgetter(0)


@dataclass(frozen=True)
class _Feature:
    """One declared feature, ready for lookups: text features by `prefix + text`, number features by `column`."""

    inputs: tuple[str, ...]
    is_number: bool
    separator: str
    prefix: str
    column: int


@dataclass(frozen=True)
class Scored:
    """What a call scored: per valid record its position, id text and row of the model input; per refused, the reason."""

    positions: list[int]
    ids: list[str | None]
    values: np.ndarray | list[float]
    probabilities: np.ndarray | None
    rejected: dict[int, str]


class SmallPath:
    """Scores a few records of one predictor over plain Python and NumPy; see the module docstring."""

    def __init__(self, predictor: Predictor):
        vectorizer = predictor.vectorizer
        assert vectorizer is not None
        self._predictor = predictor
        self._schema = predictor.schema
        self._vocabulary: dict[str, int] = vectorizer.vocabulary_
        self._width = len(vectorizer.vocabulary_)
        self._dtype = vectorizer.dtype
        self._features = tuple(
            _Feature(
                inputs=feature.inputs,
                is_number=feature.kind == "number",
                separator=feature.separator,
                prefix=f"{feature.name}{vectorizer.separator}",
                column=self._vocabulary.get(feature.name, -1),
            )
            for feature in predictor.declaration.features
        )
        self._linear = _linear_terms(predictor)

    @classmethod
    def of(cls, predictor: Predictor) -> SmallPath | None:
        """The predictor's small path, built once; None when its model cannot take one (see the module docstring)."""
        if predictor in _BUILT:
            return _BUILT[predictor]
        kinds = {feature.kind for feature in predictor.declaration.features}
        path = cls(predictor) if predictor.vectorizer is not None and "frame" not in kinds else None
        _BUILT[predictor] = path
        return path

    def score(self, records: Sequence[object]) -> Scored | None:
        """Validate and predict `records`; None when the columnar path must take them (a NaN would reach the model)."""
        positions: list[int] = []
        ids: list[str | None] = []
        rows: list[list[Entry]] = []
        rejected: dict[int, str] = {}
        check = self._schema.check_record
        for position, record in enumerate(records):
            values, record_id, reason = check(record)
            if values is None:
                rejected[position] = reason  # type: ignore[assignment]
                continue
            row = self._row(values)
            if row is None:
                return None
            positions.append(position)
            ids.append(record_id)
            rows.append(row)
        if not rows:
            return Scored(positions, ids, [], None, rejected)
        if self._linear is not None:
            coefficients, intercept = self._linear
            predictions: np.ndarray | list[float] = [_dot(row, coefficients) + intercept for row in rows]
            return Scored(positions, ids, predictions, None, rejected)
        with sklearn.config_context(skip_parameter_validation=True):
            predicted, probabilities = self._predictor.predict_model_input(self._matrix(rows))
        return Scored(positions, ids, predicted, probabilities, rejected)

    def _row(self, values: dict[str, object]) -> list[Entry] | None:
        """The row's (column, value) entries in column order, as DictVectorizer lists them; None when one is NaN."""
        entries: list[Entry] = []
        vocabulary = self._vocabulary
        for feature in self._features:
            if feature.is_number:
                if feature.column >= 0:
                    value = values[feature.inputs[0]]
                    if value is None:
                        return None
                    entries.append((feature.column, float(value)))  # type: ignore[arg-type]
                continue
            texts: list[str] = []
            for name in feature.inputs:
                value = values[name]
                if value is None:
                    break
                # As the columnar path writes them: str(int) "132", the string itself, str(float) "1.5".
                texts.append(str(value))
            else:
                column = vocabulary.get(feature.prefix + feature.separator.join(texts), -1)
                if column >= 0:
                    entries.append((column, 1.0))
        if len(entries) == 2:
            if entries[0][0] > entries[1][0]:
                entries.reverse()
        elif len(entries) > 2:
            entries.sort(key=_BY_COLUMN)
        return entries

    def _matrix(self, rows: list[list[Entry]]) -> sp.csr_matrix:
        """The rows as the CSR matrix transform_columns builds: int64 indices, sorted, the vectorizer's dtype."""
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in rows], out=indptr[1:])
        flat = [entry for row in rows for entry in row]
        indices = np.fromiter((column for column, _ in flat), dtype=np.int64, count=len(flat))
        data = np.fromiter((value for _, value in flat), dtype=float, count=len(flat)).astype(self._dtype, copy=False)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(rows), self._width), dtype=self._dtype)
        matrix.has_sorted_indices = True
        return matrix


def _dot(row: list[Entry], coefficients: list[float]) -> float:
    """One row times the coefficients, summed as scipy's csr_matvec sums: from 0.0, in column order."""
    total = 0.0
    for column, value in row:
        total += value * coefficients[column]
    return total


def _linear_terms(predictor: Predictor) -> tuple[list[float], float] | None:
    """(coefficients, intercept) when the estimator predicts as LinearModel does and everything is float64; else None."""
    estimator = predictor.estimator
    vectorizer = predictor.vectorizer
    if predictor.bundle.manifest.task != "regression" or vectorizer is None:
        return None
    # Imported here: a bundle without a linear model (a Lambda's cold start) need not import sklearn.linear_model.
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.linear_model._base import LinearModel

    # Exact types whose predict is LinearModel's `X @ coef_ + intercept_` (through a super().predict that adds
    # nothing); a subclass might change it, so only these.
    if type(estimator) not in (LinearRegression, Ridge) or type(estimator)._decision_function is not (
        LinearModel._decision_function
    ):
        return None
    coef = getattr(estimator, "coef_", None)
    intercept: Any = getattr(estimator, "intercept_", None)
    if not isinstance(coef, np.ndarray) or coef.ndim != 1 or coef.dtype != np.float64:
        return None
    if np.dtype(vectorizer.dtype) != np.float64 or np.ndim(intercept) != 0:
        return None
    if np.asarray(intercept).dtype != np.float64 or len(coef) != len(vectorizer.vocabulary_):
        return None
    return coef.tolist(), float(intercept)  # type: ignore[arg-type]


_BUILT: weakref.WeakKeyDictionary[Predictor, SmallPath | None] = weakref.WeakKeyDictionary()


__all__ = ["SMALL_PATH_MAX_RECORDS", "SmallPath", "Scored"]
