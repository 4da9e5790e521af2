"""A real transient failure for the web service's retry: an S3 endpoint that refuses connections until a moto
server starts on its port, and a gate that lets the retry loop make one attempt at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from tests.support.aws import unique
from tests.support.gunicorn import free_port

RETRY_THREAD = "model-bundle-retry"
# Far longer than any attempt takes: only a broken loop (or none) reaches it.
HANG_GUARD_SECONDS = 60


class UnreachableStore:
    """An S3 endpoint on a local port where nothing listens yet: every read is a refused connection."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = unique("models")
        self.uri = f"s3://{self.bucket}/ride_duration/1"
        self._server: ThreadedMotoServer | None = None

    def environment(self) -> dict[str, str]:
        """What points boto3 at this endpoint, with one attempt per read (boto's own retries only slow it down)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_MAX_ATTEMPTS": "1",
        }

    def come_up_with(self, bundle_dir: Path) -> None:
        """Start a moto server on the port, the bundle's files already at `uri`: reads now succeed.

        The files are put through another moto server first (moto keeps one store per process), so no
        read on the port ever finds the bucket without the bundle, which is a missing bundle, not a retry.
        """
        staging_port = free_port()
        staging = ThreadedMotoServer(ip_address="127.0.0.1", port=staging_port, verbose=False)
        staging.start()
        try:
            s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{staging_port}", region_name="us-east-1")
            s3.create_bucket(Bucket=self.bucket)
            for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
                key = f"ride_duration/1/{path.relative_to(bundle_dir).as_posix()}"
                s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
        finally:
            staging.stop()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


class Gate:
    """Retry delays for create_app that let the loop make one attempt each time the test opens the gate."""

    def __init__(self) -> None:
        self._go = threading.Semaphore(0)
        self._parked = threading.Semaphore(0)
        self._closed = False
        self.asked = 0

    def delays(self) -> Iterator[float]:
        """The loop asks for its next delay after each failed attempt, and waits here until let through."""
        while True:
            self.asked += 1
            self._parked.release()
            self._go.acquire()
            if self._closed:
                return
            yield 0.0

    def wait_parked(self) -> None:
        """Block until the loop has finished its last attempt and waits at the gate."""
        assert self._parked.acquire(timeout=HANG_GUARD_SECONDS), "the retry loop never asked for its next delay"

    def let_one_attempt(self) -> None:
        self._go.release()

    def close(self) -> None:
        """End a loop still waiting, so no thread outlives its test."""
        self._closed = True
        self._go.release()


def retry_threads() -> list[threading.Thread]:
    """The retry loops alive in this process."""
    return [thread for thread in threading.enumerate() if thread.name == RETRY_THREAD]
