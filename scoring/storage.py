"""Byte-level access to local paths and s3:// URIs, so bundles and partitions live in either.

boto3 is imported lazily: the online and batch paths on local files never pay for it. boto3 reads
AWS_ENDPOINT_URL itself, which is how tests and compose point it at moto or LocalStack.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.key.rstrip('/')}/{name}" if self.key else name)


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


def s3_client():
    import boto3  # lazy: only S3 users pay for the import

    return boto3.client("s3")


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        loc = parse_s3(uri)
        return s3_client().get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
    return Path(uri).read_bytes()


def write_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        loc = parse_s3(uri)
        s3_client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def list_files(uri: str) -> list[str]:
    """Every file below a directory or S3 prefix, sorted, as full URIs."""
    if is_s3(uri):
        loc = parse_s3(uri)
        prefix = loc.key.rstrip("/") + "/" if loc.key else ""
        paginator = s3_client().get_paginator("list_objects_v2")
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


def download_to(uri: str, target: IO[bytes]) -> None:
    """Stream an object into an open file, chunk by chunk, so memory stays flat."""
    if is_s3(uri):
        loc = parse_s3(uri)
        s3_client().download_fileobj(loc.bucket, loc.key, target)
        return
    with open(uri, "rb") as source:
        shutil.copyfileobj(source, target)


def upload_from(source: IO[bytes], uri: str) -> None:
    """Stream an open file to an s3:// URI (multipart for large files) or copy it to a local path."""
    if is_s3(uri):
        loc = parse_s3(uri)
        s3_client().upload_fileobj(source, loc.bucket, loc.key)
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
