"""Reading one input partition: list its data files, then read each in bounded record batches.

Parquet and CSV, local or S3. S3 objects are streamed to a temporary file first, so the same
bounded batch reader serves both and memory never holds a whole file.

Input is hostile until read: a local file that is a symlink leading out of the input root is
skipped when listed and refused when opened (a link swapped in after planning could name
/etc/passwd), and errors name the file and line, never echo a row.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from scoring import aws, storage
from scoring.batch.options import validate_dataset
from scoring.batch.partitions import PartitionKey
from scoring.batch.pieces import FileLayout
from scoring.errors import PartitionNotFound, UnreadableInput

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".parquet", ".csv")
# Arrow's CSV parse errors end with the offending row's text: keep what comes before it.
_CSV_COLUMNS = re.compile(r"Expected (\d+) columns, got (\d+)")
# Large enough to keep Arrow's CSV parser efficient, small enough to bound memory.
CSV_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Chunk:
    """A batch of raw input rows; `text_input` says its cells are untyped text (CSV).

    `first_row` is the position of its first row in its file (from 0), so a row is named by its
    place in the file whichever piece of the file a shard reads.
    """

    table: pa.Table
    text_input: bool
    first_row: int = 0


def partition_uri(input_root: str, dataset: str, key: PartitionKey) -> str:
    """The partition's folder; ConfigError for a dataset that is not one plain folder name (it could lead anywhere)."""
    return storage.join(input_root, validate_dataset(dataset), *key.path_segments())


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
    if storage.is_s3(uri) or _below(Path(input_root).resolve(), Path(uri).resolve()):
        return True
    log.warning("skipping %s: it is a symlink that leads out of the input root %s", uri, input_root)
    return False


def _below(root: Path, real: Path) -> bool:
    return real == root or root in real.parents


def read_chunks(
    uri: str, chunk_rows: int, *, input_root: str, row_groups: tuple[int, int] | None = None
) -> Iterator[Chunk]:
    """Record batches of at most `chunk_rows` rows (CSV: about that many), all columns kept.

    `row_groups` reads only Parquet row groups [first, end); each chunk's first_row is still its
    place in the whole file. A local file must still lie inside `input_root` when it is opened
    (UnreadableInput if not).
    """
    if not uri.endswith(DATA_SUFFIXES):
        raise UnreadableInput(f"{uri}: unsupported file type; expected .parquet or .csv")
    if row_groups is not None and not uri.endswith(".parquet"):
        raise UnreadableInput(f"{uri}: only a Parquet file can be read by row groups")
    with _open_input(uri, input_root) as handle:
        if uri.endswith(".parquet"):
            yield from _parquet_chunks(handle, uri, chunk_rows, row_groups)
        else:
            yield from _csv_chunks(handle, uri)


def file_layout(uri: str, input_root: str) -> FileLayout:
    """What planning needs of a file: a Parquet file's row-group row counts (from its footer), a CSV's size.

    Only the footer of a Parquet file is read (on S3, two ranged GETs), never its data. A file whose
    footer cannot be read is planned whole, so its shard fails on it with the reader's own message
    and the run records which file it was, as for any unreadable file.
    """
    if uri.endswith(".parquet"):
        try:
            if storage.is_s3(uri):
                metadata = _s3_parquet_metadata(uri)
            else:
                with _open_input(uri, input_root) as handle:
                    metadata = pq.ParquetFile(handle).metadata
            return FileLayout(group_rows=tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)))
        except (pa.ArrowException, OSError, ValueError, UnreadableInput) as exc:
            log.info("%s: planned whole, its Parquet footer is not readable: %s", uri, _first_line(exc))
    try:
        return FileLayout(group_rows=None, size_bytes=_size(uri))
    except Exception:  # gone or refused: the shard that reads it says why
        return FileLayout(group_rows=None, size_bytes=0)


def _size(uri: str) -> int:
    if storage.is_s3(uri):
        loc = storage.parse_s3(uri)
        return int(aws.client("s3").head_object(Bucket=loc.bucket, Key=loc.key)["ContentLength"])
    return os.stat(uri).st_size


def _s3_parquet_metadata(uri: str) -> pq.FileMetaData:
    """An S3 Parquet file's footer by two ranged GETs: its last 8 bytes (footer length, magic), then the footer."""
    loc = storage.parse_s3(uri)
    client = aws.client("s3")

    def tail(length: int) -> bytes:
        return client.get_object(Bucket=loc.bucket, Key=loc.key, Range=f"bytes=-{length}")["Body"].read()

    end = tail(8)
    if len(end) != 8 or end[4:] != b"PAR1":
        raise ValueError("no Parquet footer at the end of the object")
    footer_length = int.from_bytes(end[:4], "little")
    footer = tail(footer_length + 8)
    # The metadata parser needs only the footer and the magic around it; data offsets are not followed.
    return pq.read_metadata(pa.BufferReader(b"PAR1" + footer))


@contextmanager
def _open_input(uri: str, input_root: str) -> Iterator[io.BufferedReader]:
    """The input file, opened once; for a local file, checked after opening to be the one inside the root.

    Checking the opened descriptor (not the path before opening) closes the window in which a link
    could be swapped in between the check and the read.
    """
    if storage.is_s3(uri):
        with storage.local_copy(uri) as path, open(path, "rb") as handle:
            yield handle
        return
    try:
        # Non-blocking, so a FIFO swapped in cannot hang the shard; it is refused below as not a regular file.
        descriptor = os.open(uri, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UnreadableInput(f"{uri} cannot be opened: {exc.strerror or type(exc).__name__}") from exc
    with os.fdopen(descriptor, "rb") as handle:
        real = Path(uri).resolve()
        opened = os.fstat(descriptor)
        try:
            named = os.stat(real)
        except OSError:
            named = None
        same = named is not None and (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
        if not (same and stat.S_ISREG(opened.st_mode) and _below(Path(input_root).resolve(), real)):
            raise UnreadableInput(
                f"{uri}: refused: it leads outside the input root {input_root} or is not a regular file "
                "(a link swapped in after the run was planned?)"
            )
        yield handle


def _parquet_chunks(
    handle: io.BufferedReader, uri: str, chunk_rows: int, row_groups: tuple[int, int] | None
) -> Iterator[Chunk]:
    try:
        parquet = pq.ParquetFile(handle)
        groups = _group_range(parquet, uri, row_groups)
        # Rows are numbered by their place in the file: the groups before the range count too.
        first_row = sum(parquet.metadata.row_group(i).num_rows for i in range(groups.start))
        # A damaged page shows only when it is read, after the footer opened fine.
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=groups):
            yield Chunk(pa.Table.from_batches([batch]), text_input=False, first_row=first_row)
            first_row += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableInput(f"{uri} is not a readable Parquet file: {_first_line(exc)}") from exc


def _group_range(parquet: pq.ParquetFile, uri: str, row_groups: tuple[int, int] | None) -> range:
    count = parquet.metadata.num_row_groups
    if row_groups is None:
        return range(count)
    first, end = row_groups
    if not 0 <= first <= end <= count:
        raise UnreadableInput(
            f"{uri} has {count} row groups, not the groups {first}..{end - 1} the run planned: "
            "the file changed after planning; rerun the partition"
        )
    return range(first, end)


def _csv_chunks(handle: io.BufferedReader, uri: str) -> Iterator[Chunk]:
    # Every column as text: CSV has no types, and the validator parses numbers and names bad cells.
    header = _csv_header(handle, uri)
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True)
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    try:
        reader = pacsv.open_csv(handle, read_options=read, convert_options=convert)
        first_row = 0
        for batch in reader:
            yield Chunk(pa.Table.from_batches([batch]), text_input=True, first_row=first_row)
            first_row += batch.num_rows
    except pa.ArrowException as exc:
        raise UnreadableInput(f"{uri} is not a readable CSV file: {_csv_problem(handle, exc)}") from exc


@contextmanager
def _as_text(handle: io.BufferedReader) -> Iterator[io.TextIOWrapper]:
    """The open file as text from its start; the file stays open, rewound, for the next reader."""
    handle.seek(0)
    text = io.TextIOWrapper(handle, newline="", encoding="utf-8", errors="replace")
    try:
        yield text
    finally:
        text.detach()
        handle.seek(0)


def _csv_header(handle: io.BufferedReader, uri: str) -> list[str]:
    with _as_text(handle) as text:
        first = text.readline()
    if not first.strip():
        raise UnreadableInput(f"{uri} is empty: a CSV partition file needs a header row")
    return next(csv.reader([first]))


def _csv_problem(handle: io.BufferedReader, exc: Exception) -> str:
    """What is wrong, by line and column count, without the row's text (Arrow's message quotes the row)."""
    message = _first_line(exc)
    if "CSV parse error" not in message:
        return message[:200]
    counts = _CSV_COLUMNS.search(message)
    if counts is None:
        return "a row does not parse as CSV"
    expected = int(counts.group(1))
    line = _first_line_with_columns_other_than(handle, expected)
    where = f"line {line}" if line else "a row"
    return f"{where} has {counts.group(2)} columns where the header has {expected}"


def _first_line_with_columns_other_than(handle: io.BufferedReader, expected: int) -> int | None:
    """The line number (1 = header) of the first record whose field count differs; read again only on error."""
    with _as_text(handle) as text:
        records = csv.reader(text)
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
