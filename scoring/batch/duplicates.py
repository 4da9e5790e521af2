"""Record ids a partition holds twice: found after the fact, when the primary key refuses a publish.

The first copy of an id is published; every later copy becomes a rejected row naming the repeat.
Positions are per shard: {shard index: {(file index in the plan, row position in that file): record id}}.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.batch.reader import read_chunks
from scoring.batch.rejects import raw_record_json
from scoring.batch.staging import ShardResult, read_staged
from scoring.errors import ScoringError

log = logging.getLogger(__name__)

Position = tuple[int, int]  # (the plan's file index, the row's place in that file)
Copies = dict[int, dict[Position, str]]


def duplicate_copies(shards: list[ShardResult]) -> Copies:
    """Per shard, the input rows (position -> id) whose id an earlier row of the partition has: the first copy wins."""
    hashes = [
        pd.util.hash_array(table.column("record_id").to_numpy(zero_copy_only=False).astype(object))
        for shard in shards
        for table in read_staged(shard.predictions_uri, columns=["record_id"])
    ]
    if not hashes:
        return {}
    unique, counts = np.unique(np.concatenate(hashes), return_counts=True)
    suspects = unique[counts > 1]
    if not len(suspects):
        return {}
    # Hash collisions are possible in principle: compare the suspects by their real ids.
    seen: set[str] = set()
    copies: Copies = {}
    for index, shard in enumerate(shards):
        for table in read_staged(shard.predictions_uri, columns=["record_id", "row", "file"]):
            ids = table.column("record_id").to_numpy(zero_copy_only=False).astype(object)
            rows = table.column("row").to_numpy()
            files = _files(table, index)
            for position in np.flatnonzero(np.isin(pd.util.hash_array(ids), suspects)):
                record_id = ids[position]
                if record_id in seen:
                    copies.setdefault(index, {})[(int(files[position]), int(rows[position]))] = record_id
                seen.add(record_id)
    return copies


def _files(table: pa.Table, shard_index: int) -> np.ndarray:
    # Staged before shards held pieces, a shard was one file, the one with its own index.
    if "file" in table.column_names:
        return table.column("file").to_numpy()
    return np.full(table.num_rows, shard_index, dtype=np.int32)


def is_repeated(table: pa.Table, repeated: dict[Position, str]) -> np.ndarray:
    """A mask of the staged rows that are later copies (by file and row)."""
    files = table.column("file").to_numpy() if "file" in table.column_names else None
    rows = table.column("row").to_numpy()
    mask = np.zeros(table.num_rows, dtype=bool)
    for file in {file for file, _ in repeated}:
        wanted = np.fromiter((row for f, row in repeated if f == file), dtype=np.int64)
        in_file = np.ones(table.num_rows, dtype=bool) if files is None else files == file
        mask |= in_file & np.isin(rows, wanted)
    return mask


def count(copies: Copies) -> int:
    """How many rows are later copies of an id."""
    return sum(len(rows) for rows in copies.values())


def duplicate_rejects(files: list[str], input_root: str, copies: Copies) -> Iterator[dict[str, object]]:
    """The later copies as rejected rows, each with its raw row read again from its input file (`files`: the plan's)."""
    by_file: dict[int, dict[int, str]] = {}
    for positions in copies.values():
        for (file, row), record_id in positions.items():
            by_file.setdefault(file, {})[row] = record_id
    for file, rows in sorted(by_file.items()):
        raws = _raw_rows(files[file], input_root, rows)
        for row, record_id in sorted(rows.items()):
            yield {
                "record_id": record_id,
                "reason": f"duplicate record id {record_id!r} in the partition; the first occurrence was scored",
                "raw_record": raws.get(row) or json.dumps({"record_id": record_id}),
            }


def _raw_rows(source_uri: str, input_root: str, copies: dict[int, str], chunk_rows: int = 65_536) -> dict[int, str]:
    """The raw rows at the given positions of an input file, as storable JSON (read again: duplicates are rare)."""
    wanted = np.array(sorted(copies), dtype=np.int64)
    found: dict[int, str] = {}
    offset = 0
    try:
        for chunk in read_chunks(source_uri, chunk_rows, input_root=input_root):
            rows = chunk.table.num_rows
            inside = wanted[(wanted >= offset) & (wanted < offset + rows)]
            if len(inside):
                records = chunk.table.take(pa.array(inside - offset)).to_pylist()
                found.update(zip(inside.tolist(), map(raw_record_json, records), strict=True))
            offset += rows
            if offset > wanted[-1]:
                break
    except ScoringError as exc:  # the file changed or vanished since it was scored: keep the ids at least
        log.warning("raw rows of duplicate ids in %s are not readable: %s", source_uri, exc)
    return found
