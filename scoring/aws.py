"""The one place boto3 clients are made: S3 for bundles and partitions, Kinesis and SQS for streams.

boto3 is imported lazily, so the online and batch paths on local files never pay for it. boto3 reads
AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself, which is how tests and compose point every
client at moto or LocalStack; nothing here reads the environment.
"""

from __future__ import annotations

from typing import Any

# botocore waits 60 s to connect and 60 s for each read, five times over, by default: a store that accepts and
# never answers would hold a bundle load (and a web worker's start) for minutes. A few seconds to connect, 20 s
# for any one read (a large bundle streams in many reads), and the standard retry mode's 3 attempts with
# backoff; AWS_MAX_ATTEMPTS still sets the attempts.
TIMEOUTS = {"connect_timeout": 5, "read_timeout": 20, "retries": {"mode": "standard"}}


def client(service: str) -> Any:
    """A boto3 client for `service` ("s3", "kinesis", "sqs"): the default session's configuration, bounded waits."""
    import boto3  # lazy: only AWS users pay for the import
    from botocore.config import Config

    return boto3.client(service, config=Config(**TIMEOUTS))
