"""A model's declared inputs and the features derived from them: what a manifest says instead of code.

A feature is one of four kinds, each feeding the model exactly what the classic per-row dict does:
a `categorical` (one input's value as text), a `number` (one input's float value), a `concat`
(several inputs' text joined by a separator, e.g. PU_DO = "132_236"), or a `frame` (alone: the
inputs as a DataFrame, for a Pipeline that takes one, such as a ColumnTransformer).
The ride recipes of the demo are two PRESETS of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scoring.errors import ModelLoadError, UnknownRecipe
from scoring.model.schema import FieldSpec

FEATURE_KINDS = ("categorical", "number", "concat", "frame")
DEFAULT_SEPARATOR = "_"


@dataclass(frozen=True)
class FeatureSpec:
    """One declared feature: its name, kind, the inputs it reads, and (concat) the separator between them."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    separator: str = DEFAULT_SEPARATOR

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> FeatureSpec:
        """The feature a manifest entry declares, or ValueError naming what is wrong with it."""
        name, kind, inputs = raw.get("name"), raw.get("kind"), raw.get("inputs")
        if not isinstance(name, str) or not name:
            raise ValueError("a feature needs a non-empty 'name'")
        if kind not in FEATURE_KINDS:
            raise ValueError(f"feature {name!r} has kind {kind!r}; expected one of {', '.join(FEATURE_KINDS)}")
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
            raise ValueError(f"feature {name!r}: 'inputs' must be a non-empty list of input names")
        separator = raw.get("separator", DEFAULT_SEPARATOR)
        if not isinstance(separator, str):
            raise ValueError(f"feature {name!r}: 'separator' must be text")
        spec = cls(name=name, kind=str(kind), inputs=tuple(inputs), separator=separator)
        spec._check_arity()
        return spec

    def _check_arity(self) -> None:
        if self.kind in ("categorical", "number") and len(self.inputs) != 1:
            raise ValueError(f"feature {self.name!r}: a {self.kind} feature reads exactly one input")
        if self.kind == "concat" and len(self.inputs) < 2:
            raise ValueError(f"feature {self.name!r}: a concat feature reads two or more inputs")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"feature {self.name!r}: an input is named twice")

    def to_dict(self) -> dict[str, object]:
        """The feature as a manifest entry (the separator only for a concat)."""
        out: dict[str, object] = {"name": self.name, "kind": self.kind, "inputs": list(self.inputs)}
        if self.kind == "concat":
            out["separator"] = self.separator
        return out


@dataclass(frozen=True)
class Declaration:
    """The inputs a model is sent and the features built from them."""

    inputs: tuple[FieldSpec, ...]
    features: tuple[FeatureSpec, ...]

    @classmethod
    def from_json(cls, inputs_raw: object, features_raw: object, where: str) -> Declaration:
        """The declaration a manifest holds (`features` a list, or a legacy preset name), or ModelLoadError."""
        inputs = _inputs_of(inputs_raw, where)
        if isinstance(features_raw, str):
            try:
                features = preset(features_raw).features
            except UnknownRecipe as exc:
                raise ModelLoadError(f"{where}: {exc}") from None
        elif isinstance(features_raw, list) and features_raw and all(isinstance(f, dict) for f in features_raw):
            try:
                features = tuple(FeatureSpec.from_dict(entry) for entry in features_raw)
            except ValueError as exc:
                raise ModelLoadError(f"{where}: {exc}") from None
        else:
            raise ModelLoadError(f"{where}: 'features' must be a non-empty list of objects or a preset name")
        declaration = cls(inputs=inputs, features=features)
        problem = declaration.problem()
        if problem:
            raise ModelLoadError(f"{where}: {problem}")
        return declaration

    def problem(self) -> str | None:
        """What makes this declaration unusable (one line), or None when it is sound."""
        names = [f.name for f in self.features]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            return f"features {repeated} are declared more than once"
        if any(f.kind == "frame" for f in self.features) and len(self.features) > 1:
            return "a frame feature must be the only feature"
        types = {spec.name: spec.type for spec in self.inputs}
        for feature in self.features:
            undeclared = [name for name in feature.inputs if name not in types]
            if undeclared:
                return f"feature {feature.name!r} reads undeclared inputs {undeclared}"
            if feature.kind == "number" and types[feature.inputs[0]] == "string":
                return f"feature {feature.name!r} is a number but its input {feature.inputs[0]!r} is a string"
        return None

    def to_json(self) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """The manifest's `inputs` and `features` lists."""
        return [spec.to_dict() for spec in self.inputs], [feature.to_dict() for feature in self.features]

    def feature_names(self) -> list[str]:
        """The bare feature names the model is fed (a frame: its columns); a vectorizer adds `=value` to text ones."""
        if len(self.features) == 1 and self.features[0].kind == "frame":
            return list(self.features[0].inputs)
        return [feature.name for feature in self.features]

    def input(self, name: str) -> FieldSpec:
        """The declared input called `name`."""
        return next(spec for spec in self.inputs if spec.name == name)


def _inputs_of(raw: object, where: str) -> tuple[FieldSpec, ...]:
    """The declared inputs: a non-empty list of objects with distinct names."""
    if not isinstance(raw, list) or not raw or not all(isinstance(entry, dict) for entry in raw):
        raise ModelLoadError(f"{where}: 'inputs' must be a non-empty list of objects")
    try:
        inputs = tuple(FieldSpec.from_dict(entry) for entry in raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{where}: bad inputs entry: {exc}") from None
    names = [spec.name for spec in inputs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ModelLoadError(f"{where}: inputs {repeated} are declared more than once")
    return inputs


_LOCATIONS = (
    FieldSpec("PULocationID", "integer", required=True, minimum=0),
    FieldSpec("DOLocationID", "integer", required=True, minimum=0),
)
_DISTANCE = FieldSpec("trip_distance", "number", required=True, minimum=0)

PRESETS: dict[str, Declaration] = {
    # The classic tutorial: PU_DO = "<PULocationID>_<DOLocationID>" as one categorical, plus trip_distance.
    "ride_pu_do": Declaration(
        inputs=(*_LOCATIONS, _DISTANCE),
        features=(
            FeatureSpec("PU_DO", "concat", ("PULocationID", "DOLocationID")),
            FeatureSpec("trip_distance", "number", ("trip_distance",)),
        ),
    ),
    # Each location id its own categorical, plus trip_distance.
    "ride_categorical": Declaration(
        inputs=(*_LOCATIONS, _DISTANCE),
        features=(
            FeatureSpec("PULocationID", "categorical", ("PULocationID",)),
            FeatureSpec("DOLocationID", "categorical", ("DOLocationID",)),
            FeatureSpec("trip_distance", "number", ("trip_distance",)),
        ),
    ),
}


def preset(name: str) -> Declaration:
    """The declaration registered under `name`, or UnknownRecipe listing the known presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownRecipe(f"unknown feature preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
