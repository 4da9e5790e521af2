"""The wire formats in scoring/stream/wire.py: what the runner builds is what the handler reads, in Lambda's shape."""

from __future__ import annotations

import pytest

from scoring.stream.wire import (
    batch_response,
    item_id,
    kinesis_event_record,
    payload_text,
    reported_failures,
    sqs_event_record,
)

KINESIS_RECORD = {"PartitionKey": "256", "SequenceNumber": "4965", "Data": b'{"ride_id": 256}'}
SQS_MESSAGE = {
    "MessageId": "m-1",
    "ReceiptHandle": "r-1",
    "Body": '{"ride_id": 256}',
    "MessageAttributes": {"source": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}},
}


def test_a_kinesis_record_built_by_the_runner_is_read_back_by_the_handler():
    record = kinesis_event_record(KINESIS_RECORD, "shardId-000000000001", "arn:aws:kinesis:x:1:stream/s", "eu-west-1")
    assert record["eventID"] == "shardId-000000000001:4965" and record["kinesis"]["data"] == "eyJyaWRlX2lkIjogMjU2fQ=="
    assert (item_id(record), payload_text(record)) == ("4965", ('{"ride_id": 256}', None))


def test_an_sqs_record_built_by_the_runner_is_read_back_by_the_handler():
    record = sqs_event_record(SQS_MESSAGE, "arn:aws:sqs:x:1:q", "eu-west-1")
    # Lambda spells message attributes in camelCase and base64-encodes binary values.
    assert record["messageAttributes"]["source"] == {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Binary",
        "binaryValue": "AAE=",
    }
    assert (item_id(record), payload_text(record)) == ("m-1", ('{"ride_id": 256}', None))


@pytest.mark.parametrize(
    "record",
    [None, [], {"eventSource": "aws:s3"}, {"eventSource": "aws:kinesis", "kinesis": {}}, {"eventSource": "aws:sqs"}],
)
def test_a_record_without_a_kinesis_or_sqs_identity_has_no_item_id(record):
    assert item_id(record) is None


def test_the_response_is_lambdas_partial_batch_shape_and_reads_back():
    response = batch_response(["b", "a"], [{"prediction": {}}])
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "a"}],
        "predictions": [{"prediction": {}}],
    }
    assert reported_failures(response) == {"a", "b"}
