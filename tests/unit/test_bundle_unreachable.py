"""A bundle that cannot be reached right now (network, S3 throttling or a 5xx, a credentials endpoint timing out,
an errno a retry may fix) is BundleUnreachable; a bundle that is missing, unreadable for good or untrusted (any
other errno) stays ModelLoadError, which no retry fixes. Either message shows the URI bounded."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
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
    # the container's or instance's credentials endpoint timing out before S3 is even asked
    CredentialRetrievalError(provider="container-role", error_msg="Read timeout on endpoint URL"),
    TimeoutError("timed out"),  # a socket timeout carries no errno
]
LASTING = [
    client_error("NoSuchKey", 404),
    client_error("AccessDenied", 403),
    client_error("NoSuchBucket", 404),
    PermissionError(errno.EACCES, "permission denied"),
    IsADirectoryError(errno.EISDIR, "is a directory"),
    NoCredentialsError(),
    ValueError("something no retry changes"),
]
# Errnos a later attempt may not meet (the network, a busy or stale file, a host short of buffers) ...
TRANSIENT_ERRNOS = [
    "EIO",
    "EAGAIN",
    "EINTR",
    "ETIMEDOUT",
    "ECONNRESET",
    "ECONNREFUSED",
    "ECONNABORTED",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "ENETDOWN",
    "ENETRESET",
    "EPIPE",
    "ESTALE",
    "EBUSY",
    "ENOBUFS",
]
# ... and errnos every attempt meets again: the name, the path or the file itself is wrong.
LASTING_ERRNOS = [
    "ENAMETOOLONG",
    "ELOOP",
    "EINVAL",
    "ENXIO",
    "ENODEV",
    "EROFS",
    "EACCES",
    "EPERM",
    "ENOTDIR",
    "EISDIR",
    "EBADF",
    "EFBIG",
    "EOVERFLOW",
    "ENOMEM",
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


@pytest.mark.parametrize(
    ("name", "raised", "reads"),
    [(name, BundleUnreachable, "cannot reach") for name in TRANSIENT_ERRNOS]
    + [(name, ModelLoadError, "cannot read") for name in LASTING_ERRNOS],
)
def test_an_os_errors_errno_says_whether_a_retry_may_fix_it(monkeypatch, name, raised, reads):
    # Given a read failing with a bare OSError: an errno a later attempt may not meet (I/O, a connection, a
    # timeout), or one that says the name, the path or the file is wrong
    number = getattr(errno, name)
    monkeypatch.setattr(bundle_module.storage, "read_bytes", failing_read(OSError(number, os.strerror(number))))
    # When the bundle is loaded, Then it could not be reached now (retried), or it fails for good; either names the file
    with pytest.raises(raised, match=rf"{reads} s3://models/rides/1/model\.json"):
        load_bundle(S3_BUNDLE, S3_TRUST)


def test_a_bundle_name_longer_than_the_file_system_allows_fails_at_once(tmp_path):
    # Given a trusted root and a bundle name over NAME_MAX (the trigger form's Model bundle field is free text)
    uri = str(tmp_path / ("a" * 5000))
    # When it is loaded, Then ModelLoadError (ENAMETOOLONG never passes), not a BundleUnreachable retried for nothing
    with pytest.raises(ModelLoadError) as raised:
        load_bundle(uri, BundleTrust(roots=(str(tmp_path),)))
    # and the message shows the name bounded, not all 5000 characters
    assert "a" * 100 in str(raised.value) and "a" * 300 not in str(raised.value)


@pytest.mark.parametrize("error", [OSError(errno.EIO, "input/output error"), OSError(errno.EINVAL, "invalid")])
def test_a_hostile_uri_is_shown_bounded_and_printable(monkeypatch, error):
    # Given a bundle URI under the trusted root with a very long key and a line break (to forge a log line)
    uri = "s3://models/" + "b" * 10_000 + "\nFAKE LOG LINE"
    monkeypatch.setattr(bundle_module.storage, "read_bytes", failing_read(error))
    # When its read fails either way, Then the message holds a bounded, one-line form of the URI
    with pytest.raises((BundleUnreachable, ModelLoadError)) as raised:
        read_manifest(uri, S3_TRUST)
    message = str(raised.value)
    assert message.startswith("cannot ") and "b" * 150 in message
    assert len(message) < 400 and "\n" not in message


def test_a_missing_bundle_under_a_long_path_is_named_bounded(tmp_path):
    # Given a trusted root and a missing bundle whose path is long though each name in it is allowed
    uri = str(tmp_path.joinpath(*["c" * 200] * 20))
    # When it is loaded, Then the "no model bundle" message shows the path bounded, not its 4000 characters twice
    with pytest.raises(ModelLoadError, match="no model bundle at") as raised:
        load_bundle(uri, BundleTrust(roots=(str(tmp_path),)))
    assert len(str(raised.value)) < 600


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
