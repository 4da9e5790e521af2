"""AWS on a moto server over real HTTP: the endpoint, clients, and throwaway streams and queues."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free local port, reached over real HTTP by the same boto3 code production runs."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the moto server with dummy credentials; returns the endpoint."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_endpoint


def unique(prefix: str) -> str:
    """A resource name no other test uses on the shared moto server."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kinesis(aws: str):
    return boto3.client("kinesis")


@pytest.fixture
def sqs(aws: str):
    return boto3.client("sqs")


@pytest.fixture
def new_stream(kinesis) -> Callable[..., str]:
    """Make an ACTIVE Kinesis stream on moto; returns its name."""

    def create(shards: int = 1) -> str:
        name = unique("stream")
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
        return name

    return create


@pytest.fixture
def new_queue(sqs) -> Callable[..., str]:
    """Make an SQS queue on moto; returns its URL."""

    def create(**attributes: str) -> str:
        return sqs.create_queue(QueueName=unique("queue"), Attributes=attributes)["QueueUrl"]

    return create


@pytest.fixture
def read_stream(kinesis) -> Callable[[str], list[dict]]:
    """Read every record on every shard of a stream, decoded from JSON."""

    def read(name: str) -> list[dict]:
        messages = []
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
                if not response["Records"]:
                    break
                messages += [json.loads(record["Data"]) for record in response["Records"]]
                iterator = response["NextShardIterator"]
        return messages

    return read


@pytest.fixture
def drain_queue(sqs) -> Callable[[str], list[dict]]:
    """Receive, decode and delete every message currently on a queue."""

    def drain(url: str) -> list[dict]:
        messages = []
        while received := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in received:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    return drain
