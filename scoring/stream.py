"""Stream events in, prediction messages out: the transport-agnostic half of the Lambda handler.

A Kinesis record carries its payload base64-encoded in `kinesis.data` and is named by its sequence
number; an SQS record carries it as text in `body` and is named by its message id. Those names are
what `batchItemFailures` reports, so a record that cannot be decoded, validated or written fails
alone while the rest of the batch is scored in one vectorised predict and published.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scoring.bundle import Manifest
from scoring.errors import InvalidInput
from scoring.predict import Predictor
from scoring.record_ids import canonical_id
from scoring.records import score_records

log = logging.getLogger(__name__)

# The classic tutorial wraps the features: {"ride": {...}, "ride_id": 256}.
RIDE_KEY = "ride"


@dataclass(frozen=True)
class StreamItem:
    """One event record: the identifier Lambda knows it by, and its ride, or why it has none."""

    item_id: str
    record: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class OutputMessage:
    """A prediction to publish, with the input item it answers (reported if the write fails)."""

    item_id: str
    partition_key: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ItemFailure:
    """An input item that failed, and why (logged, never sent back to the event source)."""

    item_id: str
    reason: str


@dataclass(frozen=True)
class StreamResult:
    """What one event produced: every item id, messages to publish and items that failed, in event order."""

    item_ids: list[str] = field(default_factory=list)
    outputs: list[OutputMessage] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)


class Sink(Protocol):
    """Somewhere prediction messages go; `write` answers the items whose message did not get there."""

    def write(self, messages: Sequence[OutputMessage]) -> list[ItemFailure]: ...


def decode_event(event: Mapping[str, Any], id_field: str) -> list[StreamItem]:
    """One StreamItem per Kinesis or SQS record of `event`, in order; a bad payload fails only its item."""
    records = event.get("Records")
    if not isinstance(records, list):
        raise InvalidInput("the event has no 'Records' list: it is not a Kinesis or SQS event")
    return [_decode_record(position, raw, id_field) for position, raw in enumerate(records)]


def _decode_record(position: int, raw: Any, id_field: str) -> StreamItem:
    source = raw.get("eventSource") if isinstance(raw, dict) else None
    # Without an identifier a record cannot be reported alone, so the whole batch must fail and be retried.
    if source == "aws:kinesis" and isinstance(raw.get("kinesis"), dict) and raw["kinesis"].get("sequenceNumber"):
        item_id = str(raw["kinesis"]["sequenceNumber"])
        text, error = _kinesis_text(raw["kinesis"].get("data"))
    elif source == "aws:sqs" and raw.get("messageId"):
        item_id = str(raw["messageId"])
        body = raw.get("body")
        text, error = (body, None) if isinstance(body, str) else (None, "the message has no text body")
    else:
        raise InvalidInput(f"event record {position} is neither a Kinesis record nor an SQS message")
    if error is not None or text is None:
        return StreamItem(item_id, error=error)
    record, error = parse_payload(text, id_field)
    return StreamItem(item_id, record=record, error=error)


def _kinesis_text(data: Any) -> tuple[str | None, str | None]:
    if not isinstance(data, str):
        return None, "the record has no base64 'data'"
    try:
        return base64.b64decode(data, validate=True).decode("utf-8"), None
    except binascii.Error:
        return None, "the record's data is not valid base64"
    except UnicodeDecodeError:
        return None, "the record's data is not UTF-8 text"


def parse_payload(text: str, id_field: str) -> tuple[dict[str, Any] | None, str | None]:
    """The flat ride record inside a JSON payload (tutorial-wrapped or flat), or why there is none."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"the payload is not valid JSON ({exc.msg} at position {exc.pos})"
    except (ValueError, RecursionError):
        # Python's own limits: an integer of over 4300 digits, or nesting deeper than the stack.
        return None, "the payload is valid JSON but too large or too deeply nested to read"
    if not isinstance(payload, dict):
        return None, "the payload is not a JSON object"
    record = payload
    if RIDE_KEY in payload:
        ride = payload[RIDE_KEY]
        if not isinstance(ride, dict):
            return None, f"field '{RIDE_KEY}': expected an object"
        # The id sits beside "ride" in the tutorial shape; the features inside it.
        record = {**ride, id_field: payload[id_field]} if id_field in payload else ride
    id_error = _id_problem(record, id_field)
    return (None, id_error) if id_error else (record, None)


def _id_problem(record: Mapping[str, Any], id_field: str) -> str | None:
    """Each output names its ride, so a stream record without a usable id cannot be answered."""
    text, reason = canonical_id(record.get(id_field))
    if reason is not None:
        return f"id field '{id_field}': {reason}"
    return f"missing id field '{id_field}'" if text is None else None


def build_output(manifest: Manifest, record_id: Any, value: float) -> dict[str, Any]:
    """The published message: {"model": name, "version": v, "prediction": {output: value, id_field: id}}."""
    return {
        "model": manifest.name,
        "version": manifest.version,
        "prediction": {manifest.output: value, manifest.id_field: record_id},
    }


def score_event(predictor: Predictor, event: Mapping[str, Any]) -> StreamResult:
    """Decode every record, score all the valid ones in one predict, and say which items failed."""
    manifest = predictor.bundle.manifest
    items = decode_event(event, manifest.id_field)
    decoded = [item for item in items if item.record is not None]
    outcomes = score_records(predictor, [item.record for item in decoded])
    scoring_errors: dict[str, str] = {}
    outputs: list[OutputMessage] = []
    for item, outcome in zip(decoded, outcomes, strict=True):
        if outcome.ok and outcome.prediction is not None and item.record is not None:
            # Echo the id as sent (256 stays a number), so consumers can match it to their ride.
            record_id = item.record[manifest.id_field]
            body = build_output(manifest, record_id, outcome.prediction)
            outputs.append(OutputMessage(item.item_id, str(record_id), body))
        else:
            scoring_errors[item.item_id] = outcome.error or "not scored"
    failures = [
        ItemFailure(item.item_id, item.error or scoring_errors[item.item_id])
        for item in items
        if item.record is None or item.item_id in scoring_errors
    ]
    return StreamResult(item_ids=[item.item_id for item in items], outputs=outputs, failures=failures)


def handle_event(predictor: Predictor, event: Mapping[str, Any], sink: Sink | None) -> dict[str, Any]:
    """Score an event, publish to `sink` (if any), and answer Lambda's partial-batch response.

    The answer holds `batchItemFailures` (bad records and failed writes, which the event source
    retries) and `predictions` (the messages that were published, or produced when there is no sink).
    """
    result = score_event(predictor, event)
    write_failures = sink.write(result.outputs) if sink is not None and result.outputs else []
    not_written = {failure.item_id for failure in write_failures}
    failures = result.failures + write_failures
    for failure in failures:
        log.warning("stream item %s failed: %s", failure.item_id, failure.reason)
    return {
        "batchItemFailures": [{"itemIdentifier": item_id} for item_id in _in_event_order(result.item_ids, failures)],
        "predictions": [message.body for message in result.outputs if message.item_id not in not_written],
    }


def _in_event_order(item_ids: list[str], failures: list[ItemFailure]) -> list[str]:
    """Failed item ids, once each, in the order the event lists them (Kinesis resumes from the first)."""
    failed = {failure.item_id for failure in failures}
    return [item_id for item_id in dict.fromkeys(item_ids) if item_id in failed]
