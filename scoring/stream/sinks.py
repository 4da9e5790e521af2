"""Messages and where they go: a Kinesis stream or an SQS queue (prediction messages, and dead letters).

A message is encoded and checked when it is made (OutputMessage.of), so a record whose message cannot
be encoded fails alone before anything is written, and a write never stops halfway on one record.
Both APIs accept a batch and may refuse some entries of it (throttling, an internal error). Refused
entries are retried with a short backoff; what is still refused after the last attempt is mapped
back to the input item it answers, so the handler reports exactly those items in
`batchItemFailures` and the event source retries them. Clients come from scoring.aws.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scoring import aws
from scoring.errors import ConfigError
from scoring.settings import Settings

# Service limits: PutRecords takes 500 records and 5 MiB; SendMessageBatch 10 messages and 256 KiB.
KINESIS_MAX_RECORDS = 500
KINESIS_MAX_BYTES = 5 * 1024 * 1024
SQS_MAX_MESSAGES = 10
SQS_MAX_BYTES = 256 * 1024
# One message must fit either output and the dead-letter queue: SQS's limit is the smaller.
MAX_MESSAGE_BYTES = SQS_MAX_BYTES
KINESIS_MAX_PARTITION_KEY = 256
# What SQS accepts in a FIFO MessageGroupId: ASCII letters, digits and punctuation, at most 128.
FIFO_ID = re.compile(r"[!-~]{1,128}")


@dataclass(frozen=True)
class OutputMessage:
    """A message to publish, already encoded: the input item it answers, its stable key, shard key and body."""

    item_id: str
    key: str
    partition_key: str
    body: dict[str, Any]
    text: str = field(repr=False)

    @classmethod
    def of(cls, item_id: str, key: str, partition_key: str, body: dict[str, Any]) -> OutputMessage:
        """Encode and check a message; ValueError (or TypeError) when no output could take it."""
        # ASCII JSON: every character is escaped that SQS or UTF-8 would refuse (lone surrogates, controls).
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        if not 0 < len(partition_key) <= KINESIS_MAX_PARTITION_KEY:
            raise ValueError(f"the partition key is {len(partition_key)} characters, not 1 to 256")
        message = cls(item_id, key, partition_key, body, text)
        if message.size > MAX_MESSAGE_BYTES:
            raise ValueError(f"the message is {message.size} bytes, over the {MAX_MESSAGE_BYTES} an output takes")
        return message

    @property
    def size(self) -> int:
        """Bytes the services count against their limits: the body and the partition key."""
        return len(self.text) + len(self.partition_key.encode("utf-8"))


@dataclass(frozen=True)
class ItemFailure:
    """An input item that failed, why, and whether a retry could fix it (else it is for the dead-letter queue)."""

    item_id: str
    reason: str
    retryable: bool = False


class Sink(Protocol):
    """Somewhere messages go; `write` answers the items whose message did not get there."""

    def write(self, messages: Sequence[OutputMessage]) -> list[ItemFailure]: ...


# (message, reason, worth retrying) for each entry the service refused.
Refusal = tuple[OutputMessage, str, bool]


def fifo_id(text: str) -> str:
    """`text` if SQS takes it as a FIFO group id, else a digest of it (still the same for the same text)."""
    return text if FIFO_ID.fullmatch(text) else hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
            failures += [_failure(message, reason, False) for message, reason, retryable in refused if not retryable]
            pending = [message for message, _, retryable in refused if retryable]
            if not pending:
                return failures
        return failures + [_failure(message, reason, True) for message, reason, retryable in refused if retryable]


def _failure(message: OutputMessage, reason: str, retryable: bool) -> ItemFailure:
    return ItemFailure(message.item_id, reason, retryable)


def _refusals_of_call(put: Callable[[list[OutputMessage]], list[Refusal]], batch: list[OutputMessage]) -> list[Refusal]:
    try:
        return put(batch)
    except Exception as exc:
        # The whole call failed (throttled stream, network, an answer we could not read): every entry of it
        # is worth another try, and raising instead would fail the batch after earlier calls were written.
        reason = f"{type(exc).__name__}: {exc}"
        return [(message, reason, True) for message in batch]


def batches(messages: Sequence[OutputMessage], max_count: int, max_bytes: int) -> Iterator[list[OutputMessage]]:
    """Consecutive runs of messages, each within a service's count and byte limits."""
    batch: list[OutputMessage] = []
    size = 0
    for message in messages:
        message_size = message.size
        if batch and (len(batch) == max_count or size + message_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message_size
    if batch:
        yield batch


@dataclass
class KinesisSink:
    """Writes messages to a Kinesis stream with PutRecords, keyed by record id so a record's answers keep one shard."""

    stream_name: str
    client: Any = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = aws.client("kinesis")

    def write(self, messages: Sequence[OutputMessage]) -> list[ItemFailure]:
        """Publish every message; the items whose message was still refused after retries."""
        return self.retry.send_in_batches(messages, KINESIS_MAX_RECORDS, KINESIS_MAX_BYTES, self._put)

    def _put(self, batch: list[OutputMessage]) -> list[Refusal]:
        response = self.client.put_records(
            StreamName=self.stream_name,
            Records=[{"Data": m.text.encode("ascii"), "PartitionKey": m.partition_key} for m in batch],
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
            self.client = aws.client("sqs")

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
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message.text}
        if self.fifo:
            # Deduplicating on the record's stable key makes a retried input publish its message once.
            entry["MessageGroupId"] = fifo_id(message.partition_key)
            entry["MessageDeduplicationId"] = message.key
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
