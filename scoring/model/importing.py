"""Making bundles: a manifest for an existing model, checked against its recipe, written beside the artifact.

`scoring model import` and the demo's training use this; loading a bundle is scoring.model.bundle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import sklearn
from sklearn.feature_extraction import DictVectorizer

from scoring import storage
from scoring.errors import ModelLoadError
from scoring.model.bundle import (
    DEFAULT_ID_FIELD,
    DEFAULT_OUTPUT,
    MANIFEST_NAME,
    Manifest,
    detect_format,
    feature_vectorizer,
    sha256_of,
    split_model,
    unpickle_artifact,
)
from scoring.model.features import get_recipe
from scoring.model.trust import sign_manifest

log = logging.getLogger(__name__)


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
    id_field: str = DEFAULT_ID_FIELD,
    output: str = DEFAULT_OUTPUT,
) -> Manifest:
    """A manifest for an existing model, checked against the recipe it will be fed by."""
    recipe = get_recipe(features)
    fmt = detect_format(loaded)
    vectorizer, _ = feature_vectorizer(*split_model(loaded, fmt, "the model"))
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
    id_field: str = DEFAULT_ID_FIELD,
    output: str = DEFAULT_OUTPUT,
    key: bytes | None = None,
) -> Manifest:
    """Turn an existing model.bin into a bundle at `destination`, signed with `key` if given; the user vouches for the pickle."""
    artifact = storage.read_bytes(pickle_path)
    loaded, written_with = unpickle_artifact(artifact, pickle_path, sklearn.__version__)
    manifest = build_manifest(
        artifact, loaded, name=name, version=version, features=features, id_field=id_field, output=output
    )
    manifest = replace(manifest, sklearn_version=written_with)
    write_bundle(destination, artifact, manifest, key)
    return manifest
