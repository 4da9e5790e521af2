"""PostgreSQL's binary COPY format, built column-wise in Arrow: no Python call per row.

A binary COPY skips the server's text parsing of numbers and timestamps, and building it costs
a fifth of rendering the same rows as CSV (bench/batch.py), so the publish runs at the speed of
the server's inserts and index updates.

Layout (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"): a header, then
per row a 16-bit field count and each field as a 32-bit length (-1 for NULL) and its bytes, then
a 16-bit -1. Every row of a batch shares its run's constants (job, partition, model, run id,
scored_at), so those fields are one precomputed head joined in front of the per-row fields.
"""

from __future__ import annotations

import struct
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
# PostgreSQL counts timestamps in microseconds from 2000-01-01 UTC.
_PG_EPOCH_US = 946_684_800_000_000
# The jsonb binary input format: a version byte, then the JSON text.
_JSONB_VERSION = b"\x01"


def _field(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def timestamp_field(moment: datetime) -> bytes:
    """A timestamptz field's bytes: microseconds since 2000-01-01 UTC, big-endian."""
    whole = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return struct.pack(">q", whole - _PG_EPOCH_US)


def constant_head(field_count: int, texts: tuple[str, ...], scored_at: datetime) -> bytes:
    """The start every row of a batch shares: its field count, the constant text fields, scored_at."""
    head = struct.pack(">h", field_count)
    for value in texts:
        head += _field(value.encode())
    return head + _field(timestamp_field(scored_at))


def binary_rows(head: bytes, prediction: np.ndarray, texts: list[pa.Array], jsonb: pa.Array | None = None) -> pa.Buffer:
    """The rows' bytes: `head`, the float8 prediction, each of `texts` (NULL allowed), then `jsonb` if given.

    Built by Arrow's element-wise binary join, so each row costs a few memory copies in C++.
    """
    rows = len(prediction)
    fixed = np.empty(rows, dtype=[("length", ">i4"), ("value", ">f8")])
    fixed["length"] = 8
    fixed["value"] = prediction
    parts: list[pa.Array | pa.Scalar] = [pa.scalar(head, pa.binary()), _fixed_binary(fixed.view(np.uint8), 12, rows)]
    for column in texts:
        parts.extend(_variable_field(column))
    if jsonb is not None:
        parts.extend(_variable_field(jsonb, prefix=_JSONB_VERSION))
    joined = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.binary()))
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32, count=rows + 1, offset=joined.offset * 4)
    return joined.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def _fixed_binary(data: np.ndarray, width: int, rows: int) -> pa.Array:
    array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), rows, [None, pa.py_buffer(data)])
    return pc.cast(array, pa.binary())


def _variable_field(column: pa.Array, prefix: bytes = b"") -> list[pa.Array]:
    """A text column as its length fields (-1 for NULL) and its bytes (empty for NULL), with an optional prefix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = pc.cast(column, pa.binary())
    lengths = pc.binary_length(values).to_numpy(zero_copy_only=False)
    nulls = pc.is_null(values).to_numpy(zero_copy_only=False)
    big_endian = np.where(nulls, -1, lengths + len(prefix)).astype(">i4")
    lengths_field = _fixed_binary(big_endian.view(np.uint8), 4, len(column))
    body = pc.fill_null(values, pa.scalar(b"", pa.binary()))
    if prefix:
        prefixed = pc.binary_join_element_wise(pa.scalar(prefix, pa.binary()), body, pa.scalar(b"", pa.binary()))
        body = pc.if_else(pa.array(nulls), body, prefixed)
    return [lengths_field, body]
