"""Inferring a model's declaration (its inputs and features) from the fitted model itself.

- A DictVectorizer (a (dv, model) tuple's, or a Pipeline's first step) knows every feature it was fitted
  on: `name=value` is a categorical feature, a bare `name` a number feature. A categorical's input is an
  integer when every value is an int's text, else a string.
- A feature that joins several inputs (PU_DO = PULocationID "_" DOLocationID) cannot be told from its
  name: `--derive 'PU_DO=PULocationID+"_"+DOLocationID'` gives it, and its inputs are typed from its
  vocabulary values split by the separator.
- A Pipeline without a DictVectorizer in front (a ColumnTransformer and the like) is fed a frame of its
  `feature_names_in_`, typed from a sample file or an MLflow signature.

Only what the model reads is declared: an input nothing uses is never required.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd
from sklearn.feature_extraction import DictVectorizer

from scoring.errors import ConfigError, ModelLoadError
from scoring.model.declaration import Declaration, FeatureSpec
from scoring.model.schema import FieldSpec

log = logging.getLogger(__name__)

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_DERIVE = re.compile(rf"^\s*(?P<name>{_NAME})\s*=\s*(?P<expression>.+?)\s*$")
_TERM = re.compile(rf"""\s*(?:(?P<input>{_NAME})|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\s*""")
_INT_TEXT = re.compile(r"^-?[0-9]+$")


@dataclass(frozen=True)
class ModelFeatures:
    """What a fitted model says about its features: a vectorizer's vocabulary, or a frame's column names."""

    vectorizer: DictVectorizer | None
    frame_columns: tuple[str, ...] | None

    def known_features(self) -> set[str]:
        """The bare feature names the model was fitted on."""
        if self.vectorizer is not None:
            return set(vocabulary_features(self.vectorizer))
        return set(self.frame_columns or ())


def parse_derive(text: str) -> FeatureSpec:
    """A concat feature from `NAME=INPUT+"SEP"+INPUT[+"SEP"+INPUT...]` (no separators given: joined with nothing)."""
    match = _DERIVE.match(text)
    if not match:
        raise ConfigError('--derive must look like NAME=INPUT+"SEP"+INPUT, e.g. PU_DO=PULocationID+"_"+DOLocationID')
    name = match["name"]
    terms = [_TERM.fullmatch(part) for part in _split_plus(match["expression"])]
    if not all(terms):
        raise ConfigError(f"--derive {name}: each part must be an input name or a quoted separator, joined by +")
    inputs = [t["input"] for t in terms if t and t["input"]]
    separators = [t["dq"] if t["dq"] is not None else t["sq"] for t in terms if t and not t["input"]]
    kinds = ["input" if t and t["input"] else "sep" for t in terms]
    expected = ["input", *(["sep", "input"] * (len(inputs) - 1))] if separators else ["input"] * len(inputs)
    if len(inputs) < 2 or kinds != expected:
        raise ConfigError(f"--derive {name}: join two or more inputs, with one quoted separator between each pair")
    if len(set(separators)) > 1:
        raise ConfigError(f"--derive {name}: use the same separator between every pair of inputs")
    if len(set(inputs)) != len(inputs):
        raise ConfigError(f"--derive {name}: an input is named twice")
    return FeatureSpec(name=name, kind="concat", inputs=tuple(inputs), separator=separators[0] if separators else "")


def _split_plus(expression: str) -> list[str]:
    """The expression's parts between + signs that are not inside quotes."""
    parts, current, quote = [], "", None
    for char in expression:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "+":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def vocabulary_features(dv: DictVectorizer) -> dict[str, list[str] | None]:
    """Feature name -> its text values (a categorical), or None (a number), from a fitted vocabulary."""
    features: dict[str, list[str] | None] = {}
    for key in dv.feature_names_:
        name, sep, value = str(key).partition(dv.separator)
        if not sep:
            if features.get(name):
                raise ModelLoadError(
                    f"the model's feature {name!r} is both a number and text; declare it with --features"
                )
            features[name] = None
            continue
        if name in features and features[name] is None:
            raise ModelLoadError(f"the model's feature {name!r} is both a number and text; declare it with --features")
        features.setdefault(name, []).append(value)  # type: ignore[union-attr]
    return features


def infer_declaration(
    model: ModelFeatures,
    *,
    derived: Iterable[FeatureSpec] = (),
    column_types: Mapping[str, str] | None = None,
    types_from: str = "",
) -> Declaration:
    """The declaration a model's own features imply; `column_types` (from a sample or a signature) type the inputs."""
    derived = list(derived)
    if model.vectorizer is not None:
        return _from_vocabulary(model.vectorizer, derived, column_types, types_from)
    if derived:
        raise ConfigError("--derive is for a model with a DictVectorizer in front; this one takes a frame of columns")
    return _frame_of(model.frame_columns or (), column_types, types_from)


def _from_vocabulary(
    dv: DictVectorizer, derived: list[FeatureSpec], column_types: Mapping[str, str] | None, types_from: str
) -> Declaration:
    vocabulary = vocabulary_features(dv)
    by_name = {feature.name: feature for feature in derived}
    for feature in derived:
        if feature.name not in vocabulary:
            raise ConfigError(f"--derive {feature.name}: the model has no feature {feature.name!r}")
        if vocabulary[feature.name] is None:
            raise ConfigError(f"--derive {feature.name}: the model's {feature.name!r} is a number, not joined text")
    inputs: dict[str, FieldSpec] = {}
    features: list[FeatureSpec] = []
    for name, values in vocabulary.items():
        if name in by_name:
            _add_derived(by_name[name], values or [], inputs, column_types, types_from)
            features.append(by_name[name])
        elif values is None:
            _add_input(inputs, _declared(name, "number", column_types, types_from), name)
            features.append(FeatureSpec(name, "number", (name,)))
        else:
            if column_types is not None and name not in column_types:
                raise ConfigError(
                    f"the model's feature {name!r} is not a column of {types_from}; if it joins several columns, "
                    f"""give it with --derive '{name}=A+"_"+B'"""
                )
            # TLC location ids are integer columns: declaring them as strings would reject real data, so an
            # all-integer vocabulary declares an integer input (its text, str(int), is what the model saw).
            guessed = "integer" if all(_is_int_text(v) for v in values) else "string"
            _add_input(inputs, _declared(name, guessed, column_types, types_from), name)
            features.append(FeatureSpec(name, "categorical", (name,)))
            if column_types is None and _looks_joined(values):
                log.warning(
                    "the model's feature %r looks like several values joined (e.g. %r); if it is derived, "
                    "give --derive",
                    name,
                    values[0][:20],
                )
    return Declaration(inputs=tuple(inputs.values()), features=tuple(features))


def _add_derived(
    feature: FeatureSpec,
    values: list[str],
    inputs: dict[str, FieldSpec],
    column_types: Mapping[str, str] | None,
    types_from: str,
) -> None:
    """Declare a derived concat's inputs, each typed from its part of the vocabulary values."""
    for position, input_name in enumerate(feature.inputs):
        parts = _parts(values, feature, position)
        guessed = "integer" if all(_is_int_text(p) for p in parts) else "string"
        _add_input(inputs, _declared(input_name, guessed, column_types, types_from, feature.name), feature.name)


def _add_input(inputs: dict[str, FieldSpec], spec: FieldSpec, feature: str) -> None:
    """Declare `spec`; an input two features read must be one type (a number feature's input cannot be text)."""
    known = inputs.get(spec.name)
    if known is not None and known.type != spec.type:
        raise ConfigError(
            f"input {spec.name!r} is read as {known.type} by one feature and as {spec.type} by {feature!r}; "
            "declare it with --features"
        )
    inputs.setdefault(spec.name, spec)


def _parts(values: list[str], feature: FeatureSpec, position: int) -> list[str]:
    """Each vocabulary value's part at `position`, refusing values that do not split into one part per input."""
    width = len(feature.inputs)
    if not feature.separator:
        raise ConfigError(f"--derive {feature.name}: without a separator its inputs cannot be told apart")
    split = [value.split(feature.separator) for value in values]
    if any(len(parts) != width for parts in split):
        raise ConfigError(
            f"--derive {feature.name}: the model's values do not split into {width} parts by {feature.separator!r}"
        )
    return [parts[position] for parts in split]


def _declared(
    name: str, guessed: str, column_types: Mapping[str, str] | None, types_from: str, derived_for: str | None = None
) -> FieldSpec:
    """The input `name`, typed by the sample or signature when given (it must have the column), else as guessed."""
    if column_types is None:
        return FieldSpec(name, guessed, required=True)
    if name not in column_types:
        reader = f"--derive {derived_for} reads" if derived_for else "the model reads"
        raise ConfigError(f"{reader} input {name!r}, which {types_from} has no column for")
    given = column_types[name]
    # A float column holding whole ids (older TLC files) must give "132", the text the model saw, not "132.0".
    return FieldSpec(name, "integer" if guessed == "integer" and given == "number" else given, required=True)


def _frame_of(columns: tuple[str, ...], column_types: Mapping[str, str] | None, types_from: str) -> Declaration:
    if not columns:
        raise ModelLoadError(
            "the model names no input columns (no DictVectorizer, no feature_names_in_); declare them with --features"
        )
    if column_types is None:
        raise ConfigError(
            "the model takes a frame of columns whose types it does not record: give --sample FILE "
            "(Parquet or CSV with those columns)"
        )
    missing = [name for name in columns if name not in column_types]
    if missing:
        raise ConfigError(f"the model reads columns {missing} that {types_from} does not have")
    inputs = tuple(FieldSpec(name, column_types[name], required=True) for name in columns)
    return Declaration(inputs=inputs, features=(FeatureSpec("frame", "frame", tuple(columns)),))


def sample_types(path: str) -> dict[str, str]:
    """Column name -> input type of a sample file (Parquet or CSV): int -> integer, float -> number, else string."""
    try:
        parquet = path.lower().endswith((".parquet", ".pq"))
        # A CSV's types are pandas' reading of its cells; the first rows tell them as well as the whole file.
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path, nrows=10_000)
    except FileNotFoundError:
        raise ConfigError(f"--sample {path}: no such file") from None
    except Exception as exc:
        raise ConfigError(f"--sample {path}: cannot read it as Parquet or CSV ({type(exc).__name__})") from None
    return {str(name): _type_of(column) for name, column in frame.items()}


def _type_of(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column.dtype):
        return "string"
    if pd.api.types.is_integer_dtype(column.dtype):
        return "integer"
    if pd.api.types.is_float_dtype(column.dtype):
        return "number"
    return "string"


def _is_int_text(value: str) -> bool:
    # str(int(v)) == v: "01" or "+1" is not the text an integer input would produce.
    return bool(_INT_TEXT.match(value)) and str(int(value)) == value


def _looks_joined(values: list[str]) -> bool:
    return bool(values) and all(re.fullmatch(r"-?[0-9]+[_\-|:/][0-9]+", value) for value in values)
