"""Kinesis as Lambda's event source mapping reads it: per shard, invoke, checkpoint what succeeded."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scoring import aws
from scoring.stream.runner.checkpoints import CheckpointStore
from scoring.stream.runner.emulator import Handler, invoke
from scoring.stream.runner.polling import PollLimits, RunSummary, poll
from scoring.stream.wire import kinesis_event_record

log = logging.getLogger(__name__)


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
        client or aws.client("kinesis"),
        batch_size=batch_size,
        starting_position=starting_position,
        max_retries=max_retries,
    )
    poll(poller.step, limits)
    return poller.summary
