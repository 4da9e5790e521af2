"""The prediction log's rows as the text of a PostgreSQL COPY, and the COPY that sends them.

One line per scored record, one JSON serialisation per record (orjson where installed). Every value is made
storable first (NUL and lone surrogates replaced, NaN as null), so one odd record never loses its batch.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, Protocol

from scoring.model.storable import clean_text, storable_json

try:  # in the web extra; the Lambda zip may go without it and serialise with json
    import orjson
except ImportError:  # pragma: no cover - depends on the install
    orjson = None  # type: ignore[assignment]

COLUMNS = ("source", "logged_at", "model_name", "model_version", "record_id", "inputs", "prediction", "label")
COPY_SQL = f"COPY prediction_log ({', '.join(COLUMNS)}) FROM STDIN"
# SQLSTATE class of "data exception": the row's values were refused, the connection is fine.
DATA_EXCEPTION = "22"
# Bytes psycopg2 reads from the COPY buffer per message.
COPY_CHUNK = 1 << 20
# COPY's text format: NULL, and the characters a value must escape (plus what clean_text replaces).
COPY_NULL = "\\N"
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00\ud800-\udfff]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# orjson writes NaN and infinity as null (as the log wants), numpy scalars as numbers, other keys as text.
_ORJSON_OPTIONS = (orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) if orjson is not None else 0


class Outcome(Protocol):
    """What the log needs of a scored record (scoring.model.records.RecordOutcome has it)."""

    @property
    def record_id(self) -> str | None: ...
    @property
    def prediction(self) -> float | None: ...
    @property
    def label(self) -> object | None: ...


def copy_line(prefix: str, outcome: Outcome, value: Any, fields: tuple[str, ...] | None) -> str:
    """One record's COPY text line: the call's prefix, then record id, inputs, prediction and label."""
    if type(value) is tuple and fields is not None:
        record = dict(zip(fields, value, strict=False))  # the getter made it len(fields) long: no check
    else:
        record = value if isinstance(value, dict) else {}
    record_id, label = outcome.record_id, outcome.label
    return (
        f"{prefix}{COPY_NULL if record_id is None else copy_text(str(record_id))}\t{_copy_json(record)}\t"
        f"{float(outcome.prediction)!r}\t{COPY_NULL if label is None else copy_text(str(label))}\n"  # type: ignore[arg-type]
    )


def copy_text(text: str) -> str:
    """`text` as a COPY text-format value: storable (clean_text), with backslash, tab and line ends escaped."""
    if _COPY_SPECIAL.search(text) is None:
        return text
    return clean_text(text).translate(_COPY_ESCAPES)


def _copy_json(record: dict[str, Any]) -> str:
    """The record's storable JSON (as inputs_json) as a COPY text-format value."""
    if orjson is not None:
        try:
            data = orjson.dumps(record, default=str, option=_ORJSON_OPTIONS)
        except (TypeError, ValueError):  # a lone surrogate (orjson refuses it), an integer past 64 bits, ...
            data = b"\\u0000"
        # A NUL becomes \u0000, which jsonb refuses (orjson writes every other character as UTF-8, never \ud...):
        # that record, and one orjson refused, take the cleaning path.
        text = inputs_json(record) if b"\\u0000" in data else data.decode()
    else:
        text = inputs_json(record)
    # JSON has no raw tab or line end; its escapes' backslashes are COPY's escape character.
    return text.replace("\\", "\\\\") if "\\" in text else text


def copy_lines(connection: Any, lines: list[str]) -> None:
    """Send the lines to prediction_log with one COPY and commit (a lone surrogate raises before sending)."""
    data = "".join(lines).encode("utf-8")
    cursor = connection.cursor()
    try:
        if hasattr(cursor, "copy_expert"):  # psycopg2
            cursor.copy_expert(COPY_SQL, io.BytesIO(data), size=COPY_CHUNK)
        else:  # pg8000: an iterable of bytes is sent as it is
            cursor.execute(COPY_SQL, stream=[data])
    finally:
        cursor.close()
    connection.commit()


def inputs_json(record: dict[str, Any]) -> str:
    """The record as JSON text PostgreSQL's jsonb takes: NaN and infinity as null (JSON has neither), NUL and
    lone surrogates replaced in keys and values at any depth (jsonb refuses the first, UTF-8 cannot encode the
    second), so one odd record never loses its batch."""
    try:
        text = json.dumps(record, default=str, allow_nan=False)
    except ValueError:
        text = ""
    # The usual record has no escape to worry about; any \u0000 or \udXXX (a surrogate, paired or not) is
    # re-read value by value, so an emoji costs a walk but never a row.
    if text and "\\u0000" not in text and "\\ud" not in text:
        return text
    return storable_json(record, non_finite_as_text=False)


def is_data_error(exc: BaseException) -> bool:
    """Whether the database (or the driver, before sending) refused the values, not the connection or a lock."""
    if isinstance(exc, ValueError):  # a lone surrogate UTF-8 cannot encode, refused before sending
        return True
    code = getattr(exc, "pgcode", None)  # psycopg2
    if code is None and exc.args and isinstance(exc.args[0], dict):  # pg8000: the server's fields by code
        code = exc.args[0].get("C")
    return isinstance(code, str) and code.startswith(DATA_EXCEPTION)
