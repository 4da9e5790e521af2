"""Stream events in: each Kinesis or SQS record of an event as a StreamItem, its payload read, its id checked.

A Kinesis record carries its payload base64-encoded in `kinesis.data` and is named by its sequence
number; an SQS record carries it as text in `body` and is named by its message id (those shapes are
defined in wire.py). Whatever one record holds, it fails alone: only an event that is not a list of
records, or a record Lambda could not be told about, fails the batch. Each item carries a stable `key`
(from the event source ARN and the item id), so a retried batch republishes under the same keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from scoring.errors import MalformedEvent
from scoring.model.manifest import Manifest
from scoring.model.record_ids import canonical_id
from scoring.stream import wire

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


def manifest_inputs(manifest: Manifest) -> frozenset[str]:
    """The bundle's input names (never mistaken for a payload wrapper)."""
    return frozenset(spec.name for spec in manifest.inputs)
