"""Rejected rows as the store keeps them: the canonical id, the reason, and the raw row as storable JSON."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.batch.staging import REJECT_SCHEMA
from scoring.model.record_ids import canonical_ids

# NUL and lone surrogates: PostgreSQL's text, COPY and JSONB refuse them, UTF-8 cannot encode a surrogate.
UNSTORABLE_TEXT = re.compile(r"[\x00\ud800-\udfff]")


def raw_record_json(record: dict[str, object]) -> str:
    """The raw row as JSON that PostgreSQL's JSONB accepts, at any depth.

    NaN and infinities become strings, not bare tokens; NUL and lone surrogates in keys and text
    become U+FFFD (JSONB refuses \\u0000, UTF-8 cannot encode a surrogate); other values (dates,
    decimals, bytes) become their text.
    """
    return json.dumps(_json_value(record), default=lambda value: clean_text(str(value)), allow_nan=False)


def _json_value(value: object) -> object:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {clean_text(str(key)): _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


def clean_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD, so any text column or JSONB accepts it."""
    return UNSTORABLE_TEXT.sub("\ufffd", text)


def rejected_ids(frame: pd.DataFrame, id_field: str, positions: np.ndarray) -> list[str | None]:
    """The canonical ids of the rows at `positions`, or null where the id itself was refused.

    Never the raw text that no column can hold.
    """
    return canonical_ids(frame[id_field].iloc[positions], nan_is_null=True)[0].tolist()


def reject_table(raw: pa.Table, reasons: pd.Series, ids: list[str | None] | pa.Array) -> pa.Table:
    """The rejected rows of one chunk (`reasons` indexed by row position, `ids` per rejected row) as a reject table."""
    if reasons.empty:
        return REJECT_SCHEMA.empty_table()
    positions = reasons.index.to_numpy()
    records = raw.take(pa.array(positions)).to_pylist()
    return pa.table(
        {
            "record_id": pa.array(ids, pa.string()),
            "reason": pa.array([clean_text(str(r)) for r in reasons], pa.string()),
            "raw_record": pa.array([raw_record_json(r) for r in records], pa.string()),
        },
        REJECT_SCHEMA,
    )
