"""JSON in and out of the service, through orjson when it is installed (the `web` extra brings it).

orjson parses and writes a 100-record request in a tenth of the standard library's time. It is
stricter: it refuses NaN and Infinity literals and lone surrogates, which the service has always
read (and then refused by name, per field). So a body orjson refuses is read again by the standard
library, exactly as before: every body that parsed still parses to the same values, and every error
keeps its message. Integers beyond 64 bits orjson does not refuse but silently reads as floats
(-9223372036854775809 becomes -9223372036854775808.0, another id): a body holding a run of 19 or
more digits is read by the standard library too, so an id is the same here as in batch and stream.
Responses are written by orjson with keys in the order the code built them, as Flask's provider
does here (sort_keys off); what orjson cannot write (such an integer, echoed as an id) is written
by the standard library.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider, _default

try:
    import orjson
except ImportError:  # pragma: no cover - the web extra installs it; without it the standard library serves
    orjson = None  # type: ignore[assignment]

# 19 digits reach past 2**63; a shorter run is an integer orjson reads exactly (or a float's digits).
ORJSON_EXACT_DIGITS = 18
DIGITS_AS_ZEROS = bytes(ord("0") if ord("0") <= byte <= ord("9") else ord(" ") for byte in range(256))
# Keys that are not text (a classifier's integer classes, say) are written as text, as json.dumps does.
ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS if orjson is not None else 0


def has_digit_run(body: bytes, length: int) -> bool:
    """Whether `body` holds `length` ASCII digits in a row.

    Every digit is mapped to "0" and anything else to " ", then `length` zeros are looked for: linear, 1.5 ns a
    byte, where a regular expression's search backtracks on every long run (13 vs 147 us for a 100-record body;
    0.4 s for a megabyte of 300-digit numbers).
    """
    return b"0" * length in body.translate(DIGITS_AS_ZEROS)


def loads_fast(body: bytes) -> tuple[bool, Any]:
    """(True, document) when orjson parses the body; (False, None) when it is absent or refuses the body."""
    if orjson is None or has_digit_run(body, ORJSON_EXACT_DIGITS + 1):
        return False, None
    try:
        return True, orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, None


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing with orjson (reading request bodies is payload.load_json's job)."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self._written(obj).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(self._written(obj), mimetype=self.mimetype)  # type: ignore[return-value,arg-type]

    def _written(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=_default, option=ORJSON_OPTIONS)
        except TypeError:
            # An integer beyond 64 bits (a client's id, echoed as sent): the standard library writes any integer,
            # here as orjson writes the rest (compact, UTF-8, never a bare NaN).
            text = json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode()


def use_fast_json(app: Flask) -> None:
    """Write the app's JSON responses with orjson when it is installed; keep keys in the order written either way."""
    if orjson is not None:
        app.json = OrjsonProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
