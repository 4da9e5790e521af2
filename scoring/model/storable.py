"""Text as PostgreSQL stores it: NUL and lone surrogates replaced, so no text column, COPY or JSONB refuses it.

One rule for every writer (the batch's rejects, the prediction log): it sits in the model kernel so that both
batch and monitoring can use it without importing each other.
"""

from __future__ import annotations

import json
import math
import re

# NUL and lone surrogates: PostgreSQL's text, COPY and JSONB refuse NUL, UTF-8 cannot encode a surrogate.
UNSTORABLE_TEXT = re.compile(r"[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD, so any text column or JSONB accepts it."""
    return UNSTORABLE_TEXT.sub(REPLACEMENT, text)


def storable_json(value: object, *, non_finite_as_text: bool) -> str:
    """`value` as JSON that PostgreSQL's JSONB accepts, at any depth.

    NUL and lone surrogates in keys and text become U+FFFD; other values (dates, decimals, bytes) become
    their text. NaN and infinities become "NaN"/"Infinity" strings when `non_finite_as_text` (a raw row
    kept as it came), else null (a logged input, where they mean "no value").
    """
    return json.dumps(_storable(value, non_finite_as_text), default=lambda item: clean_text(str(item)), allow_nan=False)


def _storable(value: object, non_finite_as_text: bool) -> object:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        if not non_finite_as_text:
            return None
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {clean_text(str(key)): _storable(item, non_finite_as_text) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(item, non_finite_as_text) for item in value]
    return value
