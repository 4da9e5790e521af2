"""Record ids: one rule in every mode, so a ride is named the same in batch, online and stream.

An id is an integer or a string. Its canonical text is what every table, response and stream
message carries: 256, 256.0 and "256" are all "256"; surrounding white space is not part of an
id (" 7 " is "7"). An id that no table, index or consumer could hold is refused by name: a
boolean, an object, NaN or infinity, more than MAX_ID_LENGTH characters (a B-tree index entry
is limited), or a control character or lone surrogate (COPY, JSONB and UTF-8 refuse them).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

MAX_ID_LENGTH = 128
# NUL and the other C0 controls, DEL, and the surrogate range (not encodable as UTF-8).
UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
NOT_AN_ID = "expected an integer or a string"


def canonical_id(value: object, *, nan_is_null: bool = False) -> tuple[str | None, str | None]:
    """(text, None) for a usable id, (None, None) for a null one, (None, reason) for one that is refused.

    `nan_is_null` is for typed float columns, where NaN is how a missing value is stored; in JSON,
    NaN was sent on purpose and is refused.
    """
    if value is None:
        return None, None
    if isinstance(value, (bool, np.bool_)):
        return None, f"{NOT_AN_ID}, got a boolean"
    if isinstance(value, (int, np.integer)):
        return _text_id(str(int(value)))
    if isinstance(value, (float, np.floating)):
        return _float_id(float(value), nan_is_null)
    if isinstance(value, str):
        return _text_id(value)
    return None, f"{NOT_AN_ID}, got {_kind(value)}"


def _float_id(value: float, nan_is_null: bool) -> tuple[str | None, str | None]:
    if math.isnan(value):
        return (None, None) if nan_is_null else (None, f"{NOT_AN_ID}, got NaN")
    if math.isinf(value):
        return None, f"{NOT_AN_ID}, got infinity"
    return _text_id(str(int(value)) if value.is_integer() else repr(value))


def _text_id(value: str) -> tuple[str | None, str | None]:
    text = value.strip()
    if not text:
        return None, None
    if len(text) > MAX_ID_LENGTH:
        return None, f"is longer than {MAX_ID_LENGTH} characters"
    bad = UNSTORABLE.search(text)
    if bad is not None:
        if "\ud800" <= bad.group() <= "\udfff":
            return None, "is not valid Unicode text (a lone surrogate)"
        return None, "contains a control character"
    return text, None


def _kind(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def canonical_ids(column: pd.Series, *, nan_is_null: bool) -> tuple[pd.Series, np.ndarray]:
    """Canonical text per value (None where null or refused), and the refusal reason per value (or None)."""
    rows = len(column)
    reasons = np.full(rows, None, dtype=object)
    if pd.api.types.is_integer_dtype(column.dtype) and not column.hasnans:
        # The common case (an int64 column), without a Python call per row.
        return column.astype(str).astype(object), reasons
    values = column.to_numpy(dtype=object)
    # The vectorised path treats NaN as null, which only a typed column means; JSON values go one by one.
    if nan_is_null and pd.api.types.infer_dtype(values, skipna=True) == "string":
        return _canonical_strings(column, values, reasons)
    texts = np.full(rows, None, dtype=object)
    for position, value in enumerate(values):
        if _is_null(value, nan_is_null):
            continue
        texts[position], reasons[position] = canonical_id(value, nan_is_null=nan_is_null)
    return pd.Series(texts, index=column.index, dtype=object), reasons


def _canonical_strings(column: pd.Series, values: np.ndarray, reasons: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """A column of text ids (a CSV or a string Parquet column): checked with vectorised string operations."""
    stripped = pd.Series(values, index=column.index, dtype=object).str.strip()
    suspect = (stripped.str.len() > MAX_ID_LENGTH) | stripped.str.contains(UNSTORABLE, na=False)
    texts = stripped.where(stripped.str.len() > 0, None)
    for position in np.flatnonzero(suspect.to_numpy()):
        _, reasons[position] = canonical_id(values[position])
    return texts.where(~suspect, None).astype(object), reasons


def _is_null(value: object, nan_is_null: bool) -> bool:
    return value is None or value is pd.NA or (nan_is_null and isinstance(value, float) and math.isnan(value))
