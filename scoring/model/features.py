"""Named feature recipes: the one place where model inputs become model features.

A recipe is a columnar function from validated inputs to a feature frame. Text features come
back as pandas Categoricals (cheap to build and to map onto a vocabulary); numeric features as
float64. Feeding the frame's records to a DictVectorizer gives exactly what the classic
tutorial's per-row dicts give, which is what the model was trained on.

To add a recipe: write the function, declare its inputs, register it in RECIPES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoring.errors import UnknownRecipe
from scoring.model.schema import FieldSpec

LOCATION_FIELDS = (
    FieldSpec("PULocationID", "integer", required=True, minimum=0),
    FieldSpec("DOLocationID", "integer", required=True, minimum=0),
)
DISTANCE_FIELD = FieldSpec("trip_distance", "number", required=True, minimum=0)
# Location ids below 2**31 pack into one non-negative int64 pair key (real TLC zones are 1-265).
PACKABLE = 2**31


@dataclass(frozen=True)
class Recipe:
    """A feature recipe: its name, the input fields it reads, and the function that builds features."""

    name: str
    inputs: tuple[FieldSpec, ...]
    build: Callable[[pd.DataFrame], pd.DataFrame]

    def feature_names(self) -> list[str]:
        """Names of the feature columns the recipe emits (categoricals expand to name=value)."""
        probe = {f.name: pd.Series([1], dtype=np.int64 if f.type == "integer" else float) for f in self.inputs}
        return list(self.build(pd.DataFrame(probe)).columns)


def _categorical_from_ints(values: np.ndarray, label: Callable[[np.ndarray], list[str]]) -> pd.Categorical:
    """A Categorical over int keys that formats only the distinct keys, not every row."""
    codes, uniques = pd.factorize(values)
    return pd.Categorical.from_codes(codes, categories=label(uniques))


def ride_pu_do(inputs: pd.DataFrame) -> pd.DataFrame:
    """PU_DO = "<PULocationID>_<DOLocationID>" as one categorical, plus trip_distance."""
    pu = inputs["PULocationID"].to_numpy(dtype=np.int64)
    do = inputs["DOLocationID"].to_numpy(dtype=np.int64)
    if len(pu) and max(pu.max(), do.max()) >= PACKABLE:
        # Ids too large to pack into one int64 key: build the labels directly (slower, same strings).
        pu_do = pd.Categorical([f"{a}_{b}" for a, b in zip(pu.tolist(), do.tolist(), strict=True)])
    else:
        # Pack the pair into one int so factorize works on numbers and formats only distinct pairs.
        pair = (pu << 32) | do
        pu_do = _categorical_from_ints(pair, lambda keys: [f"{k >> 32}_{k & 0xFFFFFFFF}" for k in keys.tolist()])
    return pd.DataFrame(
        {"PU_DO": pu_do, "trip_distance": inputs["trip_distance"].to_numpy(dtype=float)},
        index=inputs.index,
    )


def ride_categorical(inputs: pd.DataFrame) -> pd.DataFrame:
    """PULocationID and DOLocationID as categorical strings, plus trip_distance."""
    columns = {
        name: _categorical_from_ints(
            inputs[name].to_numpy(dtype=np.int64), lambda keys: [str(k) for k in keys.tolist()]
        )
        for name in ("PULocationID", "DOLocationID")
    }
    columns["trip_distance"] = inputs["trip_distance"].to_numpy(dtype=float)
    return pd.DataFrame(columns, index=inputs.index)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("ride_pu_do", (*LOCATION_FIELDS, DISTANCE_FIELD), ride_pu_do),
        Recipe("ride_categorical", (*LOCATION_FIELDS, DISTANCE_FIELD), ride_categorical),
    )
}


def get_recipe(name: str) -> Recipe:
    """The recipe registered under `name`, or UnknownRecipe listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownRecipe(f"unknown feature recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}") from None


def records_for_vectorizer(features: pd.DataFrame) -> list[dict[str, object]]:
    """The classic per-row dicts a DictVectorizer is fitted on (training; the tutorial's slow path)."""
    plain = {
        name: (col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col)
        for name, col in features.items()
    }
    return pd.DataFrame(plain, index=features.index).to_dict(orient="records")
