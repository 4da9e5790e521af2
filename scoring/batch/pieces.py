"""Shards sized by work: a partition's files cut into pieces and packed into shards of about `shard_rows` rows.

A piece is one file, or a run of consecutive row groups of one Parquet file. Small files group
together into one shard; a large Parquet file splits at its row-group boundaries (the only places a
reader can start without reading what comes before), so a single 2M-row file spreads over workers.
Row counts come from the Parquet footer, read at plan time: a few KB per file, no data.

CSV files stay whole. A byte range of a CSV cannot be cut safely without reading it: a quoted field
may hold a newline, so the first line break after an offset need not end a record, and the row
number a derived id needs would be unknown without counting every line before the range. A CSV is
packed by its size (CSV_BYTES_PER_ROW) instead of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

# A CSV file's rows, for packing only, are estimated from its size (the demo's rides are ~60 bytes a row).
CSV_BYTES_PER_ROW = 64


@dataclass(frozen=True)
class FileLayout:
    """What planning knows of one input file: its row groups' row counts (Parquet) or its size (CSV)."""

    group_rows: tuple[int, ...] | None = None  # None: not splittable (CSV)
    size_bytes: int = 0

    @property
    def rows(self) -> int:
        """Its rows: exact for Parquet, estimated from its size for CSV."""
        if self.group_rows is None:
            return max(1, self.size_bytes // CSV_BYTES_PER_ROW)
        return sum(self.group_rows)


@dataclass(frozen=True)
class Piece:
    """A file of the plan (by index), whole or as row groups [first_group, end_group)."""

    file: int
    first_group: int | None = None
    end_group: int | None = None
    rows: int = 0  # exact for Parquet; an estimate for CSV

    @property
    def row_groups(self) -> tuple[int, int] | None:
        if self.first_group is None or self.end_group is None:
            return None
        return (self.first_group, self.end_group)

    def to_dict(self) -> dict[str, object]:
        groups = None if self.row_groups is None else list(self.row_groups)
        return {"file": self.file, "groups": groups, "rows": self.rows}

    @classmethod
    def from_dict(cls, raw: dict) -> Piece:
        groups = raw.get("groups")
        first, end = (None, None) if groups is None else (int(groups[0]), int(groups[1]))
        return cls(file=int(raw["file"]), first_group=first, end_group=end, rows=int(raw.get("rows", 0)))


def pack_shards(layouts: list[FileLayout], shard_rows: int) -> list[list[Piece]]:
    """Pack the files, in order, into shards of about `shard_rows` rows.

    Units are row groups (Parquet) or whole files (CSV); a shard closes before a unit that would take
    it past `shard_rows`, so a shard exceeds it only when one unit alone does. Consecutive row groups
    of one file in one shard make one piece. Every file appears, even an empty one (its header is
    still checked when it is read).
    """
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be positive, got {shard_rows}")
    shards: list[list[Piece]] = []
    current: list[Piece] = []
    current_rows = 0
    for file, layout in enumerate(layouts):
        for first, end, rows in _units(layout):
            if current and current_rows + rows > shard_rows:
                shards.append(current)
                current, current_rows = [], 0
            last = current[-1] if current else None
            if last is not None and last.file == file and first is not None and last.end_group == first:
                current[-1] = Piece(file, last.first_group, end, last.rows + rows)
            else:
                current.append(Piece(file, first, end, rows))
            current_rows += rows
    if current:
        shards.append(current)
    return shards


def _units(layout: FileLayout) -> list[tuple[int | None, int | None, int]]:
    """The file's indivisible units: (first group, end group, rows), or one whole-file unit."""
    if layout.group_rows is None or not layout.group_rows:
        return [(None, None, layout.rows if layout.group_rows is None else 0)]
    return [(group, group + 1, rows) for group, rows in enumerate(layout.group_rows)]


def whole_files(count: int) -> list[list[Piece]]:
    """One shard per file: how plans made before pieces existed are read."""
    return [[Piece(file)] for file in range(count)]
