"""Making bundles: a manifest for an existing model, checked against what the model knows, written beside the artifact.

`scoring model import` and the demo's training use this, and `scoring model profile` adds a reference
profile to a bundle (scoring.model.profiling makes it); loading a bundle is scoring.model.bundle,
finding the model behind an import SOURCE is scoring.model.sources, inferring its declaration
scoring.model.inference, checking it against the model scoring.model.fitting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from scoring import storage
from scoring.errors import ConfigError
from scoring.model.artifacts import dump_artifact, load_artifact, skops_types_of
from scoring.model.bundle import ModelBundle, detect_format, load_bundle, reference_bytes, sha256_of, split_model
from scoring.model.declaration import Declaration, preset
from scoring.model.fitting import Task, fit_to_model, model_features_of, task_of
from scoring.model.inference import ModelFeatures, infer_declaration, parse_derive, sample_types
from scoring.model.manifest import (
    ARTIFACT_NAME,
    DEFAULT_ID_FIELD,
    DEFAULT_OUTPUT,
    MANIFEST_NAME,
    REFERENCE_NAME,
    Manifest,
    output_clash,
)
from scoring.model.profiling import profile_sample
from scoring.model.reference import ReferenceProfile
from scoring.model.sources import resolve_source
from scoring.model.trust import BundleTrust, sign_manifest

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
