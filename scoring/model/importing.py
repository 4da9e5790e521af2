"""Making bundles: a manifest for an existing model, checked against what the model knows, written beside the artifact.

`scoring model import` and the demo's training use this, and `scoring model profile` adds a reference
profile to a bundle (the sample's inputs and the bundle's predictions on them); loading a bundle is scoring.model.bundle,
finding the model behind an import SOURCE is scoring.model.sources, inferring its declaration
scoring.model.inference.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from scoring import storage
from scoring.errors import ConfigError, ModelLoadError
from scoring.model.artifacts import dump_artifact, load_artifact, skops_types_of
from scoring.model.bundle import (
    ARTIFACT_NAME,
    DEFAULT_ID_FIELD,
    DEFAULT_OUTPUT,
    MANIFEST_NAME,
    REFERENCE_NAME,
    RETURNS,
    Manifest,
    ModelBundle,
    detect_format,
    feature_vectorizer,
    load_bundle,
    output_clash,
    reference_bytes,
    sha256_of,
    split_model,
)
from scoring.model.declaration import Declaration, FeatureSpec, preset
from scoring.model.inference import ModelFeatures, infer_declaration, parse_derive, sample_types, vocabulary_features
from scoring.model.predict import Predictor
from scoring.model.reference import ReferenceProfile, input_kinds
from scoring.model.sources import resolve_source
from scoring.model.trust import BundleTrust, sign_manifest

log = logging.getLogger(__name__)

# The artifact's file name in the bundle, per serialization.
ARTIFACT_NAMES = {"pickle": ARTIFACT_NAME, "skops": "model.skops"}
# The prediction's field name when --output is not given, per task and returns.
DEFAULT_OUTPUTS = {"value": DEFAULT_OUTPUT, "probability": "probability", "label": "label", "probabilities": "label"}


# What a bundle names its records by when the model is not one of the ride presets (which keep "ride_id"):
# a ride name would be wrong for a fraud or churn model, and no id at all would leave answers unmatched.
GENERIC_ID_FIELD = "id"


@dataclass(frozen=True)
class ImportRequest:
    """What `scoring model import` was asked: the source and every option (None: infer or default)."""

    source: str
    name: str | None = None
    version: str | None = None
    features: str | None = None  # a preset name; None infers the declaration from the model
    derive: tuple[str, ...] = ()  # NAME=INPUT+"SEP"+INPUT expressions
    sample: str | None = None  # a Parquet or CSV file whose column types type the inputs
    id_field: str | None = None  # None: the ride presets' "ride_id", else GENERIC_ID_FIELD
    require_id: bool = False
    output: str | None = None
    returns: str | None = None
    positive_class: str | None = None
    serialization: str | None = None  # convert to this serialization; None keeps the source's
    reference: str | None = None  # a Parquet or CSV sample of training inputs to profile for monitoring


@dataclass(frozen=True)
class Task:
    """What kind of model this is and what it returns."""

    task: str = "regression"
    classes: tuple[Any, ...] | None = None
    positive_class: Any = None
    returns: str = "value"


def write_bundle(
    directory: str,
    artifact: bytes,
    manifest: Manifest,
    key: bytes | None = None,
    reference: ReferenceProfile | None = None,
) -> str:
    """Write artifact, manifest and (when given) reference profile into `directory` (local or s3://), the
    manifest signed when a key is given."""
    if reference is not None:
        manifest = _write_reference(directory, manifest, reference)
    storage.write_bytes(storage.join(directory, manifest.artifact), artifact)
    _write_manifest(directory, manifest, key)
    return directory


def _write_reference(directory: str, manifest: Manifest, reference: ReferenceProfile) -> Manifest:
    """Write reference.json; the manifest naming it with its sha256 (so the signature covers it)."""
    data = reference_bytes(reference)
    storage.write_bytes(storage.join(directory, REFERENCE_NAME), data)
    return replace(manifest, reference={"file": REFERENCE_NAME, "sha256": sha256_of(data)})


def _write_manifest(directory: str, manifest: Manifest, key: bytes | None) -> Manifest:
    if key is not None:
        manifest = replace(manifest, signature=sign_manifest(replace(manifest, signature=None).to_json(), key))
    storage.write_bytes(
        storage.join(directory, MANIFEST_NAME), json.dumps(manifest.to_json(), indent=2).encode() + b"\n"
    )
    return manifest


def read_reference_sample(path: str) -> tuple[pd.DataFrame, bool]:
    """A reference sample (Parquet or CSV) as read, and whether it is text (CSV: numbers come as text)."""
    parquet = path.lower().endswith((".parquet", ".pq"))
    try:
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, keep_default_na=True)
    except FileNotFoundError:
        raise ConfigError(f"--reference {path}: no such file") from None
    except Exception as exc:
        raise ConfigError(f"--reference {path}: cannot read it as Parquet or CSV ({type(exc).__name__})") from None
    return frame, not parquet


def profile_sample(bundle: ModelBundle, path: str) -> ReferenceProfile:
    """The reference profile of a sample of training inputs: its valid rows and the bundle's predictions on them."""
    frame, text_input = read_reference_sample(path)
    manifest = bundle.manifest
    result = bundle.schema.validate_frame(frame, text_input=text_input)
    if len(result.valid) == 0:
        missing = [spec.name for spec in manifest.inputs if spec.name not in frame.columns]
        why = f"it lacks the inputs {missing}" if missing else "none of its rows is a valid input"
        raise ConfigError(f"--reference {path}: {why}")
    if result.rejected_count:
        log.warning(
            "--reference %s: %d of %d rows are not valid inputs: left out", path, result.rejected_count, len(frame)
        )
    predictions = Predictor(bundle).predict(result.valid)
    finite = np.isfinite(predictions)
    valid = result.valid[finite] if not finite.all() else result.valid
    return ReferenceProfile.build(valid, predictions[finite], input_kinds(manifest), manifest.output)


def add_reference(uri: str, sample: str, trust: BundleTrust) -> Manifest:
    """Profile `sample` with the bundle at `uri` and add the profile to it, re-signing the manifest with the
    trust's key. A signed bundle without a key to re-sign it is refused (its signature would no longer hold)."""
    bundle = load_bundle(uri, trust)
    if bundle.manifest.signature and trust.key is None:
        raise ConfigError(f"{uri} is signed: set SCORING_BUNDLE_KEY to re-sign it with its reference profile")
    profile = profile_sample(bundle, sample)
    location = trust.locate(uri)
    manifest = _write_reference(location, replace(bundle.manifest, signature=None), profile)
    return _write_manifest(location, manifest, trust.key)


def build_manifest(
    artifact: bytes,
    loaded: Any,
    *,
    name: str,
    version: str,
    features: str | Declaration,
    id_field: str | None = DEFAULT_ID_FIELD,
    output: str | None = None,
    task: Task | None = None,
    named_preset: str | None = None,
) -> Manifest:
    """A manifest for an existing model, its declaration (a preset name or a Declaration) checked against the model.

    `named_preset` names the preset a given Declaration came from, for messages and the manifest.
    """
    fmt = detect_format(loaded)
    named_preset = features if isinstance(features, str) else named_preset
    declaration = preset(features) if isinstance(features, str) else features
    declaration = fit_to_model(declaration, model_features_of(loaded, fmt), named_preset)
    if id_field is not None and id_field in {spec.name for spec in declaration.inputs}:
        raise ConfigError(f"the id field {id_field!r} is also an input the model reads; name another with --id-field")
    task = task or Task()
    output = output or DEFAULT_OUTPUTS[task.returns]
    clash = output_clash(output, id_field)
    if clash is not None:
        raise ConfigError(f"{clash} (--output)")
    return Manifest(
        name=name,
        version=str(version),
        sha256=sha256_of(artifact),
        format=fmt,
        features=declaration.features,
        inputs=declaration.inputs,
        preset=named_preset,
        id_field=id_field,
        output=output,
        task=task.task,
        classes=task.classes,
        positive_class=task.positive_class,
        returns=task.returns,
    )


def model_features_of(loaded: Any, fmt: str) -> ModelFeatures:
    """The model's vectorizer (if it has one up front), else the column names its Pipeline was fitted on."""
    vectorizer, model = feature_vectorizer(*split_model(loaded, fmt, "the model"))
    columns = getattr(model, "feature_names_in_", None) if vectorizer is None else None
    return ModelFeatures(vectorizer=vectorizer, frame_columns=None if columns is None else tuple(map(str, columns)))


def fit_to_model(declaration: Declaration, model: ModelFeatures, named_preset: str | None = None) -> Declaration:
    """The declaration cut to what the model reads; refused when it never produces a feature the model knows."""
    known = model.known_features()
    if not known:
        return declaration  # a Pipeline fitted on bare arrays: nothing to check against
    label = f"recipe {named_preset!r}" if named_preset else "the declaration"
    produced = declaration.feature_names()
    never_produced = sorted(known - set(produced))
    what = "DictVectorizer" if model.vectorizer is not None else "Pipeline"
    if never_produced:
        raise ModelLoadError(
            f"the model's {what} expects features {never_produced} that {label} never produces "
            f"(it produces {produced}); choose the preset the model was trained with, or leave out --features"
        )
    if model.vectorizer is not None:
        _check_kinds(declaration, vocabulary_features(model.vectorizer), label)
        features = tuple(f for f in declaration.features if f.name in known)
    else:
        # A frame goes to the Pipeline with exactly the columns it was fitted on, in that order.
        columns = model.frame_columns or ()
        features = (
            (FeatureSpec(declaration.features[0].name, "frame", tuple(columns)),)
            if declaration.features[0].kind == "frame"
            else tuple(f for f in declaration.features if f.name in known)
        )
    ignored = [f.name for f in declaration.features if f.kind != "frame" and f.name not in known]
    if ignored:
        log.warning("%s produces %s, which the model never saw: left out", label, ignored)
    # Inputs that no kept feature reads are not declared, so records need not carry them.
    used = {name for feature in features for name in feature.inputs}
    return Declaration(inputs=tuple(spec for spec in declaration.inputs if spec.name in used), features=features)


def _check_kinds(declaration: Declaration, vocabulary: dict[str, list[str] | None], label: str) -> None:
    """A number feature the model saw as text (or the reverse) would always be zero: refuse it."""
    for feature in declaration.features:
        if feature.name not in vocabulary:
            continue
        text_in_model = vocabulary[feature.name] is not None
        if text_in_model != (feature.kind != "number"):
            seen = "text (name=value)" if text_in_model else "a number"
            raise ModelLoadError(
                f"{label} makes {feature.name!r} a {feature.kind} feature but the model's DictVectorizer saw {seen}"
            )


def task_of(loaded: Any, returns: str | None = None, positive_class: str | None = None) -> Task:
    """Regression, or a binary or multiclass classifier (predict_proba and classes_), with what it returns."""
    estimator = loaded[1] if isinstance(loaded, (tuple, list)) else loaded
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    classes = getattr(final, "classes_", None)
    if not (hasattr(final, "predict_proba") and classes is not None):
        if returns not in (None, "value"):
            raise ConfigError(f"--returns {returns}: the model is a regressor, which returns a value")
        if positive_class is not None:
            raise ConfigError("--positive-class is for binary classifiers; the model is a regressor")
        return Task()
    labels = tuple(_json_value(c) for c in np.asarray(classes).tolist())
    task = "binary" if len(labels) == 2 else "multiclass"
    returns = returns or RETURNS[task][0]
    if returns not in RETURNS[task]:
        raise ConfigError(f"--returns {returns}: a {task} classifier returns {' or '.join(RETURNS[task])}")
    if task != "binary":
        if positive_class is not None:
            raise ConfigError(f"--positive-class is for binary classifiers; this one has {len(labels)} classes")
        return Task(task=task, classes=labels, returns=returns)
    positive = labels[1]
    if positive_class is not None:
        matches = [c for c in labels if str(c) == positive_class]
        if not matches:
            raise ConfigError(f"--positive-class must be one of the model's classes {list(labels)}")
        positive = matches[0]
    return Task(task=task, classes=labels, positive_class=positive, returns=returns)


def _json_value(value: Any) -> Any:
    """A class label as a JSON value; scikit-learn's classes are numbers, booleans or text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    raise ModelLoadError(f"the model's classes must be numbers or text, not {type(value).__name__}")


def declaration_for(
    request: ImportRequest, model: ModelFeatures, signature_types: dict[str, str] | None
) -> Declaration:
    """The preset asked for (with any --derive features added or replaced), or the one the model implies."""
    derived = [parse_derive(text) for text in request.derive]
    if request.features is not None:
        base = preset(request.features)
        declared = {spec.name for spec in base.inputs}
        for feature in derived:
            unknown = [name for name in feature.inputs if name not in declared]
            if unknown:
                raise ConfigError(
                    f"--derive {feature.name} reads {unknown}, which preset {request.features!r} does not declare"
                )
        kept = tuple(f for f in base.features if f.name not in {d.name for d in derived})
        return Declaration(inputs=base.inputs, features=(*kept, *derived))
    if request.sample is not None:
        return infer_declaration(
            model, derived=derived, column_types=sample_types(request.sample), types_from=f"--sample {request.sample}"
        )
    if signature_types and model.vectorizer is None:
        # A signature names the columns a frame model takes; in front of a DictVectorizer it would describe
        # the features (PU_DO), not the inputs they come from, so it types nothing there.
        return infer_declaration(
            model, derived=derived, column_types=signature_types, types_from="the MLflow signature"
        )
    return infer_declaration(model, derived=derived)


def import_source(
    request: ImportRequest, destination: str | None = None, key: bytes | None = None
) -> tuple[Manifest, str]:
    """Turn SOURCE into a bundle at `destination` (default models/NAME/VERSION), signed with `key` if given."""
    id_field = request.id_field or (DEFAULT_ID_FIELD if request.features else GENERIC_ID_FIELD)
    resolved = resolve_source(request.source)
    name = request.name or resolved.name
    version = request.version or resolved.version
    if not name or not version:
        missing = " and ".join(flag for flag, value in (("--name", name), ("--version", version)) if not value)
        raise ConfigError(f"{missing} required: only a registered model (models:/NAME/VERSION or @ALIAS) names itself")
    loaded, written_with = load_artifact(
        resolved.data, resolved.serialization, resolved.skops_trusted_types, resolved.where, resolved.sklearn_version
    )
    serialization = request.serialization or resolved.serialization
    artifact, trusted = resolved.data, resolved.skops_trusted_types
    if serialization != resolved.serialization:
        artifact = dump_artifact(loaded, serialization)
        # A converted file trusts exactly the types skops reports for it: the ones this model is made of.
        trusted = tuple(skops_types_of(artifact)) if serialization == "skops" else ()
    fmt = detect_format(loaded)
    declaration = declaration_for(request, model_features_of(loaded, fmt), resolved.signature_types)
    manifest = build_manifest(
        artifact,
        loaded,
        name=name,
        version=version,
        features=declaration,
        id_field=id_field,
        output=request.output,
        task=task_of(loaded, request.returns, request.positive_class),
        named_preset=request.features,
    )
    # The preset is recorded only when the declaration is the preset's (possibly cut to what the model reads).
    only_preset = request.features if request.features and not request.derive else None
    manifest = replace(
        manifest,
        artifact=ARTIFACT_NAMES[serialization],
        serialization=serialization,
        skops_trusted_types=trusted,
        id_required=request.require_id,
        preset=only_preset,
        source=_source_record(resolved.source),
        sklearn_version=written_with,
    )
    destination = destination or storage.join("models", name, version)
    reference = None
    if request.reference is not None:
        vectorizer, model = split_model(loaded, fmt, resolved.where)
        bundle = ModelBundle(manifest=manifest, model=model, vectorizer=vectorizer, uri=destination)
        reference = profile_sample(bundle, request.reference)
    if reference is not None:
        manifest = _write_reference(destination, manifest, reference)
    storage.write_bytes(storage.join(destination, manifest.artifact), artifact)
    return _write_manifest(destination, manifest, key), destination


def _source_record(source: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the model came from, with every key present (null when the source does not say)."""
    if source is None:
        return None
    return {key: source.get(key) for key in ("uri", "run_id", "registered_version", "alias")}


def import_model(
    pickle_path: str,
    destination: str,
    *,
    name: str,
    version: str,
    features: str,
    id_field: str = DEFAULT_ID_FIELD,
    output: str = DEFAULT_OUTPUT,
    key: bytes | None = None,
) -> Manifest:
    """Turn an existing model.bin into a bundle fed by a preset (the user vouches for the pickle)."""
    request = ImportRequest(
        source=pickle_path, name=name, version=version, features=features, id_field=id_field, output=output
    )
    return import_source(request, destination, key)[0]
