"""The streaming path's wire formats, defined here once: what Lambda delivers, what it reads back, what we publish.

Event records (one per item of `{"Records": [...]}`), as Lambda builds them:

- Kinesis: `{"eventSource": "aws:kinesis", "eventSourceARN", "eventID": "<shard>:<sequence>", "awsRegion",
  "kinesis": {"data": <base64 payload>, "sequenceNumber", "partitionKey", "approximateArrivalTimestamp", ...}}`,
  known by its `kinesis.sequenceNumber`.
- SQS: `{"eventSource": "aws:sqs", "eventSourceARN", "messageId", "receiptHandle", "body": <payload text>,
  "attributes", "messageAttributes" (camelCase, unlike the SQS API), "md5OfBody", "awsRegion"}`, known by
  its `messageId`.

The partial-batch response (ReportBatchItemFailures): `{"batchItemFailures": [{"itemIdentifier": id}, ...]}`;
this handler adds `"predictions"`, which Lambda ignores. An exception, or an identifier not in the batch,
fails the whole batch.

A payload (Kinesis data or SQS body) is one JSON object: a flat record of the bundle's inputs (and its id
field), the classic course's `{"ride": {...}, "<id field>": id}`, or the generic `{"record": {...}, "id": id}`.

A prediction message: `{"model", "version", "prediction": {<output>: answer, <id key>: id}, "key"}`, where the
answer is the number or class label (plus `"probabilities"` when the bundle returns them) and the id key is the
manifest's id field, or `"id"` for a bundle without one (left out when the record came without an id).
A dead letter: `{"key", "itemIdentifier", "reason", "record": <the event record, replayable>}` and,
when the record had to be cut to fit SQS, `"dropped"` naming what was left out.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoring.model.manifest import Manifest

KINESIS_SOURCE = "aws:kinesis"
SQS_SOURCE = "aws:sqs"
FAILURES = "batchItemFailures"
ITEM_IDENTIFIER = "itemIdentifier"
# The payload wrappers: the classic course's (the id beside it under the id field's name) and the generic one.
RIDE_WRAPPER = "ride"
GENERIC_WRAPPER = "record"
WRAPPERS = (RIDE_WRAPPER, GENERIC_WRAPPER)
GENERIC_ID_KEY = "id"


# --- event records --------------------------------------------------------------------------------------------


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
        "eventSource": KINESIS_SOURCE,
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/local-stream-runner",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


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
        "eventSource": SQS_SOURCE,
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


def item_id(record: Any) -> str | None:
    """The id Lambda knows an event record by (sequence number or message id); None if it is neither kind."""
    source = record.get("eventSource") if isinstance(record, dict) else None
    if source == KINESIS_SOURCE and isinstance(record.get("kinesis"), dict) and record["kinesis"].get("sequenceNumber"):
        return str(record["kinesis"]["sequenceNumber"])
    if source == SQS_SOURCE and record.get("messageId"):
        return str(record["messageId"])
    return None


def payload_text(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """The payload of a record `item_id` recognised, as text, or why it has none."""
    if record.get("eventSource") == KINESIS_SOURCE:
        return _kinesis_text(record["kinesis"].get("data"))
    body = record.get("body")
    return (body, None) if isinstance(body, str) else (None, "the message has no text body")


def _kinesis_text(data: Any) -> tuple[str | None, str | None]:
    if not isinstance(data, str):
        return None, "the record has no base64 'data'"
    try:
        return base64.b64decode(data, validate=True).decode("utf-8"), None
    except binascii.Error:
        return None, "the record's data is not valid base64"
    except UnicodeDecodeError:
        return None, "the record's data is not UTF-8 text"


# --- the partial-batch response -------------------------------------------------------------------------------


def batch_response(failed_ids: Sequence[str], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """The handler's answer: the items to retry, in event order, and the prediction messages."""
    return {FAILURES: [{ITEM_IDENTIFIER: i} for i in failed_ids], "predictions": predictions}


def reported_failures(response: Any) -> set[str] | None:
    """The item ids a response reports as failed, read as Lambda reads it; None when it is not a valid response."""
    if response is None or response == "":
        return set()
    if not isinstance(response, Mapping):
        return None
    entries = response.get(FAILURES) or []
    ids = [entry.get(ITEM_IDENTIFIER) if isinstance(entry, Mapping) else None for entry in entries]
    if not all(isinstance(item, str) and item for item in ids):
        return None
    return {str(item) for item in ids}


# --- what is published ----------------------------------------------------------------------------------------


def message_id_key(manifest: Manifest) -> str:
    """The key a prediction message names its record's id by: the manifest's id field, else the generic one."""
    return manifest.id_field or GENERIC_ID_KEY


def prediction_message(manifest: Manifest, record_id: Any, answer: dict[str, Any], key: str) -> dict[str, Any]:
    """The published message: {"model", "version", "prediction": {**answer, id key: id}, "key"}."""
    prediction = answer if record_id is None else {**answer, message_id_key(manifest): record_id}
    return {"model": manifest.name, "version": manifest.version, "prediction": prediction, "key": key}


def dead_letter_body(key: str, item: str, reason: str, record: Any, dropped: str | None = None) -> dict[str, Any]:
    """A dead letter: the record's key, id and reason, the event record (None if cut) and what was dropped."""
    body: dict[str, Any] = {"key": key, ITEM_IDENTIFIER: item, "reason": reason, "record": record}
    if dropped is not None:
        body["dropped"] = dropped
    return body
