"""Reading one input partition: list its data files, then read each in bounded record batches.

Parquet and CSV, local or S3. S3 objects are streamed to a temporary file first, so the same
bounded batch reader serves both and memory never holds a whole file.

Input is hostile until read: a local file that is a symlink leading out of the input root is
skipped (it could name /etc/passwd), and errors name the file and line, never echo a row.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from scoring import storage
from scoring.errors import InvalidInput, PartitionNotFound
from scoring.partitions import PartitionKey

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".parquet", ".csv")
# Arrow's CSV parse errors end with the offending row's text: keep what comes before it.
_CSV_COLUMNS = re.compile(r"Expected (\d+) columns, got (\d+)")
# Large enough to keep Arrow's CSV parser efficient, small enough to bound memory.
CSV_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Chunk:
    """A batch of raw input rows; `text_input` says its cells are untyped text (CSV)."""

    table: pa.Table
    text_input: bool


def partition_uri(input_root: str, dataset: str, key: PartitionKey) -> str:
    return storage.join(input_root, dataset, *key.path_segments())


def list_partition_files(input_root: str, dataset: str, key: PartitionKey) -> list[str]:
    """The partition's data files (recursive, so a daily key also finds hour=HH/ below it)."""
    where = partition_uri(input_root, dataset, key)
    files = [
        uri
        for uri in storage.list_files(where)
        if uri.endswith(DATA_SUFFIXES)
        and not os.path.basename(uri).startswith(("_", "."))
        and _inside_root(input_root, uri)
    ]
    if not files:
        raise PartitionNotFound(f"partition {key} has no .parquet or .csv files under {where}")
    return files


def _inside_root(input_root: str, uri: str) -> bool:
    """False (with a warning) for a local file whose real path, symlinks followed, is outside the input root."""
    if storage.is_s3(uri):
        return True
    root = Path(input_root).resolve()
    real = Path(uri).resolve()
    if real == root or root in real.parents:
        return True
    log.warning("skipping %s: it is a symlink that leads out of the input root %s", uri, input_root)
    return False


def read_chunks(uri: str, chunk_rows: int) -> Iterator[Chunk]:
    """Record batches of at most `chunk_rows` rows (CSV: about that many), all columns kept."""
    with storage.local_copy(uri) as path:
        if uri.endswith(".parquet"):
            yield from _parquet_chunks(path, uri, chunk_rows)
        elif uri.endswith(".csv"):
            yield from _csv_chunks(path, uri)
        else:
            raise InvalidInput(f"{uri}: unsupported file type; expected .parquet or .csv")


def _parquet_chunks(path: str, uri: str, chunk_rows: int) -> Iterator[Chunk]:
    try:
        parquet = pq.ParquetFile(path)
        # A damaged page shows only when it is read, after the footer opened fine.
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield Chunk(pa.Table.from_batches([batch]), text_input=False)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{uri} is not a readable Parquet file: {_first_line(exc)}") from exc


def _csv_chunks(path: str, uri: str) -> Iterator[Chunk]:
    # Every column as text: CSV has no types, and the validator parses numbers and names bad cells.
    header = _csv_header(path, uri)
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True)
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    try:
        reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
        for batch in reader:
            yield Chunk(pa.Table.from_batches([batch]), text_input=True)
    except pa.ArrowException as exc:
        raise InvalidInput(f"{uri} is not a readable CSV file: {_csv_problem(path, exc)}") from exc


def _csv_header(path: str, uri: str) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    if not first.strip():
        raise InvalidInput(f"{uri} is empty: a CSV partition file needs a header row")
    return next(csv.reader([first]))


def _csv_problem(path: str, exc: Exception) -> str:
    """What is wrong, by line and column count, without the row's text (Arrow's message quotes the row)."""
    message = _first_line(exc)
    if "CSV parse error" not in message:
        return message[:200]
    counts = _CSV_COLUMNS.search(message)
    if counts is None:
        return "a row does not parse as CSV"
    expected = int(counts.group(1))
    line = _first_line_with_columns_other_than(path, expected)
    where = f"line {line}" if line else "a row"
    return f"{where} has {counts.group(2)} columns where the header has {expected}"


def _first_line_with_columns_other_than(path: str, expected: int) -> int | None:
    """The line number (1 = header) of the first record whose field count differs; read again only on error."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        records = csv.reader(handle)
        try:
            for record in records:
                if record and len(record) != expected:
                    return records.line_num
        except csv.Error:
            return records.line_num
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
