"""Features from validated inputs, columnar, for any declaration (scoring.model.declaration).

Text features come back as pandas Categoricals (cheap to build and to map onto a vocabulary),
numeric ones as float64. Feeding the frame's records to a DictVectorizer gives exactly what the
classic per-row dicts give, which is what the model was trained on: an integer becomes "132",
a string stays itself, a float becomes str(float), a concat joins those with its separator, and a
null contributes no feature. Only distinct values (and distinct combinations) are ever formatted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoring.model.declaration import PRESETS, Declaration, FeatureSpec, preset
from scoring.model.schema import FieldSpec

# The codes of a text feature (-1: no value) and the text of each code (an object array of str).
Coded = tuple[np.ndarray, np.ndarray]


def build_features(declaration: Declaration, inputs: pd.DataFrame) -> pd.DataFrame:
    """The feature frame the model is fed (a frame feature: the inputs themselves, in declared order)."""
    features = declaration.features
    if len(features) == 1 and features[0].kind == "frame":
        return inputs[list(features[0].inputs)]
    columns: dict[str, object] = {}
    coded: dict[str, Coded] = {}
    for feature in features:
        if feature.kind == "number":
            columns[feature.name] = inputs[feature.inputs[0]].to_numpy(dtype=float, na_value=np.nan)
            continue
        parts = [_coded_input(declaration.input(name), inputs[name], coded) for name in feature.inputs]
        codes, labels = parts[0] if len(parts) == 1 else _concat(parts, feature.separator)
        columns[feature.name] = pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object))
    return pd.DataFrame(columns, index=inputs.index)


def _coded_input(spec: FieldSpec, column: pd.Series, cache: dict[str, Coded]) -> Coded:
    """One input as codes plus the text of each distinct value (cached: several features may read it)."""
    if spec.name not in cache:
        cache[spec.name] = _code(spec, column)
    return cache[spec.name]


def _code(spec: FieldSpec, column: pd.Series) -> Coded:
    if spec.type == "string":
        codes, uniques = pd.factorize(column.to_numpy(dtype=object), use_na_sentinel=True)
        return codes, _as_objects([str(value) for value in uniques])
    if spec.type == "integer":
        present = column.notna().to_numpy()
        values = column.to_numpy(dtype=np.int64, na_value=0)
        codes, uniques = pd.factorize(values)
        return np.where(present, codes, -1), _as_objects([str(value) for value in uniques.tolist()])
    # A float's text is its repr; factorize its bits, since 0.0 and -0.0 compare equal but print differently.
    floats = column.to_numpy(dtype=np.float64, na_value=np.nan)
    # Every NaN is a null (no feature) whatever its sign and payload: one bit pattern for all of them, or two
    # NaNs would print as two "nan" categories and the Categorical would refuse them (the property test found it).
    codes, uniques = pd.factorize(np.where(np.isnan(floats), np.nan, floats).view(np.int64))
    texts = [str(value) for value in uniques.view(np.float64).tolist()]
    return np.where(np.isnan(floats), -1, codes), _as_objects(texts)


def _concat(parts: list[Coded], separator: str) -> Coded:
    """Join several coded inputs: combine codes, format each distinct combination once (a null part: no value)."""
    missing = np.zeros(len(parts[0][0]), dtype=bool)
    for codes, _ in parts:
        missing |= codes < 0
    if missing.all():
        return np.full(len(missing), -1, dtype=np.int64), _as_objects([])
    # Fold the inputs in one at a time, refactorizing, so the combined key stays below rows * distinct values.
    combined = np.where(missing, 0, parts[0][0]).astype(np.int64)
    members: list[np.ndarray] = [np.arange(len(parts[0][1]), dtype=np.int64)]
    for codes, labels in parts[1:]:
        width = max(len(labels), 1)
        key = combined * width + np.where(missing, 0, codes)
        combined, keys = pd.factorize(key)
        members = [member[keys // width] for member in members] + [keys % width]
    # Object arrays add elementwise in C: each distinct combination's text, without a Python loop per row.
    texts = parts[0][1][members[0]]
    for (_, labels), member in zip(parts[1:], members[1:], strict=True):
        texts = texts + separator + labels[member]
    # Different combinations can print the same ("a_b" + "c" and "a" + "b_c"): they are the same feature.
    text_codes, distinct = pd.factorize(texts)
    codes = np.where(missing, -1, text_codes[combined] if len(texts) else -1)
    return codes, np.asarray(distinct, dtype=object)


def _as_objects(labels: list[str]) -> np.ndarray:
    """Texts as a 1-d object array (np.array would make a fixed-width unicode array)."""
    array = np.empty(len(labels), dtype=object)
    array[:] = labels
    return array


def records_for_vectorizer(features: pd.DataFrame) -> list[dict[str, object]]:
    """The classic per-row dicts a DictVectorizer is fitted on (training; the tutorial's slow path).

    A text feature without a value is left out of its row, as the per-row dict would leave it out.
    """
    names = [str(name) for name in features.columns]
    columns = [
        col.astype(object).where(col.notna(), None).tolist()
        if isinstance(col.dtype, pd.CategoricalDtype)
        else col.tolist()
        for _, col in features.items()
    ]
    text = [isinstance(col.dtype, pd.CategoricalDtype) for _, col in features.items()]
    return (
        [
            {
                name: value
                for name, value, is_text in zip(names, row, text, strict=True)
                if not (is_text and value is None)
            }
            for row in zip(*columns, strict=True)
        ]
        if names
        else [{} for _ in range(len(features))]
    )


@dataclass(frozen=True)
class Recipe:
    """Deprecated: a preset seen as the old recipe (name, inputs, build); use Declaration and build_features."""

    name: str
    declaration: Declaration

    @property
    def inputs(self) -> tuple[FieldSpec, ...]:
        return self.declaration.inputs

    @property
    def build(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        return lambda inputs: build_features(self.declaration, inputs)

    def feature_names(self) -> list[str]:
        return self.declaration.feature_names()


RECIPES: dict[str, Recipe] = {name: Recipe(name, declaration) for name, declaration in PRESETS.items()}


def get_recipe(name: str) -> Recipe:
    """Deprecated alias of scoring.model.declaration.preset, kept until every caller moves."""
    return Recipe(name, preset(name))


__all__ = ["RECIPES", "FeatureSpec", "Recipe", "build_features", "get_recipe", "records_for_vectorizer"]
