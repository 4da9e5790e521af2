"""A local event source: poll a Kinesis stream or SQS queue and invoke a Lambda handler as Lambda would.

It builds the exact event shapes Lambda sends, reads the partial-batch response the way Lambda
does with ReportBatchItemFailures, and only then commits: SQS messages are deleted unless
reported; a Kinesis shard is checkpointed up to (not including) its first reported record, and
polling resumes from that record. This is how the streaming path runs without AWS: point
AWS_ENDPOINT_URL at moto or LocalStack, or leave it unset for real AWS.

The handler is named by file path (`lambda/lambda_function.py:lambda_handler`) and loaded at run
time, so this module never imports the Lambda code.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scoring.errors import ConfigError, ScoringError
from scoring.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

DEFAULT_FUNCTION = "lambda/lambda_function.py:lambda_handler"
DEFAULT_CHECKPOINTS = "var/stream/checkpoints.json"
SQS_MAX_RECEIVE = 10
SQS_MAX_WAIT_SECONDS = 20


@dataclass(frozen=True)
class PollLimits:
    """When a run stops by itself: after so many invocations, or after so long without records."""

    max_batches: int | None = None
    idle_timeout: float | None = None
    poll_seconds: float = 1.0


@dataclass
class RunSummary:
    """What a run did: invocations, records handed to the handler, and items it reported as failed."""

    batches: int = 0
    records: int = 0
    failed: int = 0

    def count(self, records: int, failed: int) -> None:
        self.batches += 1
        self.records += records
        self.failed += failed


@dataclass(frozen=True)
class LocalContext:
    """The parts of Lambda's context object a handler usually reads."""

    function_name: str = "local-stream-runner"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def load_handler(spec: str) -> Handler:
    """The function `spec` names as "path/to/file.py:function" (the handler folder is not a package)."""
    path_text, _, name = spec.partition(":")
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"handler file {path} does not exist (give --function PATH.py:FUNCTION)")
    module_spec = importlib.util.spec_from_file_location(f"stream_handler_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    handler = getattr(module, name or "lambda_handler", None)
    if not callable(handler):
        raise ConfigError(f"{path} has no function {name or 'lambda_handler'!r}")
    return handler


def invoke(handler: Handler, records: list[dict[str, Any]], item_ids: list[str]) -> list[str]:
    """Invoke the handler on one batch; the item ids Lambda would retry, in batch order.

    As Lambda does: an exception, or a response naming an item not in the batch, fails the whole batch.
    """
    try:
        response = handler({"Records": records}, LocalContext())
    except ScoringError as exc:
        # Refused on purpose and named (e.g. a record without an id): one line says it, a traceback would not.
        log.error("the handler refused the batch of %d records (%s); the whole batch fails", len(records), exc)
        return list(item_ids)
    except Exception:
        log.exception("the handler raised; the whole batch of %d records fails", len(records))
        return list(item_ids)
    failed = _reported_failures(response)
    if failed is None or not failed <= set(item_ids):
        log.error("the handler's response is not a valid partial-batch response; the whole batch fails")
        return list(item_ids)
    return [item_id for item_id in item_ids if item_id in failed]


def _reported_failures(response: Any) -> set[str] | None:
    if response is None or response == "":
        return set()
    if not isinstance(response, Mapping):
        return None
    entries = response.get("batchItemFailures") or []
    ids = [entry.get("itemIdentifier") if isinstance(entry, Mapping) else None for entry in entries]
    if not all(isinstance(item_id, str) and item_id for item_id in ids):
        return None
    return {str(item_id) for item_id in ids}


def poll(step: Callable[[], int], limits: PollLimits) -> None:
    """Call `step` (one poll; returns records handled) until a limit is reached."""
    batches = 0
    idle_since = time.monotonic()
    while limits.max_batches is None or batches < limits.max_batches:
        handled = step()
        if handled:
            batches += 1
            idle_since = time.monotonic()
            continue
        if limits.idle_timeout is not None and time.monotonic() - idle_since >= limits.idle_timeout:
            return
        time.sleep(limits.poll_seconds)


# --- SQS --------------------------------------------------------------------------------------------------------


def run_sqs(
    handler: Handler, queue_url: str, *, batch_size: int = 10, limits: PollLimits, client: Any = None
) -> RunSummary:
    """Receive batches from an SQS queue, invoke the handler, delete the messages it did not report."""
    client = client or _aws_client("sqs")
    queue_arn = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    region = client.meta.region_name
    summary = RunSummary()
    wait_seconds = max(0, min(SQS_MAX_WAIT_SECONDS, int(limits.poll_seconds)))

    def step() -> int:
        messages = _receive(client, queue_url, batch_size, wait_seconds)
        if not messages:
            return 0
        records = [sqs_event_record(message, queue_arn, region) for message in messages]
        failed = invoke(handler, records, [m["MessageId"] for m in messages])
        retried = set(failed)
        _delete(client, queue_url, [m for m in messages if m["MessageId"] not in retried])
        summary.count(len(records), len(failed))
        return len(records)

    # A long poll already waits for messages; sleeping after it as well would only add latency.
    poll(step, replace(limits, poll_seconds=0.0) if wait_seconds else limits)
    return summary


def _receive(client: Any, queue_url: str, batch_size: int, wait_seconds: int) -> list[dict[str, Any]]:
    """Up to batch_size messages: the first receive long-polls, the rest only take what is already there."""
    messages: list[dict[str, Any]] = []
    while len(messages) < batch_size:
        response = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(SQS_MAX_RECEIVE, batch_size - len(messages)),
            WaitTimeSeconds=0 if messages else wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        received = response.get("Messages", [])
        if not received:
            break
        messages += received
    return messages


def _delete(client: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), SQS_MAX_RECEIVE):
        chunk = messages[start : start + SQS_MAX_RECEIVE]
        response = client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )
        for refused in response.get("Failed", []):
            # The message comes back after its visibility timeout and is scored again: at-least-once.
            log.warning("could not delete message %s: %s", chunk[int(refused["Id"])]["MessageId"], refused)


def sqs_event_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the event Lambda builds from a received SQS message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _lambda_message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """Lambda spells message attributes in camelCase, unlike the SQS API."""
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


# --- Kinesis ----------------------------------------------------------------------------------------------------


class CheckpointStore:
    """Per stream and shard, the last sequence number fully handled; kept in a local JSON file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data: dict[str, dict[str, str]] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, stream: str, shard_id: str) -> str | None:
        return self._data.get(stream, {}).get(shard_id)

    def set(self, stream: str, shard_id: str, sequence_number: str) -> None:
        self._data.setdefault(stream, {})[shard_id] = sequence_number
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves half a checkpoint file.
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._data, indent=2, sort_keys=True))
        temporary.replace(self.path)


@dataclass
class ShardCursor:
    """Where polling of one shard stands, and how often its current first failure has been retried."""

    shard_id: str
    iterator: str | None
    failing_sequence: str | None = None
    failures: int = 0


@dataclass
class KinesisPoller:
    """Polls every shard of a stream, invokes the handler per GetRecords batch, checkpoints what succeeded."""

    handler: Handler
    stream_name: str
    checkpoints: CheckpointStore
    client: Any
    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    # Like the mapping's MaximumRetryAttempts: after this many retries a failing batch is discarded.
    max_retries: int = 2
    summary: RunSummary = field(default_factory=RunSummary)

    def __post_init__(self) -> None:
        description = self.client.describe_stream_summary(StreamName=self.stream_name)["StreamDescriptionSummary"]
        self.stream_arn: str = description["StreamARN"]
        self.region: str = self.client.meta.region_name
        self.cursors = [self._open(shard["ShardId"]) for shard in self._shards()]

    def _shards(self) -> Iterator[dict[str, Any]]:
        response = self.client.list_shards(StreamName=self.stream_name)
        yield from response["Shards"]
        while response.get("NextToken"):
            response = self.client.list_shards(NextToken=response["NextToken"])
            yield from response["Shards"]

    def _open(self, shard_id: str) -> ShardCursor:
        checkpoint = self.checkpoints.get(self.stream_arn, shard_id)
        if checkpoint:
            return ShardCursor(shard_id, self._iterator(shard_id, "AFTER_SEQUENCE_NUMBER", checkpoint))
        return ShardCursor(shard_id, self._iterator(shard_id, self.starting_position))

    def _iterator(self, shard_id: str, kind: str, sequence_number: str | None = None) -> str:
        extra = {"StartingSequenceNumber": sequence_number} if sequence_number else {}
        response = self.client.get_shard_iterator(
            StreamName=self.stream_name, ShardId=shard_id, ShardIteratorType=kind, **extra
        )
        return response["ShardIterator"]

    def step(self) -> int:
        """One GetRecords per open shard, each non-empty batch handed to the handler; records handled."""
        handled = 0
        for cursor in self.cursors:
            if cursor.iterator is None:
                continue  # a closed shard, read to its end
            response = self.client.get_records(ShardIterator=cursor.iterator, Limit=self.batch_size)
            records = response.get("Records", [])
            if not records:
                cursor.iterator = response.get("NextShardIterator")
                continue
            self._handle(cursor, records, response.get("NextShardIterator"))
            handled += len(records)
        return handled

    def _handle(self, cursor: ShardCursor, records: list[dict[str, Any]], next_iterator: str | None) -> None:
        sequence_numbers = [r["SequenceNumber"] for r in records]
        event_records = [kinesis_event_record(r, cursor.shard_id, self.stream_arn, self.region) for r in records]
        failed = invoke(self.handler, event_records, sequence_numbers)
        self.summary.count(len(records), len(failed))
        if not failed:
            self.checkpoints.set(self.stream_arn, cursor.shard_id, sequence_numbers[-1])
            cursor.iterator, cursor.failing_sequence, cursor.failures = next_iterator, None, 0
            return
        first = failed[0]
        cursor.failures = cursor.failures + 1 if cursor.failing_sequence == first else 1
        cursor.failing_sequence = first
        if cursor.failures > self.max_retries:
            # Retries exhausted: Lambda hands the batch to the mapping's on-failure destination and moves past it.
            log.warning(
                "shard %s: record %s still failing after %d retries; discarding the batch's failed records %s",
                cursor.shard_id,
                first,
                self.max_retries,
                failed,
            )
            self.checkpoints.set(self.stream_arn, cursor.shard_id, sequence_numbers[-1])
            cursor.iterator, cursor.failing_sequence, cursor.failures = next_iterator, None, 0
            return
        position = sequence_numbers.index(first)
        if position:
            self.checkpoints.set(self.stream_arn, cursor.shard_id, sequence_numbers[position - 1])
        # Lambda's ReportBatchItemFailures semantics: resume at the first failure, so what follows it is read again.
        cursor.iterator = self._iterator(cursor.shard_id, "AT_SEQUENCE_NUMBER", first)


def kinesis_event_record(record: Mapping[str, Any], shard_id: str, stream_arn: str, region: str) -> dict[str, Any]:
    """One record of the event Lambda builds from a Kinesis GetRecords record."""
    arrival = record.get("ApproximateArrivalTimestamp")
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": arrival.timestamp() if arrival is not None else time.time(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/local-stream-runner",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def run_kinesis(
    handler: Handler,
    stream_name: str,
    *,
    checkpoints: CheckpointStore,
    limits: PollLimits,
    batch_size: int = 100,
    starting_position: str = "TRIM_HORIZON",
    max_retries: int = 2,
    client: Any = None,
) -> RunSummary:
    """Poll every shard of a Kinesis stream into the handler, checkpointing as Lambda would."""
    poller = KinesisPoller(
        handler,
        stream_name,
        checkpoints,
        client or _aws_client("kinesis"),
        batch_size=batch_size,
        starting_position=starting_position,
        max_retries=max_retries,
    )
    poll(poller.step, limits)
    return poller.summary


def _aws_client(service: str) -> Any:
    from scoring.stream.sinks import aws_client  # lazy: `scoring --help` should not pay for boto3 and the model stack

    return aws_client(service)


# --- command line -----------------------------------------------------------------------------------------------


def add_stream_commands(commands: Any) -> None:
    """Add `scoring stream run` to the CLI's subcommands."""
    stream = commands.add_parser("stream", help="streaming: run the Lambda handler locally against Kinesis or SQS")
    run = stream.add_subparsers(dest="stream_command").add_parser(
        "run", help="poll a Kinesis stream or SQS queue and invoke the handler as Lambda would"
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--kinesis-stream", help="name of the input Kinesis stream")
    source.add_argument("--sqs-queue-url", help="URL of the input SQS queue")
    run.add_argument(
        "--function", default=DEFAULT_FUNCTION, help=f"handler as FILE:FUNCTION (default {DEFAULT_FUNCTION})"
    )
    run.add_argument("--batch-size", type=int, default=100, help="records per invocation at most (default 100)")
    run.add_argument("--max-batches", type=int, help="stop after this many invocations")
    run.add_argument("--idle-timeout", type=float, help="stop after this many seconds without records")
    run.add_argument("--poll-seconds", type=float, default=1.0, help="wait between empty polls (SQS: long-poll time)")
    run.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, help="Kinesis checkpoint file (JSON)")
    run.add_argument("--starting-position", choices=("TRIM_HORIZON", "LATEST"), default="TRIM_HORIZON")
    run.add_argument(
        "--max-retries", type=int, default=2, help="Kinesis: retries of a failing record before skipping it"
    )
    run.set_defaults(handler=_run_command)


def _run_command(args: argparse.Namespace, settings: Settings) -> int:
    handler = load_handler(args.function)
    limits = PollLimits(max_batches=args.max_batches, idle_timeout=args.idle_timeout, poll_seconds=args.poll_seconds)
    if args.kinesis_stream:
        summary = run_kinesis(
            handler,
            args.kinesis_stream,
            checkpoints=CheckpointStore(args.checkpoints),
            limits=limits,
            batch_size=args.batch_size,
            starting_position=args.starting_position,
            max_retries=args.max_retries,
        )
    else:
        summary = run_sqs(handler, args.sqs_queue_url, batch_size=args.batch_size, limits=limits)
    print(f"{summary.batches} invocations, {summary.records} records, {summary.failed} reported as failed")
    return 0
