"""Model bundles: a directory (local or s3://) holding `model.bin` and its `model.json` manifest.

A pickle runs code when it is loaded. So a bundle is read only from a trusted root, with its
signature checked when a bundle key is set (scoring.model.trust), and the artifact's sha256 is checked
against the manifest BEFORE unpickling, and a mismatch is refused. A pickle written by an older scikit-learn still
loads: the version difference is logged as a warning, not raised.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline

from scoring import storage
from scoring.errors import BundleIntegrityError, ModelLoadError, UnknownRecipe
from scoring.model.features import get_recipe
from scoring.model.schema import FieldSpec, InputSchema
from scoring.model.trust import SIGNATURE_KEY, BundleTrust, read_without_links, require_plain_file_name, sign_manifest

log = logging.getLogger(__name__)

ARTIFACT_NAME = "model.bin"
MANIFEST_NAME = "model.json"
FORMATS = ("dv_tuple", "pipeline")


@dataclass(frozen=True)
class Manifest:
    """What `model.json` says about the artifact beside it."""

    name: str
    version: str
    sha256: str
    format: str
    features: str
    inputs: tuple[FieldSpec, ...]
    id_field: str = "ride_id"
    output: str = "duration"
    artifact: str = ARTIFACT_NAME
    sklearn_version: str = sklearn.__version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    # HMAC of the rest of the manifest, made at import when SCORING_BUNDLE_KEY is set (scoring.model.trust).
    signature: str | None = None

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
        id_field = str(raw.get("id_field", "ride_id"))
        return cls(
            name=str(raw["name"]),
            version=str(raw["version"]),
            sha256=str(raw["sha256"]),
            format=str(raw["format"]),
            features=str(raw["features"]),
            inputs=_inputs_of(raw["inputs"], id_field, where),
            id_field=id_field,
            output=str(raw.get("output", "duration")),
            artifact=require_plain_file_name(raw.get("artifact", ARTIFACT_NAME), where),
            sklearn_version=str(raw.get("sklearn_version", "unknown")),
            created_at=str(raw.get("created_at", "")),
            signature=raw.get(SIGNATURE_KEY) if isinstance(raw.get(SIGNATURE_KEY), str) else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "format": self.format,
            "features": self.features,
            "inputs": [f.to_dict() for f in self.inputs],
            "id_field": self.id_field,
            "output": self.output,
            "sklearn_version": self.sklearn_version,
            "created_at": self.created_at,
            **({SIGNATURE_KEY: self.signature} if self.signature else {}),
        }


def _inputs_of(raw: object, id_field: str, where: str) -> tuple[FieldSpec, ...]:
    """The declared inputs: a non-empty list of objects with distinct names, none of them the id field."""
    if not isinstance(raw, list) or not raw or not all(isinstance(entry, dict) for entry in raw):
        raise ModelLoadError(f"{where}: 'inputs' must be a non-empty list of objects")
    try:
        inputs = tuple(FieldSpec.from_dict(entry) for entry in raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{where}: bad inputs entry: {exc}") from exc
    names = [spec.name for spec in inputs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ModelLoadError(f"{where}: inputs {repeated} are declared more than once")
    if id_field in names:
        raise ModelLoadError(f"{where}: the id field '{id_field}' is also declared as an input")
    return inputs


@dataclass(frozen=True)
class ModelBundle:
    """A loaded, verified model: manifest, optional DictVectorizer, and the estimator or pipeline."""

    manifest: Manifest
    model: Any  # the estimator (dv_tuple) or the whole Pipeline (pipeline)
    vectorizer: DictVectorizer | None
    uri: str

    @property
    def schema(self) -> InputSchema:
        return InputSchema(fields=self.manifest.inputs, id_field=self.manifest.id_field)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(uri: str, trust: BundleTrust) -> Manifest:
    """The bundle's manifest alone (no unpickling), from a trusted place, checked for shape and a known recipe."""
    return _manifest_at(trust.locate(uri), uri, trust)


def load_bundle(uri: str, trust: BundleTrust) -> ModelBundle:
    """Read, verify and unpickle the bundle at `uri` (a directory or s3:// prefix below a trusted root)."""
    location = trust.locate(uri)
    manifest = _manifest_at(location, uri, trust)
    artifact_uri = storage.join(location, manifest.artifact)
    try:
        data = _read(artifact_uri)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read {artifact_uri}: {type(exc).__name__}") from exc
    actual = sha256_of(data)
    if actual != manifest.sha256:
        raise BundleIntegrityError(
            f"{artifact_uri} has sha256 {actual} but {MANIFEST_NAME} expects {manifest.sha256}; refusing to unpickle it"
        )
    loaded, _ = _unpickle(data, artifact_uri, manifest.sklearn_version)
    vectorizer, model = split_model(loaded, manifest.format, artifact_uri)
    return ModelBundle(manifest=manifest, model=model, vectorizer=vectorizer, uri=uri)


def _read(uri: str) -> bytes:
    """A bundle file's bytes: from S3, or from the resolved local folder without following a final link."""
    return storage.read_bytes(uri) if storage.is_s3(uri) else read_without_links(uri)


def _manifest_at(location: str, uri: str, trust: BundleTrust) -> Manifest:
    manifest_uri = storage.join(location, MANIFEST_NAME)
    try:
        manifest_raw = json.loads(_read(manifest_uri))
    except FileNotFoundError:
        raise ModelLoadError(
            f"no model bundle at {uri}: {manifest_uri} does not exist (run `scoring demo` or `scoring model import`)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ModelLoadError(f"{manifest_uri} is not valid JSON") from None
    except ModelLoadError:
        raise
    except Exception as exc:  # boto errors, permissions: all mean the same to the caller
        raise ModelLoadError(f"cannot read {manifest_uri}: {type(exc).__name__}") from exc
    if isinstance(manifest_raw, dict):
        trust.check_signature(manifest_raw, manifest_uri)
    manifest = Manifest.from_json(manifest_raw, manifest_uri)
    try:
        get_recipe(manifest.features)
    except UnknownRecipe as exc:
        raise ModelLoadError(f"{manifest_uri}: {exc}") from exc
    return manifest


def _unpickle(data: bytes, where: str, written_with: str) -> tuple[Any, str]:
    """The unpickled object and the scikit-learn version that wrote it (as far as can be told)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = pickle.load(io.BytesIO(data))
        except Exception as exc:
            raise ModelLoadError(f"cannot unpickle {where}: {type(exc).__name__}: {exc}") from exc
    # scikit-learn says which version pickled an estimator when it differs from the running one.
    originals = {str(v) for w in caught if (v := getattr(w.message, "original_sklearn_version", None))}
    original = sorted(originals)[0] if originals else written_with
    if original not in ("unknown", sklearn.__version__):
        log.warning(
            "%s was written by scikit-learn %s and is loaded by %s; predictions may differ slightly",
            where,
            original,
            sklearn.__version__,
        )
    return loaded, original


def detect_format(loaded: Any) -> str:
    """'dv_tuple' for a (DictVectorizer, estimator) pair, 'pipeline' for a fitted Pipeline."""
    if isinstance(loaded, (tuple, list)) and len(loaded) == 2 and isinstance(loaded[0], DictVectorizer):
        return "dv_tuple"
    if isinstance(loaded, Pipeline):
        return "pipeline"
    raise ModelLoadError(
        f"expected a (DictVectorizer, estimator) tuple or a fitted sklearn Pipeline, got {type(loaded).__name__}"
    )


def split_model(loaded: Any, fmt: str, where: str) -> tuple[DictVectorizer | None, Any]:
    """The vectorizer (if the model has one up front) and what predicts after it."""
    try:
        actual = detect_format(loaded)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{where}: {exc}") from exc
    if actual != fmt:
        raise ModelLoadError(f"{where}: manifest says format {fmt!r} but the artifact is a {actual!r}")
    if fmt == "dv_tuple":
        dv, model = loaded
        return dv, model
    return None, loaded


def write_bundle(directory: str, artifact: bytes, manifest: Manifest, key: bytes | None = None) -> str:
    """Write artifact and manifest into `directory` (local or s3://), signed when a key is given."""
    if key is not None:
        manifest = replace(manifest, signature=sign_manifest(replace(manifest, signature=None).to_json(), key))
    storage.write_bytes(storage.join(directory, manifest.artifact), artifact)
    storage.write_bytes(
        storage.join(directory, MANIFEST_NAME), json.dumps(manifest.to_json(), indent=2).encode() + b"\n"
    )
    return directory


def build_manifest(
    artifact: bytes,
    loaded: Any,
    *,
    name: str,
    version: str,
    features: str,
    id_field: str = "ride_id",
    output: str = "duration",
) -> Manifest:
    """A manifest for an existing model, checked against the recipe it will be fed by."""
    recipe = get_recipe(features)
    fmt = detect_format(loaded)
    vectorizer = loaded[0] if fmt == "dv_tuple" else _leading_vectorizer(loaded)
    if vectorizer is not None:
        _check_vocabulary(vectorizer, recipe.feature_names(), features)
    return Manifest(
        name=name,
        version=str(version),
        sha256=sha256_of(artifact),
        format=fmt,
        features=features,
        inputs=recipe.inputs,
        id_field=id_field,
        output=output,
    )


def _leading_vectorizer(pipeline: Pipeline) -> DictVectorizer | None:
    first = pipeline.steps[0][1]
    return first if isinstance(first, DictVectorizer) else None


def _check_vocabulary(dv: DictVectorizer, feature_names: list[str], recipe: str) -> None:
    """Refuse a recipe that never produces features the model was trained on: they would always be zero."""
    known = {key.split(dv.separator, 1)[0] for key in dv.vocabulary_}
    never_produced = sorted(known - set(feature_names))
    if never_produced:
        raise ModelLoadError(
            f"the model's DictVectorizer expects features {never_produced} that recipe {recipe!r} never produces "
            f"(it produces {feature_names}); choose the recipe the model was trained with"
        )
    ignored = [name for name in feature_names if name not in known]
    if ignored:
        log.warning("recipe %r produces %s, which the model's DictVectorizer never saw", recipe, ignored)


def import_model(
    pickle_path: str,
    destination: str,
    *,
    name: str,
    version: str,
    features: str,
    id_field: str = "ride_id",
    output: str = "duration",
    key: bytes | None = None,
) -> Manifest:
    """Turn an existing model.bin into a bundle at `destination`, signed with `key` if given; the user vouches for the pickle."""
    artifact = storage.read_bytes(pickle_path)
    loaded, written_with = _unpickle(artifact, pickle_path, sklearn.__version__)
    manifest = build_manifest(
        artifact, loaded, name=name, version=version, features=features, id_field=id_field, output=output
    )
    manifest = replace(manifest, sklearn_version=written_with)
    write_bundle(destination, artifact, manifest, key)
    return manifest
