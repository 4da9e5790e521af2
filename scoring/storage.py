"""Byte-level access to local paths and s3:// URIs, so bundles and partitions live in either.

S3 clients come from scoring.aws, which imports boto3 lazily: the online and batch paths on local
files never pay for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from scoring import aws


@dataclass(frozen=True)
class S3Location:
    """An s3:// URI split into its bucket and key."""

    bucket: str
    key: str


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3(uri: str) -> S3Location:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return S3Location(bucket, key)


def join(uri: str, *parts: str) -> str:
    """Join path segments onto a local path or an s3:// URI."""
    if is_s3(uri):
        return "/".join([uri.rstrip("/"), *parts])
    return str(Path(uri, *parts))


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        loc = parse_s3(uri)
        return aws.client("s3").get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
    return Path(uri).read_bytes()


def write_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        loc = parse_s3(uri)
        aws.client("s3").put_object(Bucket=loc.bucket, Key=loc.key, Body=data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def list_files(uri: str) -> list[str]:
    """Every file below a directory or S3 prefix, sorted, as full URIs."""
    if is_s3(uri):
        loc = parse_s3(uri)
        prefix = loc.key.rstrip("/") + "/" if loc.key else ""
        paginator = aws.client("s3").get_paginator("list_objects_v2")
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        return sorted(f"s3://{loc.bucket}/{key}" for key in keys)
    root = Path(uri)
    if not root.is_dir():
        return []
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


@dataclass(frozen=True)
class FileInfo:
    """One file below a directory or S3 prefix: its URI, size and last modification (UTC)."""

    uri: str
    size: int
    modified: datetime


def list_file_info(uri: str) -> list[FileInfo]:
    """Every file below a directory or S3 prefix with its size and modification time, sorted by URI."""
    if is_s3(uri):
        loc = parse_s3(uri)
        prefix = loc.key.rstrip("/") + "/" if loc.key else ""
        paginator = aws.client("s3").get_paginator("list_objects_v2")
        return sorted(
            (
                FileInfo(f"s3://{loc.bucket}/{obj['Key']}", int(obj["Size"]), obj["LastModified"])
                for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix)
                for obj in page.get("Contents", [])
            ),
            key=lambda info: info.uri,
        )
    root = Path(uri)
    if not root.is_dir():
        return []
    found = []
    for path in root.rglob("*"):
        stat = path.lstat()
        if path.is_file() and not path.is_symlink():
            found.append(FileInfo(str(path), stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc)))
    return sorted(found, key=lambda info: info.uri)


def exists(uri: str) -> bool:
    """True if the file or S3 object is there."""
    if is_s3(uri):
        from botocore.exceptions import ClientError

        loc = parse_s3(uri)
        try:
            aws.client("s3").head_object(Bucket=loc.bucket, Key=loc.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
    return os.path.isfile(uri)


def delete_files(uris: list[str]) -> None:
    """Delete files or S3 objects (a missing one is not an error); S3 deletes go 1,000 keys per request."""
    local = [uri for uri in uris if not is_s3(uri)]
    for uri in local:
        Path(uri).unlink(missing_ok=True)
    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        if is_s3(uri):
            loc = parse_s3(uri)
            by_bucket.setdefault(loc.bucket, []).append(loc.key)
    for bucket, keys in by_bucket.items():
        client = aws.client("s3")
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start : start + 1000]]
            response = client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise OSError(f"s3://{bucket}/{first.get('Key')}: delete failed: {first.get('Code')}")


def remove_empty_dirs(path: str, stop: str) -> None:
    """Remove `path` and its parents while they are empty, never `stop` or anything above it (local only)."""
    if is_s3(path):
        return  # S3 has no directories
    top = Path(stop).resolve()
    current = Path(path).resolve()
    while current != top and top in current.parents:
        try:
            current.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty
            return
        current = current.parent


def download_to(uri: str, target: IO[bytes]) -> None:
    """Stream an object into an open file, chunk by chunk, so memory stays flat."""
    if is_s3(uri):
        loc = parse_s3(uri)
        aws.client("s3").download_fileobj(loc.bucket, loc.key, target)
        return
    with open(uri, "rb") as source:
        shutil.copyfileobj(source, target)


def upload_from(source: IO[bytes], uri: str) -> None:
    """Stream an open file to an s3:// URI (multipart for large files) or copy it to a local path."""
    if is_s3(uri):
        loc = parse_s3(uri)
        aws.client("s3").upload_fileobj(source, loc.bucket, loc.key)
        return
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    with open(uri, "wb") as target:
        shutil.copyfileobj(source, target)


@contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path for `uri`: the path itself, or a temporary download of an S3 object."""
    if not is_s3(uri):
        yield uri
        return
    with tempfile.NamedTemporaryFile(suffix=os.path.splitext(uri)[1]) as handle:
        download_to(uri, handle)
        handle.flush()
        yield handle.name
