"""The /predict wire format: request body to records, scored outcomes to the response body."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scoring.errors import InvalidInput
from scoring.model import Manifest, RecordOutcome
from webservice.errors import ApiError
from webservice.jsonio import has_digit_run, loads_fast

BATCH_KEY = "records"
# A double holds at most about 1.8e308, so longer integer literals are read as floats (infinity when too large,
# which the validator refuses by name); as ints they would overflow inside the validator or hit Python's digit limit.
MAX_INTEGER_DIGITS = 308


@dataclass(frozen=True)
class PredictRequest:
    """Records to score, and whether they came as one flat record or as `{"records": [...]}`."""

    records: list[Any]
    batch: bool


def is_json(mimetype: str) -> bool:
    """True for application/json and the application/*+json family."""
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def require_json(mimetype: str) -> None:
    """ApiError 415 unless the request says its body is JSON."""
    if not is_json(mimetype):
        raise ApiError(415, "unsupported_media_type", "expected Content-Type application/json")


def parse_int(literal: str) -> int | float:
    """A JSON integer literal as int, or as float when it has more digits than a double's range."""
    digits = len(literal) - literal.startswith("-")
    return int(literal) if digits <= MAX_INTEGER_DIGITS else float(literal)


def load_json(body: bytes) -> Any:
    """JSON from UTF-8 bytes, reading overlong integer literals as floats.

    UTF-8 only, as RFC 8259 asks: json.loads would also guess UTF-16 and UTF-32, which the digit
    scan below cannot see into. The per-integer hook is slow, so it runs only when needed.
    orjson reads the bodies it accepts first (webservice.jsonio: the same values, ten times faster).
    """
    parsed, document = loads_fast(body)
    if parsed:
        return document
    text = body.decode("utf-8")
    if not has_digit_run(body, MAX_INTEGER_DIGITS + 1):
        return json.loads(text)
    return json.loads(text, parse_int=parse_int)


def parse_predict_body(body: bytes, max_records: int) -> PredictRequest:
    """The records in a /predict body, or an ApiError saying what is wrong with it."""
    try:
        document = load_json(body)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc.msg} at {where}") from None
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8: bad byte at offset {exc.start}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_body", 'the body must be a JSON object: one record, or {"records": [record, ...]}')
    if BATCH_KEY not in document:
        return PredictRequest(records=[document], batch=False)
    records = document[BATCH_KEY]
    if not isinstance(records, list):
        raise ApiError(400, "invalid_body", f"'{BATCH_KEY}' must be an array of records")
    if len(records) > max_records:
        raise ApiError(413, "too_many_records", f"{len(records)} records in one request; the limit is {max_records}")
    return PredictRequest(records=records, batch=True)


def require_scored(outcomes: Sequence[RecordOutcome], records: Sequence[Any], id_field: str | None) -> None:
    """Raise InvalidInput naming every record the core rejected (invalid input, or a prediction that overflowed)."""
    problems = [
        (outcome.position, client_id(records[outcome.position], outcome, id_field), outcome.error)
        for outcome in outcomes
        if outcome.error is not None
    ]
    if problems:
        raise InvalidInput(f"record {problems[0][0]}: {problems[0][2]}", problems)


def client_id(record: Any, outcome: RecordOutcome, id_field: str | None) -> str | int | float | None:
    """The record's id as the client sent it, when the id rule accepted it; nothing else is echoed.

    The core gives every outcome, a rejected record's too, the id's canonical text or None: an id that
    is NaN, infinite, a boolean, an object or overlong has none and is left out (its reason names the field).
    """
    if id_field is None or outcome.record_id is None or not isinstance(record, dict):
        return None
    return record.get(id_field)


def render_single(outcome: RecordOutcome, manifest: Manifest) -> dict[str, Any]:
    """`{<output>: answer, "model_name": ..., "model_version": ...}` (plus "probabilities" when the bundle returns them)."""
    return {**outcome.answer(manifest.output), "model_name": manifest.name, "model_version": manifest.version}


def render_batch(outcomes: Sequence[RecordOutcome], records: Sequence[Any], manifest: Manifest) -> dict[str, Any]:
    """Predictions in request order, each carrying the record's id when it had one."""
    predictions = []
    id_field = manifest.id_field
    for outcome in outcomes:
        prediction = outcome.answer(manifest.output)
        record_id = client_id(records[outcome.position], outcome, id_field)
        if id_field is not None and record_id is not None:
            prediction[id_field] = record_id
        predictions.append(prediction)
    return {"predictions": predictions, "model_name": manifest.name, "model_version": manifest.version}
