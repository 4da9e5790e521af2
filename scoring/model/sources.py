"""Where `scoring model import` finds a model: a pickle file, a local MLflow model folder, or an MLflow URI.

A SOURCE is one of
- a file (local or s3://): a pickled (DictVectorizer, estimator) tuple or Pipeline;
- a local MLflow model folder (it holds `MLmodel`), scikit-learn flavor, in pickle, cloudpickle or skops;
- `runs:/<run id>/<path>`, `models:/<name>/<version>`, `models:/<name>@<alias>` (or any other `models:/`
  URI MLflow resolves), downloaded with MLflow's client from `MLFLOW_TRACKING_URI` into a temporary folder.

Only this module imports MLflow, and only while importing a model: serving reads bundles, never MLflow.
The artifact's bytes are returned as they are (skops stays skops, with exactly the trusted types its
MLmodel lists); loading them is scoring.model.artifacts.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scoring import storage
from scoring.errors import ModelLoadError
from scoring.model.trust import read_without_links, require_plain_file_name

MLMODEL_NAME = "MLmodel"
MLFLOW_URI_SCHEMES = ("runs:/", "models:/")
# MLflow's serialization formats and the bundle serialization each becomes: cloudpickle writes a pickle stream.
SERIALIZATIONS = {"pickle": "pickle", "cloudpickle": "pickle", "skops": "skops"}
# MLflow signature column types and the input type each declares; others (boolean, datetime, binary) are not inferred.
SIGNATURE_TYPES = {"long": "integer", "integer": "integer", "double": "number", "float": "number", "string": "string"}
_REGISTERED_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?$")
_REGISTERED_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)/?$")


@dataclass(frozen=True)
class ResolvedSource:
    """A model's artifact bytes and what its source says about them."""

    data: bytes
    where: str  # how error messages name the artifact
    serialization: str = "pickle"
    skops_trusted_types: tuple[str, ...] = ()
    sklearn_version: str = "unknown"  # the version that wrote it, when the source says
    # Input column types from an MLflow signature (name -> integer | number | string), when it has one.
    signature_types: dict[str, str] | None = None
    # Registered model name and version: the bundle's defaults when the source is a registered model.
    name: str | None = None
    version: str | None = None
    source: dict[str, Any] | None = field(default=None)


def resolve_source(source: str) -> ResolvedSource:
    """The artifact and facts behind SOURCE, or ModelLoadError naming what is wrong with it (one line)."""
    if source.startswith(MLFLOW_URI_SCHEMES):
        return _from_mlflow_uri(source)
    if not storage.is_s3(source) and os.path.isdir(source):
        return read_mlflow_dir(source, {"uri": os.path.abspath(source)})
    try:
        data = storage.read_bytes(source)
    except FileNotFoundError:
        raise ModelLoadError(f"no model at {source}: no such file or folder") from None
    except Exception as exc:
        raise ModelLoadError(f"cannot read {source}: {type(exc).__name__}") from None
    if data.startswith(b"PK\x03\x04"):
        # A skops file is a zip; alone it has no list of the types to trust, and trusting all is not an option.
        raise ModelLoadError(
            f"{source} is a skops file without its MLflow model folder: import the folder, whose MLmodel lists "
            "the types to trust, or a pickle"
        )
    return ResolvedSource(data=data, where=source, source={"uri": source})


def read_mlflow_dir(directory: str, source: dict[str, Any], shown: str | None = None) -> ResolvedSource:
    """The scikit-learn model an MLflow model folder holds, as its MLmodel describes it; `shown` names it in errors."""
    shown = shown or directory
    mlmodel_path = os.path.join(directory, MLMODEL_NAME)
    if not os.path.isfile(mlmodel_path):
        raise ModelLoadError(f"{shown} is a folder without an {MLMODEL_NAME} file: not an MLflow model")
    mlmodel = _read_mlmodel(mlmodel_path, f"{shown}/{MLMODEL_NAME}")
    mlmodel_path = f"{shown}/{MLMODEL_NAME}"
    flavors = mlmodel.get("flavors")
    sk = flavors.get("sklearn") if isinstance(flavors, dict) else None
    if not isinstance(sk, dict):
        known = sorted(flavors) if isinstance(flavors, dict) else []
        raise ModelLoadError(
            f"{mlmodel_path} has no sklearn flavor (flavors: {', '.join(map(str, known)) or 'none'}); "
            "only scikit-learn models can be imported"
        )
    fmt = sk.get("serialization_format", "cloudpickle")
    if fmt not in SERIALIZATIONS:
        raise ModelLoadError(
            f"{mlmodel_path}: serialization_format {str(fmt)[:40]!r} is not one of {', '.join(SERIALIZATIONS)}"
        )
    # The artifact must be a file in this folder: '../../x' or an absolute path would read outside it.
    artifact_name = require_plain_file_name(sk.get("pickled_model"), f"{mlmodel_path} (pickled_model)")
    artifact_path = os.path.join(directory, artifact_name)
    try:
        data = read_without_links(artifact_path)
    except FileNotFoundError:
        raise ModelLoadError(f"{mlmodel_path} names {artifact_name!r}, which is not in {shown}") from None
    except ModelLoadError:
        raise
    except OSError as exc:
        raise ModelLoadError(f"cannot read {shown}/{artifact_name}: {type(exc).__name__}") from None
    trusted = sk.get("skops_trusted_types") or []
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise ModelLoadError(f"{mlmodel_path}: skops_trusted_types must be a list of type names")
    run_id = mlmodel.get("run_id")
    return ResolvedSource(
        data=data,
        where=f"{shown}/{artifact_name}",
        serialization=SERIALIZATIONS[fmt],
        skops_trusted_types=tuple(trusted) if SERIALIZATIONS[fmt] == "skops" else (),
        sklearn_version=str(sk.get("sklearn_version") or "unknown"),
        signature_types=signature_types(mlmodel.get("signature"), mlmodel_path),
        source={"run_id": run_id if isinstance(run_id, str) else None, **source},
    )


def _read_mlmodel(path: str, shown: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the mlflow extra
        raise ModelLoadError("reading an MLflow model needs PyYAML: install the mlflow extra") from None
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        raise ModelLoadError(f"{shown} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{shown} is not a YAML mapping")
    return raw


def signature_types(signature: object, where: str) -> dict[str, str] | None:
    """Input name -> input type from an MLmodel signature's named columns; None without a usable one."""
    if not isinstance(signature, Mapping) or not signature.get("inputs"):
        return None
    try:
        columns = json.loads(signature["inputs"]) if isinstance(signature["inputs"], str) else signature["inputs"]
    except (json.JSONDecodeError, RecursionError):
        raise ModelLoadError(f"{where}: the signature's inputs are not valid JSON") from None
    if not isinstance(columns, list) or not all(
        isinstance(c, Mapping) and isinstance(c.get("name"), str) for c in columns
    ):
        return None  # a tensor signature: no column names to declare
    return {c["name"]: SIGNATURE_TYPES[c.get("type")] for c in columns if c.get("type") in SIGNATURE_TYPES}


def _from_mlflow_uri(uri: str) -> ResolvedSource:
    """Download the model behind a runs:/ or models:/ URI and read it; registry facts go to `source`."""
    try:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ModelLoadError(f"{uri.split(':', 1)[0]}:/ sources need MLflow: install the mlflow extra") from None
    source: dict[str, Any] = {"uri": uri}
    name = version = None
    try:
        client = MlflowClient()
        if match := _REGISTERED_ALIAS.match(uri):
            name, alias = match["name"], match["alias"]
            found = client.get_model_version_by_alias(name, alias)
            version = str(found.version)
            source.update(registered_version=version, alias=alias, run_id=found.run_id)
        elif match := _REGISTERED_VERSION.match(uri):
            name, version = match["name"], match["version"]
            found = client.get_model_version(name, version)
            source.update(registered_version=version, run_id=found.run_id)
        with tempfile.TemporaryDirectory(prefix="scoring-import-") as folder:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
            if not os.path.isdir(local):
                raise ModelLoadError(f"{uri} is a single file, not an MLflow model folder")
            resolved = read_mlflow_dir(local, {}, shown=uri)
    except MlflowException as exc:
        raise ModelLoadError(f"cannot resolve {uri}: {_first_line(exc.message)}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot download {uri}: {type(exc).__name__}: {_first_line(str(exc))}") from None
    source = {**source, "run_id": source.get("run_id") or (resolved.source or {}).get("run_id")}
    # The downloaded folder's facts, named by the URI and the registry's name, version and source.
    return replace(resolved, where=uri, name=name, version=version, source=source)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]
