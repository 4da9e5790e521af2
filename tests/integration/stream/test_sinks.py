"""Kinesis and SQS sinks against a moto server: batch limits, retries, and failures mapped to input items."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from scoring.stream.sinks import (
    FIFO_ID,
    ItemFailure,
    KinesisSink,
    OutputMessage,
    RetryPolicy,
    SqsSink,
    batches,
    fifo_id,
)

pytestmark = pytest.mark.aws


def messages(n: int) -> list[OutputMessage]:
    return [
        OutputMessage.of(
            f"item-{i}",
            f"key-{i}",
            str(i),
            {"model": "m", "version": "1", "prediction": {"duration": i / 7, "ride_id": i}, "key": f"key-{i}"},
        )
        for i in range(n)
    ]


def no_wait() -> RetryPolicy:
    return RetryPolicy(attempts=3, backoff_seconds=0.01, sleep=lambda seconds: None)


class Refusing:
    """A real boto3 client to moto that refuses chosen entries `times` times each.

    SIMULATED: moto never throttles, so the refusal (ProvisionedThroughputExceeded for Kinesis,
    an internal error for SQS) is made here; every entry not refused really goes to moto.
    """

    def __init__(self, client, refuse_ride_ids: set[int], times: int = 1_000, sender_fault: bool = False):
        self.client = client
        self.left = dict.fromkeys(refuse_ride_ids, times)
        self.sender_fault = sender_fault
        self.calls: list[int] = []
        self.sent = Counter()

    def _refused(self, body: bytes | str) -> bool:
        ride_id = json.loads(body)["prediction"]["ride_id"]
        self.sent[ride_id] += 1
        if self.left.get(ride_id, 0) > 0:
            self.left[ride_id] -= 1
            return True
        return False

    def put_records(self, StreamName, Records):
        self.calls.append(len(Records))
        refused = [self._refused(entry["Data"]) for entry in Records]
        passed = [entry for entry, no in zip(Records, refused, strict=True) if not no]
        real = iter(self.client.put_records(StreamName=StreamName, Records=passed)["Records"] if passed else [])
        error = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded (simulated)"}
        return {"FailedRecordCount": sum(refused), "Records": [error if no else next(real) for no in refused]}

    def send_message_batch(self, QueueUrl, Entries):
        self.calls.append(len(Entries))
        refused = [self._refused(entry["MessageBody"]) for entry in Entries]
        passed = [entry for entry, no in zip(Entries, refused, strict=True) if not no]
        response = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=passed) if passed else {}
        failed = [
            {"Id": entry["Id"], "SenderFault": self.sender_fault, "Code": "InternalError", "Message": "simulated"}
            for entry, no in zip(Entries, refused, strict=True)
            if no
        ]
        return {"Successful": response.get("Successful", []), "Failed": failed}


def test_kinesis_sink_puts_at_most_500_records_per_call(kinesis, new_stream, read_stream):
    stream = new_stream(shards=2)
    client = Refusing(kinesis, set())
    failures = KinesisSink(stream, client=client).write(messages(1234))
    assert failures == [] and client.calls == [500, 500, 234]
    assert sorted(m["prediction"]["ride_id"] for m in read_stream(stream)) == list(range(1234))


def test_kinesis_entry_refused_on_every_attempt_is_reported_as_its_input_item(kinesis, new_stream, read_stream):
    # Given a stream that refuses ride 3 on every attempt
    stream = new_stream()
    client = Refusing(kinesis, {3})
    # When 5 messages are written
    failures = KinesisSink(stream, client=client, retry=no_wait()).write(messages(5))
    # Then only ride 3 is reported, after every attempt, and the other four are on the stream once each
    assert [f.item_id for f in failures] == ["item-3"]
    assert "ProvisionedThroughputExceededException" in failures[0].reason
    assert client.sent[3] == 3 and client.calls == [5, 1, 1]
    assert sorted(m["prediction"]["ride_id"] for m in read_stream(stream)) == [0, 1, 2, 4]


def test_kinesis_entry_refused_once_is_retried_and_written_once(kinesis, new_stream, read_stream):
    stream = new_stream()
    client = Refusing(kinesis, {1, 2}, times=1)
    sleeps: list[float] = []
    sink = KinesisSink(stream, client=client, retry=RetryPolicy(attempts=3, backoff_seconds=0.5, sleep=sleeps.append))
    assert sink.write(messages(4)) == []
    assert client.calls == [4, 2] and sleeps == [0.5]
    assert sorted(m["prediction"]["ride_id"] for m in read_stream(stream)) == [0, 1, 2, 3]


def test_a_whole_call_that_fails_is_retried_and_then_reported(kinesis, new_stream):
    class Throttled:
        calls = 0

        def put_records(self, **_):
            self.calls += 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutRecords")

    client = Throttled()
    failures = KinesisSink(new_stream(), client=client, retry=no_wait()).write(messages(2))
    assert [f.item_id for f in failures] == ["item-0", "item-1"] and client.calls == 3


def test_sqs_sink_sends_at_most_10_messages_per_call(sqs, new_queue, drain_queue):
    queue = new_queue()
    client = Refusing(sqs, set())
    assert SqsSink(queue, client=client).write(messages(25)) == []
    assert client.calls == [10, 10, 5]
    assert sorted(m["prediction"]["ride_id"] for m in drain_queue(queue)) == list(range(25))


@pytest.mark.parametrize(("sender_fault", "sends_of_refused"), [(False, 3), (True, 1)])
def test_sqs_refused_entry_is_reported_and_retried_only_when_not_the_senders_fault(
    sqs, new_queue, drain_queue, sender_fault, sends_of_refused
):
    queue = new_queue()
    client = Refusing(sqs, {12}, sender_fault=sender_fault)
    failures = SqsSink(queue, client=client, retry=no_wait()).write(messages(14))
    # A sender fault is not worth a retry: the handler dead-letters it instead of reporting it.
    assert failures == [ItemFailure("item-12", "InternalError: simulated", retryable=not sender_fault)]
    assert client.sent[12] == sends_of_refused
    assert sorted(m["prediction"]["ride_id"] for m in drain_queue(queue)) == [i for i in range(14) if i != 12]


def test_fifo_queue_messages_are_grouped_by_ride_and_deduplicated_by_record_key(sqs, drain_queue):
    queue = sqs.create_queue(QueueName="rides-out.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sink = SqsSink(queue, client=sqs)
    assert sink.write(messages(3)) == []
    # The same record published again (a retried batch) is dropped by SQS deduplication on its key.
    assert sink.write(messages(3)[:1]) == []
    assert [m["prediction"]["ride_id"] for m in drain_queue(queue)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("ride_id", "kept"), [("ride-7", True), ("a/b:c#1", True), ("ride 7", False), ("é", False), ("x" * 129, False)]
)
def test_fifo_group_ids_are_what_sqs_accepts(ride_id, kept):
    # SQS refuses a group id with spaces, non-ASCII text or over 128 characters (moto does not check this):
    # such an id is replaced by its sha256, the same for every message of the ride.
    group_id = fifo_id(ride_id)
    assert FIFO_ID.fullmatch(group_id)
    assert group_id == (ride_id if kept else hashlib.sha256(ride_id.encode()).hexdigest())


def test_batches_respect_the_byte_limit_as_well_as_the_count():
    # Ten messages of 50 bytes each (44 of JSON body, 6 of partition key).
    same_size = [
        OutputMessage.of(f"item-{i}", f"key-{i}", f"ride-{i}", {"prediction": {"duration": 12.5, "ride_id": i}})
        for i in range(10)
    ]
    assert {len(json.dumps(m.body, separators=(",", ":"))) + len(m.partition_key) for m in same_size} == {50}
    assert {m.size for m in same_size} == {50}
    assert [len(b) for b in batches(same_size, max_count=500, max_bytes=3 * 50)] == [3, 3, 3, 1]
    assert [len(b) for b in batches(same_size, max_count=4, max_bytes=10**6)] == [4, 4, 2]
