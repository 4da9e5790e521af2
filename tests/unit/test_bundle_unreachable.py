"""A bundle that cannot be reached right now (network, S3 throttling or a 5xx) is BundleUnreachable, which a
retry may fix; a bundle that is missing, unreadable for good or untrusted stays ModelLoadError, which none does."""

from __future__ import annotations

import errno
import shutil

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from scoring.errors import BundleUnreachable, ModelLoadError
from scoring.model import bundle as bundle_module
from scoring.model.bundle import load_bundle, read_manifest
from scoring.model.trust import BundleTrust

S3_BUNDLE = "s3://models/rides/1"
S3_TRUST = BundleTrust(roots=("s3://models",))


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


TRANSIENT = [
    EndpointConnectionError(endpoint_url="https://s3.eu-west-1.amazonaws.com"),
    ConnectionClosedError(endpoint_url="https://s3.eu-west-1.amazonaws.com"),
    ReadTimeoutError(endpoint_url="https://s3.eu-west-1.amazonaws.com"),
    client_error("SlowDown", 503),
    client_error("ThrottlingException", 400),
    client_error("InternalError", 500),
    client_error("SomethingNew", 502),  # any 5xx: the service failed, not the request
    ConnectionResetError(errno.ECONNRESET, "connection reset by peer"),
    TimeoutError(errno.ETIMEDOUT, "timed out"),
    OSError(errno.EIO, "input/output error"),
]
LASTING = [
    client_error("NoSuchKey", 404),
    client_error("AccessDenied", 403),
    client_error("NoSuchBucket", 404),
    PermissionError(errno.EACCES, "permission denied"),
    IsADirectoryError(errno.EISDIR, "is a directory"),
    ValueError("something no retry changes"),
]


def failing_read(error: BaseException):
    def read_bytes(uri: str) -> bytes:
        raise error

    return read_bytes


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "errno", "")))
@pytest.mark.parametrize("read", [load_bundle, read_manifest])
def test_a_read_a_retry_may_fix_is_bundle_unreachable_not_a_model_load_error(monkeypatch, error, read):
    # Given S3 (or the disk) failing the way a network, a throttled bucket or a busy service does
    monkeypatch.setattr(bundle_module.storage, "read_bytes", failing_read(error))
    # When the bundle is read, Then the error says it could not be reached now, naming the file, and is no
    # ModelLoadError (which every adapter treats as final)
    with pytest.raises(BundleUnreachable, match=r"cannot reach s3://models/rides/1/model\.json") as raised:
        read(S3_BUNDLE, S3_TRUST)
    assert not isinstance(raised.value, ModelLoadError)
    assert raised.value.__cause__ is error


@pytest.mark.parametrize("error", LASTING, ids=lambda e: type(e).__name__)
def test_a_missing_forbidden_or_otherwise_bad_read_stays_a_model_load_error(monkeypatch, error):
    # Given S3 (or the disk) answering that the file is not there, not readable by us, or not a file
    monkeypatch.setattr(bundle_module.storage, "read_bytes", failing_read(error))
    # When the bundle is loaded, Then it is ModelLoadError ("cannot read"), which no retry fixes
    with pytest.raises(ModelLoadError, match=r"cannot read s3://models/rides/1/model\.json"):
        load_bundle(S3_BUNDLE, S3_TRUST)


def test_a_local_artifact_that_fails_with_an_io_error_is_unreachable(monkeypatch, demo_bundle_dir, tmp_path):
    # Given a local bundle whose manifest reads, but whose artifact read fails with EIO (a flaky network disk)
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(demo_bundle_dir, bundle_dir)
    real_read = bundle_module.read_without_links

    def flaky(path: str) -> bytes:
        if path.endswith("model.bin"):
            raise OSError(errno.EIO, "input/output error")
        return real_read(path)

    monkeypatch.setattr(bundle_module, "read_without_links", flaky)
    # When it is loaded, Then the artifact is unreachable for now (retry), not a broken bundle
    with pytest.raises(BundleUnreachable, match="model.bin"):
        load_bundle(str(bundle_dir), BundleTrust.of_bundle(str(bundle_dir)))


def test_a_local_bundle_that_is_not_there_is_a_model_load_error(tmp_path):
    # Given a trusted folder with no bundle in it, When it is loaded, Then ModelLoadError says what to run
    with pytest.raises(ModelLoadError, match="no model bundle at"):
        load_bundle(str(tmp_path), BundleTrust.of_bundle(str(tmp_path)))
