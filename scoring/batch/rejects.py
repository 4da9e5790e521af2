"""Rejected rows as the store keeps them: the canonical id, the reason, and the raw row as storable JSON."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.batch.staging import REJECT_SCHEMA
from scoring.model.record_ids import canonical_ids
from scoring.model.storable import clean_text, storable_json


def raw_record_json(record: dict[str, object]) -> str:
    """The raw row as JSON that PostgreSQL's JSONB accepts (NaN and infinities kept as strings)."""
    return storable_json(record, non_finite_as_text=True)


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
