"""Create what the streaming path needs in LocalStack (or any AWS endpoint) and publish the model bundle to S3.

Run by the compose `seed` service; idempotent, so a restart or a second `docker compose up` changes nothing.
Without Docker it runs the same against moto or real AWS: set AWS_ENDPOINT_URL (or not) and the variables
below, then `python docker/init/localstack_resources.py`.

  BUNDLE_DIR          the local bundle to publish (model.bin + model.json)
  STREAM_MODEL_URI    s3://bucket/prefix the Lambda loads its bundle from
  RIDE_EVENTS_STREAM  input Kinesis stream; PREDICTIONS_STREAM output Kinesis stream
  RIDE_EVENTS_QUEUE   input SQS queue
  DEAD_LETTER_QUEUE   optional: the SQS queue for records that can never be scored
                      (the function's SCORING_DEAD_LETTER_QUEUE_URL is this queue's URL)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from scoring import storage

REQUIRED = ("BUNDLE_DIR", "STREAM_MODEL_URI", "RIDE_EVENTS_STREAM", "PREDICTIONS_STREAM", "RIDE_EVENTS_QUEUE")


def ensure_bucket(s3, bucket: str) -> None:
    """Create the bucket unless this account already has it."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)


def publish_bundle(bundle_dir: str, target_uri: str) -> list[str]:
    """Copy every file of a local bundle under an s3:// prefix; the URIs written."""
    written = []
    for path in storage.list_files(bundle_dir):
        uri = storage.join(target_uri, Path(path).relative_to(bundle_dir).as_posix())
        storage.write_bytes(uri, storage.read_bytes(path))
        written.append(uri)
    if not written:
        raise SystemExit(f"no bundle files under {bundle_dir}: run `scoring demo` first")
    return written


def ensure_stream(kinesis, name: str, shards: int = 1) -> None:
    """Create a Kinesis stream if missing and wait until it accepts records."""
    # Create and accept "in use" (an earlier seed run): list_streams answers one page only, so a
    # check against it misses existing streams once there are more than a page of them.
    with contextlib.suppress(kinesis.exceptions.ResourceInUseException):
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def ensure_queue(sqs, name: str) -> str:
    """Create an SQS queue if missing; its URL (create_queue is idempotent for identical attributes)."""
    return sqs.create_queue(QueueName=name)["QueueUrl"]


def main(environ: Mapping[str, str] | None = None) -> int:
    """Create the bucket, streams and queues, publish the bundle, and print what exists."""
    import boto3
    from botocore.config import Config

    env = os.environ if environ is None else environ
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        print(f"missing environment: {', '.join(missing)}", file=sys.stderr)
        return 2
    target = env["STREAM_MODEL_URI"]
    ensure_bucket(boto3.client("s3"), storage.parse_s3(target).bucket)
    for uri in publish_bundle(env["BUNDLE_DIR"], target):
        print(f"published {uri}")
    # LocalStack's Kinesis can take a while to answer its first calls: wait longer than boto3 would.
    kinesis = boto3.client("kinesis", config=Config(read_timeout=300, retries={"max_attempts": 10, "mode": "standard"}))
    for stream in (env["RIDE_EVENTS_STREAM"], env["PREDICTIONS_STREAM"]):
        ensure_stream(kinesis, stream)
        print(f"kinesis stream {stream} is active")
    sqs = boto3.client("sqs")
    print(f"sqs queue {ensure_queue(sqs, env['RIDE_EVENTS_QUEUE'])}")
    if env.get("DEAD_LETTER_QUEUE"):
        print(f"dead-letter queue {ensure_queue(sqs, env['DEAD_LETTER_QUEUE'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
