"""Reading one input partition: list its data files, then read each in bounded record batches.

Parquet and CSV, local or S3. S3 objects are streamed to a temporary file first, so the same
bounded batch reader serves both and memory never holds a whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from scoring import storage
from scoring.errors import InvalidInput, PartitionNotFound
from scoring.partitions import PartitionKey

DATA_SUFFIXES = (".parquet", ".csv")
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
        if uri.endswith(DATA_SUFFIXES) and not os.path.basename(uri).startswith(("_", "."))
    ]
    if not files:
        raise PartitionNotFound(f"partition {key} has no .parquet or .csv files under {where}")
    return files


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
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{uri} is not a readable Parquet file: {exc}") from exc
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield Chunk(pa.Table.from_batches([batch]), text_input=False)


def _csv_chunks(path: str, uri: str) -> Iterator[Chunk]:
    # Every column as text: CSV has no types, and the validator parses numbers and names bad cells.
    header = _csv_header(path, uri)
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True)
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    try:
        reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
        for batch in reader:
            yield Chunk(pa.Table.from_batches([batch]), text_input=True)
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"{uri} is not a readable CSV file: {exc}") from exc


def _csv_header(path: str, uri: str) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    if not first.strip():
        raise InvalidInput(f"{uri} is empty: a CSV partition file needs a header row")
    import csv

    return next(csv.reader([first]))
