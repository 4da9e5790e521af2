"""Model bundles: a directory (local or s3://) holding `model.bin` and its `model.json` manifest; reading and loading them.

A pickle runs code when it is loaded. So a bundle is read only from a trusted root, with its
signature checked when a bundle key is set (scoring.model.trust), and the artifact's sha256 is checked
against the manifest BEFORE unpickling, and a mismatch is refused. A pickle written by an older scikit-learn still
loads: the version difference is logged as a warning, not raised. Making bundles: scoring.model.importing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline

from scoring import storage
from scoring.errors import BundleIntegrityError, ModelLoadError, UnknownRecipe
from scoring.model.features import get_recipe
from scoring.model.schema import FieldSpec, InputSchema
from scoring.model.trust import SIGNATURE_KEY, BundleTrust, read_without_links, require_plain_file_name

log = logging.getLogger(__name__)

ARTIFACT_NAME = "model.bin"
MANIFEST_NAME = "model.json"
FORMATS = ("dv_tuple", "pipeline")
# What a manifest that does not say otherwise names each record by, and what it calls the prediction.
DEFAULT_ID_FIELD = "ride_id"
DEFAULT_OUTPUT = "duration"


@dataclass(frozen=True)
class Manifest:
    """What `model.json` says about the artifact beside it."""

    name: str
    version: str
    sha256: str
    format: str
    features: str
    inputs: tuple[FieldSpec, ...]
    id_field: str = DEFAULT_ID_FIELD
    output: str = DEFAULT_OUTPUT
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
        id_field = str(raw.get("id_field", DEFAULT_ID_FIELD))
        return cls(
            name=str(raw["name"]),
            version=str(raw["version"]),
            sha256=str(raw["sha256"]),
            format=str(raw["format"]),
            features=str(raw["features"]),
            inputs=_inputs_of(raw["inputs"], id_field, where),
            id_field=id_field,
            output=str(raw.get("output", DEFAULT_OUTPUT)),
            artifact=require_plain_file_name(raw.get("artifact", ARTIFACT_NAME), where),
            sklearn_version=str(raw.get("sklearn_version", "unknown")),
            created_at=str(raw.get("created_at", "")),
            signature=raw.get(SIGNATURE_KEY) if isinstance(raw.get(SIGNATURE_KEY), str) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest as `model.json` holds it (the signature only when there is one)."""
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
        """The validator of this model's inputs and id."""
        return InputSchema(fields=self.manifest.inputs, id_field=self.manifest.id_field)


def sha256_of(data: bytes) -> str:
    """The hex sha256 of an artifact's bytes, as the manifest records it."""
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
    loaded, _ = unpickle_artifact(data, artifact_uri, manifest.sklearn_version)
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


def unpickle_artifact(data: bytes, where: str, written_with: str) -> tuple[Any, str]:
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


def feature_vectorizer(vectorizer: DictVectorizer | None, model: Any) -> tuple[DictVectorizer | None, Any]:
    """The DictVectorizer that turns features into the model's matrix, and what predicts after it.

    The tuple's own vectorizer; else the first step of a Pipeline that starts with one (the rest of the
    pipeline predicts); else none, and the model is given the feature frame itself (e.g. a ColumnTransformer).
    """
    if vectorizer is not None:
        return vectorizer, model
    if isinstance(model, Pipeline) and isinstance(model.steps[0][1], DictVectorizer):
        return model.steps[0][1], model[1:]
    return None, model
