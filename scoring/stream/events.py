"""Stream events in, prediction messages out: the transport-agnostic half of the Lambda handler.

A Kinesis record carries its payload base64-encoded in `kinesis.data` and is named by its sequence
number; an SQS record carries it as text in `body` and is named by its message id. Whatever one
record holds, it fails alone while the rest of the batch is scored in one vectorised predict. Those
shapes, the answer's and the published message's are defined in wire.py.

A record that can never succeed (undecodable, invalid, unencodable) goes to the dead-letter queue
with its reason and counts as handled; only what a retry can fix (a write) is reported in
`batchItemFailures`, because Lambda restarts a Kinesis batch at the lowest reported sequence number
and would publish every later record again. Each message carries a stable `key` (from the event
source ARN and the item id), so a retried batch republishes under the same keys: consumers dedupe
on it, and an SQS FIFO output uses it as the deduplication id.

With a prediction log (SCORING_PREDICTION_LOG_URL), every published prediction is queued for
prediction_log with its record's inputs; the handler writes the queue at the end of the invocation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from scoring.errors import MalformedEvent
from scoring.model.bundle import Manifest
from scoring.model.predict import Predictor
from scoring.model.record_ids import canonical_id
from scoring.model.records import RecordOutcome, score_records
from scoring.monitoring.prediction_log import PredictionLog
from scoring.stream import wire
from scoring.stream.dead_letters import dead_letter
from scoring.stream.sinks import KINESIS_MAX_PARTITION_KEY, ItemFailure, OutputMessage, Sink

log = logging.getLogger(__name__)

# 128 bits of sha256: no two records of a stream collide in practice, and the key stays short.
KEY_HEX_DIGITS = 32


@dataclass(frozen=True)
class StreamItem:
    """One event record: the id Lambda knows it by, its stable key, the record as received, and its record or error.

    `record_id` is the record's id as sent (None when a bundle without an id field got none).
    """

    item_id: str
    key: str
    raw: Any = field(repr=False)
    record: dict[str, Any] | None = None
    error: str | None = None
    record_id: Any = None


class Payload(NamedTuple):
    """What one payload holds: the flat record to validate and its id as sent, or why there is none."""

    record: dict[str, Any] | None
    record_id: Any = None
    error: str | None = None


@dataclass(frozen=True)
class StreamResult:
    """What one event produced, in event order: its items, messages to publish, and items that failed."""

    items: list[StreamItem] = field(default_factory=list)
    outputs: list[OutputMessage] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    # Each output's item and outcome, in the order of `outputs` (for the prediction log).
    scored: list[tuple[StreamItem, RecordOutcome]] = field(default_factory=list)


def record_key(source_arn: Any, item_id: str) -> str:
    """The stable key of an input record: the same on every delivery, different for every record and source."""
    source = source_arn if isinstance(source_arn, str) else ""
    digest = hashlib.sha256(f"{source}\n{item_id}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:KEY_HEX_DIGITS]


def decode_event(event: Any, id_field: str | None, inputs: AbstractSet[str] = frozenset()) -> list[StreamItem]:
    """One StreamItem per Kinesis or SQS record of `event`, in order; a bad payload fails only its item.

    `inputs` are the bundle's input names: a payload key that is one of them is never taken for a wrapper.
    """
    if not isinstance(event, Mapping):
        raise MalformedEvent(f"the event is {_kind(event)}, not an object: it is not a Kinesis or SQS event")
    records = event.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("the event has no 'Records' list: it is not a Kinesis or SQS event")
    return [_decode_record(position, raw, id_field, inputs) for position, raw in enumerate(records)]


def _kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "an int", float: "a float"}
    return "null" if value is None else kinds.get(type(value), f"a {type(value).__name__}")


def _decode_record(position: int, raw: Any, id_field: str | None, inputs: AbstractSet[str]) -> StreamItem:
    item_id = wire.item_id(raw)
    # Without an identifier a record cannot be reported alone, so the whole batch must fail and be retried.
    if item_id is None:
        raise MalformedEvent(f"event record {position} is neither a Kinesis record nor an SQS message")
    key = record_key(raw.get("eventSourceARN"), item_id)
    try:
        payload = _read_payload(raw, id_field, inputs)
    except Exception as exc:
        # Whatever else a record holds, reading it fails that record, never its batch.
        payload = Payload(None, error=f"the record could not be read ({type(exc).__name__})")
    return StreamItem(item_id, key, raw, record=payload.record, error=payload.error, record_id=payload.record_id)


def _read_payload(raw: dict[str, Any], id_field: str | None, inputs: AbstractSet[str]) -> Payload:
    text, error = wire.payload_text(raw)
    if error is not None or text is None:
        return Payload(None, error=error)
    return parse_payload(text, id_field, inputs)


def parse_payload(text: str, id_field: str | None, inputs: AbstractSet[str] = frozenset()) -> Payload:
    """The flat record inside a JSON payload (flat, `{"ride": ...}` or `{"record": ...}`) and its id, or why not."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        return Payload(None, error=f"the payload is not valid JSON ({exc.msg} at position {exc.pos})")
    except (ValueError, RecursionError):
        # Python's own limits: an integer of over 4300 digits, or nesting deeper than the stack.
        return Payload(None, error="the payload is valid JSON but too large or too deeply nested to read")
    if not isinstance(payload, dict):
        return Payload(None, error="the payload is not a JSON object")
    # A key that names an input or the id is that value, never a wrapper: a bundle may call its id "record".
    wrappers = [key for key in wire.WRAPPERS if key in payload and key not in inputs and key != id_field]
    if len(wrappers) > 1:
        return Payload(None, error=f"the payload has both '{wrappers[0]}' and '{wrappers[1]}': send one wrapper")
    if not wrappers:
        return _with_id(payload, payload.get(id_field) if id_field else None, id_field)
    inner = payload[wrappers[0]]
    if not isinstance(inner, dict):
        return Payload(None, error=f"field '{wrappers[0]}': expected an object")
    # The id sits beside the wrapper, under the id field's name (the course's shape) or "id"; else inside it.
    beside = next((key for key in (id_field, wire.GENERIC_ID_KEY) if key and key in payload), None)
    if beside is None:
        return _with_id(inner, inner.get(id_field) if id_field else None, id_field)
    if id_field and id_field in inner and canonical_id(inner[id_field])[0] != canonical_id(payload[beside])[0]:
        # Neither may silently win: the record would be answered and logged under an id its sender did not mean.
        return Payload(
            None,
            error=f"the payload has two different ids, '{id_field}' inside '{wrappers[0]}' and "
            f"'{beside}' beside it: send one",
        )
    record = {**inner, id_field: payload[beside]} if id_field else inner
    return _with_id(record, payload[beside], id_field)


def _with_id(record: dict[str, Any], record_id: Any, id_field: str | None) -> Payload:
    """The record and its id, or why the id cannot be used.

    Each output names its record by the bundle's id field, so with one the id is required; a bundle
    without an id field takes an id when one is sent (it is echoed) and answers without otherwise.
    """
    text, reason = canonical_id(record_id)
    name = id_field or wire.GENERIC_ID_KEY
    if reason is not None:
        return Payload(None, error=f"id field '{name}': {reason}")
    if text is None:
        return Payload(None, error=f"missing id field '{name}'") if id_field else Payload(record)
    return Payload(record, record_id)


def _output(manifest: Manifest, item: StreamItem, outcome: RecordOutcome) -> OutputMessage:
    # Echo the id as sent (256 stays a number), so consumers can match it to their record; shard by its
    # canonical text, so 256 and "256" keep one shard (by the record key if there is none or Kinesis could not take it).
    text = canonical_id(item.record_id)[0]
    partition_key = text if text and len(text) <= KINESIS_MAX_PARTITION_KEY else item.key
    message = wire.prediction_message(manifest, item.record_id, outcome.answer(manifest.output), item.key)
    return OutputMessage.of(item.item_id, item.key, partition_key, message)


def manifest_inputs(manifest: Manifest) -> frozenset[str]:
    """The bundle's input names (never mistaken for a payload wrapper)."""
    return frozenset(spec.name for spec in manifest.inputs)


def score_event(predictor: Predictor, event: Any) -> StreamResult:
    """Decode every record, score the valid ones in one predict, encode their messages; say which items failed."""
    manifest = predictor.bundle.manifest
    items = decode_event(event, manifest.id_field, manifest_inputs(manifest))
    reasons = {position: item.error for position, item in enumerate(items) if item.error is not None}
    positions = [position for position, item in enumerate(items) if item.record is not None]
    outcomes = _score_each_alone_if_needed(predictor, [items[p].record for p in positions])
    outputs: list[OutputMessage] = []
    scored: list[tuple[StreamItem, RecordOutcome]] = []
    for position, outcome in zip(positions, outcomes, strict=True):
        if not outcome.ok or outcome.prediction is None:
            reasons[position] = outcome.error or "not scored"
            continue
        try:
            outputs.append(_output(manifest, items[position], outcome))
            scored.append((items[position], outcome))
        except Exception as exc:
            # Encoded before anything is written: one unencodable message fails its record, not a half-published batch.
            reasons[position] = f"the prediction message could not be built ({type(exc).__name__}: {str(exc)[:200]})"
    failures = [ItemFailure(items[p].item_id, reasons[p]) for p in sorted(reasons)]
    return StreamResult(items=items, outputs=outputs, failures=failures, scored=scored)


def _score_each_alone_if_needed(predictor: Predictor, records: list[Any]) -> list[RecordOutcome]:
    """Outcomes of one vectorised scoring; if it raises, each record scored alone so only the culprit fails.

    When several records all fail alone too, the fault is not a record's (the model, memory): re-raise, so
    the batch is retried rather than dead-lettered. A lone record cannot tell the two apart; it fails
    alone (dead-lettered, replayable) rather than holding its shard in a retry loop.
    """
    try:
        return score_records(predictor, records)
    except Exception as batch_error:
        log.warning(
            "scoring %d records at once raised %s; scoring each alone", len(records), type(batch_error).__name__
        )
        outcomes: list[RecordOutcome] = []
        raised = 0
        for position, record in enumerate(records):
            try:
                outcomes.append(replace(score_records(predictor, [record])[0], position=position))
            except Exception as exc:
                raised += 1
                reason = f"the record could not be scored ({type(exc).__name__})"
                outcomes.append(RecordOutcome(position, None, error=reason))
        if raised == len(records) > 1:
            raise
        return outcomes


def handle_event(
    predictor: Predictor,
    event: Any,
    sink: Sink | None,
    dead_letters: Sink | None = None,
    prediction_log: PredictionLog | None = None,
) -> dict[str, Any]:
    """Score an event, publish to `sink` (if any), dead-letter what can never succeed, answer Lambda.

    The answer holds `batchItemFailures` (what a retry may fix: failed writes, and without a dead-letter
    queue the bad records too) and `predictions` (the messages published, or produced when there is no sink).
    """
    result = score_event(predictor, event)
    write_failures = sink.write(result.outputs) if sink is not None and result.outputs else []
    not_written = {failure.item_id for failure in write_failures}
    for failure in write_failures:
        log.warning("stream item %s: output not written: %s", failure.item_id, failure.reason)
    # A refusal no retry changes (SQS's sender fault: a message it will never take) is dead-lettered too.
    refused_for_good = [f for f in write_failures if not f.retryable]
    permanent = result.failures + [replace(f, reason=f"output not written: {f.reason}") for f in refused_for_good]
    for failure in result.failures:
        log.warning("stream item %s failed: %s", failure.item_id, failure.reason)
    reported = [failure for failure in write_failures if failure.retryable]
    reported += _not_dead_lettered(result.items, permanent, dead_letters)
    published = [message.body for message in result.outputs if message.item_id not in not_written]
    if prediction_log is not None:
        _log_published(prediction_log, predictor.bundle.manifest, result, not_written)
    return wire.batch_response(_in_event_order(result.items, reported), published)


def _log_published(
    prediction_log: PredictionLog, manifest: Manifest, result: StreamResult, not_written: AbstractSet[str]
) -> None:
    """Queue the published predictions (a retry republishes the rest, and logs them then), named by the id as sent."""
    kept = [(item, outcome) for item, outcome in result.scored if item.item_id not in not_written]
    outcomes = [
        outcome
        if outcome.record_id is not None or item.record_id is None
        else replace(outcome, record_id=str(item.record_id))
        for item, outcome in kept
    ]
    prediction_log.record(outcomes, [item.record for item, _ in kept], manifest.name, manifest.version)


def _not_dead_lettered(
    items: Sequence[StreamItem], permanent: list[ItemFailure], dead_letters: Sink | None
) -> list[ItemFailure]:
    """The permanent failures still to report: all of them without a dead-letter queue, else those it refused."""
    if dead_letters is None or not permanent:
        return permanent
    by_id = {item.item_id: item for item in items}
    letters = [dead_letter(f.item_id, by_id[f.item_id].key, by_id[f.item_id].raw, f.reason) for f in permanent]
    refused = dead_letters.write(letters)
    for failure in refused:
        log.warning(
            "stream item %s: dead letter not written, reported for a retry: %s", failure.item_id, failure.reason
        )
    return refused


def _in_event_order(items: Sequence[StreamItem], failures: list[ItemFailure]) -> list[str]:
    """Failed item ids, once each, in the order the event lists them (Kinesis resumes from the first)."""
    failed = {failure.item_id for failure in failures}
    return [item_id for item_id in dict.fromkeys(item.item_id for item in items) if item_id in failed]
