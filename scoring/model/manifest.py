"""A bundle's manifest: what `model.json` says about the artifact beside it, parsed and checked field by field.

Reading the file and loading the artifact it describes is scoring.model.bundle; writing one is
scoring.model.importing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sklearn

from scoring.errors import ModelLoadError
from scoring.model.artifacts import SERIALIZATIONS
from scoring.model.declaration import Declaration, FeatureSpec, preset
from scoring.model.schema import FieldSpec
from scoring.model.trust import SIGNATURE_KEY, require_plain_file_name

ARTIFACT_NAME = "model.bin"
MANIFEST_NAME = "model.json"
REFERENCE_NAME = "reference.json"
FORMATS = ("dv_tuple", "pipeline")
# What each task may return; the first is its default.
RETURNS = {
    "regression": ("value",),
    "binary": ("probability", "label"),
    "multiclass": ("label", "probabilities"),
}
# What a manifest that does not say otherwise names each record by, and what it calls the prediction.
DEFAULT_ID_FIELD = "ride_id"
DEFAULT_OUTPUT = "duration"
# The answer's names for a record's id when the bundle has no id field, and for the class probabilities.
GENERIC_ID_KEY = "id"
PROBABILITIES_KEY = "probabilities"


@dataclass(frozen=True)
class Manifest:
    """What `model.json` says about the artifact beside it.

    `features` is the declaration's features; a preset name (legacy) is accepted and expanded, and
    recorded in `preset`.
    """

    name: str
    version: str
    sha256: str
    format: str
    features: tuple[FeatureSpec, ...]
    inputs: tuple[FieldSpec, ...]
    id_field: str | None = DEFAULT_ID_FIELD
    output: str = DEFAULT_OUTPUT
    artifact: str = ARTIFACT_NAME
    sklearn_version: str = sklearn.__version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    # HMAC of the rest of the manifest, made at import when SCORING_BUNDLE_KEY is set (scoring.model.trust).
    signature: str | None = None
    preset: str | None = None
    serialization: str = "pickle"
    skops_trusted_types: tuple[str, ...] = ()
    id_required: bool = False
    task: str = "regression"
    classes: tuple[Any, ...] | None = None
    positive_class: Any = None
    returns: str = ""  # empty: the task's default (RETURNS)
    source: dict[str, Any] | None = None
    # The reference profile's file and sha256, {"file": "reference.json", "sha256": "..."}; None: no profile.
    reference: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.features, str):  # a legacy caller naming a preset
            object.__setattr__(self, "preset", self.preset or self.features)
            object.__setattr__(self, "features", preset(self.features).features)
        else:
            object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.returns and self.task in RETURNS:
            object.__setattr__(self, "returns", RETURNS[self.task][0])

    @property
    def declaration(self) -> Declaration:
        """The declared inputs and the features built from them."""
        return Declaration(inputs=self.inputs, features=self.features)

    @classmethod
    def from_json(cls, raw: object, where: str) -> Manifest:
        """The manifest a bundle's `model.json` holds, or ModelLoadError naming what is wrong with it."""
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{where}: the manifest must be a JSON object")
        required = ("name", "version", "sha256", "format", "features", "inputs")
        missing = [key for key in required if key not in raw]
        if missing:
            raise ModelLoadError(f"{where}: manifest lacks {', '.join(missing)}")
        if raw["format"] not in FORMATS:
            raise ModelLoadError(f"{where}: 'format' must be one of {', '.join(FORMATS)}")
        id_field = _id_field_of(raw, where)
        declaration = Declaration.from_json(raw["inputs"], raw["features"], where)
        if id_field in {spec.name for spec in declaration.inputs}:
            raise ModelLoadError(f"{where}: the id field '{id_field}' is also declared as an input")
        output = str(raw.get("output", DEFAULT_OUTPUT))
        clash = output_clash(output, id_field)
        if clash is not None:
            raise ModelLoadError(f"{where}: {clash}")
        task, classes, positive_class, returns = _task_of(raw, where)
        serialization, trusted = _serialization_of(raw, where)
        named_preset = raw["features"] if isinstance(raw["features"], str) else raw.get("preset")
        if named_preset is not None and not isinstance(named_preset, str):
            raise ModelLoadError(f"{where}: 'preset' must be a preset name or null")
        source = raw.get("source")
        if source is not None and not isinstance(source, dict):
            raise ModelLoadError(f"{where}: 'source' must be an object or null")
        reference = _reference_entry_of(raw, where)
        id_required = raw.get("id_required", False)
        if not isinstance(id_required, bool):
            raise ModelLoadError(f"{where}: 'id_required' must be true or false")
        if id_required and id_field is None:
            raise ModelLoadError(f"{where}: 'id_required' is true but there is no 'id_field'")
        return cls(
            name=str(raw["name"]),
            version=str(raw["version"]),
            sha256=str(raw["sha256"]),
            format=str(raw["format"]),
            features=declaration.features,
            inputs=declaration.inputs,
            id_field=id_field,
            output=output,
            artifact=require_plain_file_name(raw.get("artifact", ARTIFACT_NAME), where),
            sklearn_version=str(raw.get("sklearn_version", "unknown")),
            created_at=str(raw.get("created_at", "")),
            signature=raw.get(SIGNATURE_KEY) if isinstance(raw.get(SIGNATURE_KEY), str) else None,
            preset=named_preset,
            serialization=serialization,
            skops_trusted_types=trusted,
            id_required=id_required,
            task=task,
            classes=classes,
            positive_class=positive_class,
            returns=returns,
            source=source,
            reference=reference,
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest as `model.json` holds it (the signature only when there is one)."""
        inputs, features = self.declaration.to_json()
        return {
            "name": self.name,
            "version": self.version,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "format": self.format,
            "serialization": self.serialization,
            **({"skops_trusted_types": list(self.skops_trusted_types)} if self.serialization == "skops" else {}),
            "features": features,
            "preset": self.preset,
            "inputs": inputs,
            "id_field": self.id_field,
            "id_required": self.id_required,
            "output": self.output,
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "positive_class": self.positive_class,
            "returns": self.returns,
            "source": self.source,
            # Only when there is a profile, so a bundle without one keeps its manifest (and signature) as it was.
            **({"reference": dict(self.reference)} if self.reference else {}),
            "sklearn_version": self.sklearn_version,
            "created_at": self.created_at,
            **({SIGNATURE_KEY: self.signature} if self.signature else {}),
        }


def class_key(label: object) -> str:
    """A class label as a JSON object key: strings as they are, numbers and booleans as JSON writes them."""
    return label if isinstance(label, str) else json.dumps(label)


def output_clash(output: str, id_field: str | None) -> str | None:
    """Why an answer could not hold the output under `output` beside the id and probabilities, or None.

    Online and stream answers put the id under the id field (the generic "id" without one) and the class
    probabilities under "probabilities", in the same object as the output: a shared name would lose one."""
    taken = {id_field or GENERIC_ID_KEY: "the id", PROBABILITIES_KEY: "the class probabilities"}
    if output in taken:
        return f"the output '{output}' is where answers put {taken[output]}; name the output otherwise"
    return None


def _id_field_of(raw: dict[str, Any], where: str) -> str | None:
    """The id field: absent means the legacy "ride_id", null means records have no id field."""
    id_field = raw.get("id_field", DEFAULT_ID_FIELD)
    if id_field is not None and (not isinstance(id_field, str) or not id_field):
        raise ModelLoadError(f"{where}: 'id_field' must be a field name or null")
    return id_field


def _reference_entry_of(raw: dict[str, Any], where: str) -> dict[str, str] | None:
    """The reference profile's entry: absent or null for none, else its plain file name and sha256."""
    entry = raw.get("reference")
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not entry["sha256"]:
        raise ModelLoadError(f"{where}: 'reference' must be an object with 'file' and 'sha256'")
    return {"file": require_plain_file_name(entry.get("file", REFERENCE_NAME), where), "sha256": entry["sha256"]}


def _task_of(raw: dict[str, Any], where: str) -> tuple[str, tuple[Any, ...] | None, Any, str]:
    """task, classes, positive_class and returns, checked against each other."""
    task = raw.get("task", "regression")
    if task not in RETURNS:
        raise ModelLoadError(f"{where}: 'task' must be one of {', '.join(RETURNS)}")
    returns = raw.get("returns", RETURNS[task][0])
    if returns not in RETURNS[task]:
        raise ModelLoadError(f"{where}: 'returns' for a {task} model must be one of {', '.join(RETURNS[task])}")
    classes_raw = raw.get("classes")
    if task == "regression":
        return task, None, None, returns
    if (
        not isinstance(classes_raw, list)
        or len(classes_raw) < 2
        or not all(isinstance(c, (str, int, float, bool)) for c in classes_raw)
        or not all(math.isfinite(c) for c in classes_raw if isinstance(c, float))
        # Distinct as labels (0 == 0.0 == False) and as probability keys (1 and "1" are both "1").
        or len(set(classes_raw)) != len(classes_raw)
        or len({class_key(c) for c in classes_raw}) != len(classes_raw)
    ):
        raise ModelLoadError(f"{where}: 'classes' must list two or more distinct class labels for a {task} model")
    classes = tuple(classes_raw)
    positive_class = raw.get("positive_class")
    if task == "binary":
        if len(classes) != 2:
            raise ModelLoadError(f"{where}: a binary model has exactly two 'classes', not {len(classes)}")
        if positive_class not in classes:
            raise ModelLoadError(f"{where}: 'positive_class' must be one of the model's 'classes'")
    elif positive_class is not None:
        raise ModelLoadError(f"{where}: 'positive_class' is for binary models only")
    return task, classes, positive_class, returns


def _serialization_of(raw: dict[str, Any], where: str) -> tuple[str, tuple[str, ...]]:
    """The artifact's serialization and, for skops, exactly the types to trust when loading it."""
    serialization = raw.get("serialization", "pickle")
    if serialization not in SERIALIZATIONS:
        raise ModelLoadError(f"{where}: 'serialization' must be one of {', '.join(SERIALIZATIONS)}")
    trusted = raw.get("skops_trusted_types", [])
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise ModelLoadError(f"{where}: 'skops_trusted_types' must be a list of type names")
    if trusted and serialization != "skops":
        raise ModelLoadError(f"{where}: 'skops_trusted_types' is for skops artifacts only")
    return serialization, tuple(trusted)
