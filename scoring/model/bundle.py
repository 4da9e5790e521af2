"""Model bundles: a directory (local or s3://) holding `model.bin` and its `model.json` manifest; reading and loading them.

A pickle runs code when it is loaded. So a bundle is read only from a trusted root, with its
signature checked when a bundle key is set (scoring.model.trust), and the artifact's sha256 is checked
against the manifest BEFORE loading, and a mismatch is refused. A skops artifact loads only the types its
manifest trusts (scoring.model.artifacts). A pickle written by an older scikit-learn that still loads is
logged as a warning. A bundle may carry a reference profile (`reference.json`, what its training inputs and
predictions looked like, for monitoring): the manifest names it with its sha256, so the signature covers it,
and a profile that does not match is refused like an artifact. The manifest's fields: scoring.model.manifest;
making bundles: scoring.model.importing.
"""

from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline

from scoring import storage
from scoring.errors import BundleIntegrityError, BundleUnreachable, ModelLoadError
from scoring.model.artifacts import load_artifact
from scoring.model.manifest import MANIFEST_NAME, Manifest
from scoring.model.reference import ReferenceProfile
from scoring.model.schema import InputSchema
from scoring.model.trust import BundleTrust, read_without_links
from scoring.model.trust import shown_uri as shown

# S3's answers for "too many requests now" and its own failures (some come with a 400 status, not a 5xx).
TRANSIENT_S3_CODES = frozenset(
    {
        "InternalError",
        "RequestLimitExceeded",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
# The OS errors a later read may not meet: the network or a network file system failing or timing out, a busy
# or stale file, a full kernel buffer, an interrupted call. Any other errno (a name too long, a bad argument, no
# such device, a read-only file system, a file not ours to read...) is met again on every attempt. ENOMEM is not
# here: the same bundle read in the same container meets the same memory limit, so retrying only delays the error.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.EWOULDBLOCK,
        errno.EINTR,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EPIPE,
        errno.ESTALE,
        errno.EBUSY,
        errno.ENOBUFS,
    }
)
# The same failures as classes, since a socket timeout or a dropped connection may come with no errno at all.
TRANSIENT_OS_ERRORS = (TimeoutError, ConnectionError, InterruptedError, BlockingIOError)

__all__ = [
    "ModelBundle",
    "detect_format",
    "feature_vectorizer",
    "load_bundle",
    "read_manifest",
    "read_reference",
    "reference_bytes",
    "sha256_of",
    "split_model",
]


@dataclass(frozen=True)
class ModelBundle:
    """A loaded, verified model: manifest, optional DictVectorizer, and the estimator or pipeline."""

    manifest: Manifest
    model: Any  # the estimator (dv_tuple) or the whole Pipeline (pipeline)
    vectorizer: DictVectorizer | None
    uri: str
    # What the training inputs and predictions looked like (for monitoring); None when the bundle has no profile.
    reference: ReferenceProfile | None = None

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
    except FileNotFoundError as exc:
        raise ModelLoadError(f"cannot read {shown(artifact_uri)}: {type(exc).__name__}") from exc
    actual = sha256_of(data)
    if actual != manifest.sha256:
        raise BundleIntegrityError(
            f"{shown(artifact_uri)} has sha256 {actual} but {MANIFEST_NAME} expects {manifest.sha256}; refusing to unpickle it"
        )
    loaded, _ = load_artifact(
        data, manifest.serialization, manifest.skops_trusted_types, artifact_uri, manifest.sklearn_version
    )
    vectorizer, model = split_model(loaded, manifest.format, artifact_uri)
    reference = read_reference(location, manifest)
    return ModelBundle(manifest=manifest, model=model, vectorizer=vectorizer, uri=uri, reference=reference)


def reference_bytes(profile: ReferenceProfile) -> bytes:
    """The profile as `reference.json` holds it: compact JSON in the profile's stable key order."""
    return json.dumps(profile.to_json(), separators=(",", ":"), allow_nan=False).encode() + b"\n"


def read_reference(location: str, manifest: Manifest) -> ReferenceProfile | None:
    """The bundle's reference profile, verified against the manifest's sha256; None when it names none."""
    if manifest.reference is None:
        return None
    uri = storage.join(location, manifest.reference["file"])
    try:
        data = _read(uri)
    except FileNotFoundError:
        raise BundleIntegrityError(
            f"{MANIFEST_NAME} names the reference profile {shown(uri)}, which does not exist"
        ) from None
    actual = sha256_of(data)
    if actual != manifest.reference["sha256"]:
        raise BundleIntegrityError(
            f"{shown(uri)} has sha256 {actual} but {MANIFEST_NAME} expects {manifest.reference['sha256']}; refusing it"
        )
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ModelLoadError(f"{shown(uri)} is not valid JSON") from None
    profile = ReferenceProfile.from_json(raw)
    if profile.output != manifest.output:
        raise ModelLoadError(
            f"{shown(uri)} profiles the output {profile.output!r} but the manifest's is {manifest.output!r}"
        )
    return profile


def _read(uri: str) -> bytes:
    """A bundle file's bytes: from S3, or from the resolved local folder without following a final link.

    A missing file raises FileNotFoundError (each caller says what its absence means). A failure a later
    attempt may not meet (the network, S3 throttling or a 5xx, a failing disk) is BundleUnreachable, so a
    task retries it; any other (an S3 key that is not there, permissions, a folder) is one ModelLoadError
    naming the file, since no retry changes it.
    """
    try:
        return storage.read_bytes(uri) if storage.is_s3(uri) else read_without_links(uri)
    except (FileNotFoundError, ModelLoadError):
        raise
    except Exception as exc:
        if _is_transient(exc):
            raise BundleUnreachable(
                f"cannot reach {shown(uri)} now ({type(exc).__name__}); a later attempt may succeed"
            ) from exc
        raise ModelLoadError(f"cannot read {shown(uri)}: {type(exc).__name__}") from exc


def _is_transient(exc: BaseException) -> bool:
    """Whether reading again may succeed: a network or I/O errno, a timeout, S3 throttling or a 5xx."""
    # No early "False" for other OSErrors: botocore's timeouts are OSErrors too (through requests), with no errno.
    if isinstance(exc, TRANSIENT_OS_ERRORS) or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS):
        return True
    from botocore.exceptions import ClientError, CredentialRetrievalError, HTTPClientError, IncompleteReadError
    from botocore.exceptions import ConnectionError as EndpointError

    # CredentialRetrievalError: the container's credentials endpoint failed or timed out before S3 was asked
    # (a misconfigured credential_process raises it too; that one fails again after the task's few retries).
    if isinstance(exc, (EndpointError, HTTPClientError, IncompleteReadError, CredentialRetrievalError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return exc.response.get("Error", {}).get("Code") in TRANSIENT_S3_CODES or (
            isinstance(status, int) and status >= 500
        )
    return False


def _manifest_at(location: str, uri: str, trust: BundleTrust) -> Manifest:
    manifest_uri = storage.join(location, MANIFEST_NAME)
    try:
        manifest_raw = json.loads(_read(manifest_uri))
    except FileNotFoundError:
        raise ModelLoadError(
            f"no model bundle at {shown(uri)}: {MANIFEST_NAME} does not exist (run `scoring demo` or `scoring model import`)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ModelLoadError(f"{shown(manifest_uri)} is not valid JSON") from None
    if isinstance(manifest_raw, dict):
        trust.check_signature(manifest_raw, manifest_uri)
    return Manifest.from_json(manifest_raw, manifest_uri)


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
