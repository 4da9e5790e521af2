"""The one place boto3 clients are made: S3 for bundles and partitions, Kinesis and SQS for streams.

boto3 is imported lazily, so the online and batch paths on local files never pay for it. boto3 reads
AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself, which is how tests and compose point every
client at moto or LocalStack; nothing here reads the environment.
"""

from __future__ import annotations

from typing import Any


def client(service: str) -> Any:
    """A boto3 client for `service` ("s3", "kinesis", "sqs") with the default session's configuration."""
    import boto3  # lazy: only AWS users pay for the import

    return boto3.client(service)
