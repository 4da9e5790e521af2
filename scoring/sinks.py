"""Publishing prediction messages to a Kinesis stream or an SQS queue, in the largest batches each allows.

Both APIs accept a batch and may refuse some entries of it (throttling, an internal error). Refused
entries are retried with a short backoff; what is still refused after the last attempt is mapped
back to the input item it answers, so the handler reports exactly those items in
`batchItemFailures` and the event source retries them. boto3 is imported lazily.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from scoring.errors import ConfigError
from scoring.settings import Settings
from scoring.stream import ItemFailure, OutputMessage, Sink

# Service limits: PutRecords takes 500 records and 5 MiB; SendMessageBatch 10 messages and 256 KiB.
KINESIS_MAX_RECORDS = 500
KINESIS_MAX_BYTES = 5 * 1024 * 1024
SQS_MAX_MESSAGES = 10
SQS_MAX_BYTES = 256 * 1024

# (message, reason, worth retrying) for each entry the service refused.
Refusal = tuple[OutputMessage, str, bool]


def encode(message: OutputMessage) -> str:
    """The message body as published: compact JSON."""
    return json.dumps(message.body, separators=(",", ":"))


@dataclass
class RetryPolicy:
    """How often a refused entry is sent again, and how long to wait before each new attempt."""

    attempts: int = 4
    backoff_seconds: float = 0.05
    sleep: Callable[[float], None] = time.sleep

    def send_in_batches(
        self, messages: Sequence[OutputMessage], max_count: int, max_bytes: int, put: Callable[..., list[Refusal]]
    ) -> list[ItemFailure]:
        """Send every message with `put` in batches within the service's limits; the items finally refused."""
        failures: list[ItemFailure] = []
        for batch in batches(messages, max_count, max_bytes):
            failures += self.send(batch, put)
        return failures

    def send(
        self, batch: list[OutputMessage], put: Callable[[list[OutputMessage]], list[Refusal]]
    ) -> list[ItemFailure]:
        """Send `batch` with `put`, resending what it refuses; the items still refused at the end."""
        pending = batch
        failures: list[ItemFailure] = []
        refused: list[Refusal] = []
        for attempt in range(max(self.attempts, 1)):
            if attempt:
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            refused = _refusals_of_call(put, pending)
            failures += [_failure(message, reason) for message, reason, retryable in refused if not retryable]
            pending = [message for message, _, retryable in refused if retryable]
            if not pending:
                return failures
        return failures + [_failure(message, reason) for message, reason, retryable in refused if retryable]


def _failure(message: OutputMessage, reason: str) -> ItemFailure:
    return ItemFailure(message.item_id, f"output not written: {reason}")


def _refusals_of_call(put: Callable[[list[OutputMessage]], list[Refusal]], batch: list[OutputMessage]) -> list[Refusal]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return put(batch)
    except (BotoCoreError, ClientError) as exc:
        # The whole call failed (throttled stream, network): every entry of it is worth another try.
        reason = f"{type(exc).__name__}: {exc}"
        return [(message, reason, True) for message in batch]


def batches(messages: Sequence[OutputMessage], max_count: int, max_bytes: int) -> Iterator[list[OutputMessage]]:
    """Consecutive runs of messages, each within a service's count and byte limits."""
    batch: list[OutputMessage] = []
    size = 0
    for message in messages:
        message_size = len(encode(message).encode()) + len(message.partition_key.encode())
        if batch and (len(batch) == max_count or size + message_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message_size
    if batch:
        yield batch


def aws_client(service: str) -> Any:
    """A boto3 client; AWS_ENDPOINT_URL points it at moto or LocalStack when set."""
    import boto3  # lazy: only the streaming path pays for it

    return boto3.client(service)


@dataclass
class KinesisSink:
    """Writes messages to a Kinesis stream with PutRecords, keyed by record id so a ride keeps its shard."""

    stream_name: str
    client: Any = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = aws_client("kinesis")

    def write(self, messages: Sequence[OutputMessage]) -> list[ItemFailure]:
        """Publish every message; the items whose message was still refused after retries."""
        return self.retry.send_in_batches(messages, KINESIS_MAX_RECORDS, KINESIS_MAX_BYTES, self._put)

    def _put(self, batch: list[OutputMessage]) -> list[Refusal]:
        response = self.client.put_records(
            StreamName=self.stream_name,
            Records=[{"Data": encode(m).encode(), "PartitionKey": m.partition_key[:256]} for m in batch],
        )
        # Results are positional: entry i answers batch[i].
        return [
            (message, f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}", True)
            for message, result in zip(batch, response["Records"], strict=True)
            if result.get("ErrorCode")
        ]


@dataclass
class SqsSink:
    """Writes messages to an SQS queue with SendMessageBatch; a FIFO queue groups them by record id."""

    queue_url: str
    client: Any = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = aws_client("sqs")

    @property
    def fifo(self) -> bool:
        return self.queue_url.endswith(".fifo")

    def write(self, messages: Sequence[OutputMessage]) -> list[ItemFailure]:
        """Publish every message; the items whose message was still refused after retries."""
        return self.retry.send_in_batches(messages, SQS_MAX_MESSAGES, SQS_MAX_BYTES, self._send)

    def _send(self, batch: list[OutputMessage]) -> list[Refusal]:
        entries = [self._entry(str(position), message) for position, message in enumerate(batch)]
        response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        # A sender fault (e.g. a message too large) fails the same way every time: not worth a retry.
        return [
            (
                batch[int(refused["Id"])],
                f"{refused.get('Code')}: {refused.get('Message', '')}",
                not refused["SenderFault"],
            )
            for refused in response.get("Failed", [])
        ]

    def _entry(self, entry_id: str, message: OutputMessage) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": encode(message)}
        if self.fifo:
            # Deduplicating on the input item makes a retried input publish its prediction once.
            entry["MessageGroupId"] = message.partition_key[:128]
            entry["MessageDeduplicationId"] = message.item_id[:128]
        return entry


def make_sink(settings: Settings) -> Sink | None:
    """The sink SCORING_STREAM_OUTPUT names, or None when predictions are only returned."""
    if settings.stream_output == "kinesis":
        if not settings.output_stream:
            raise ConfigError("SCORING_STREAM_OUTPUT=kinesis needs SCORING_OUTPUT_STREAM (the stream name)")
        return KinesisSink(settings.output_stream)
    if settings.stream_output == "sqs":
        if not settings.output_queue_url:
            raise ConfigError("SCORING_STREAM_OUTPUT=sqs needs SCORING_OUTPUT_QUEUE_URL")
        return SqsSink(settings.output_queue_url)
    return None
