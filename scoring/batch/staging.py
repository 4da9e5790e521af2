"""Staged shard output: what a scored shard leaves behind until the run publishes it.

Each shard writes two Parquet files (predictions; rejected rows with reason and raw record) under
a path derived from job, partition, run and shard, so a retried shard overwrites its own output
and a shard can run in another process or machine (staging_root may be s3://).

    {staging_root}/{job}/{partition_key}/{run_id}/shard-00000.predictions.parquet

A finished run (published or failed) removes its own folder; `sweep_staging` removes what killed
runs left behind once it is older than a set age.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scoring import storage
from scoring.storage import local_copy

log = logging.getLogger(__name__)

# `file` (the plan's index of the row's input file) and `row` (its position in that file): a duplicate
# id found at publish is traced back to its raw row without staging every raw row.
PREDICTION_SCHEMA = pa.schema(
    [("record_id", pa.string()), ("prediction", pa.float64()), ("row", pa.int64()), ("file", pa.int32())]
)
# A classifier's extras: its label's text, and its class probabilities as JSON text (JSONB once published).
CLASS_FIELDS = {"label": pa.field("label", pa.string()), "probabilities": pa.field("probabilities", pa.string())}
REJECT_SCHEMA = pa.schema([("record_id", pa.string()), ("reason", pa.string()), ("raw_record", pa.string())])
# Row positions ascend: delta encoding stores them in almost nothing, where plain int64 costs 8 bytes a row.
_ENCODINGS = {"row": "DELTA_BINARY_PACKED"}
STAGED_FILE = re.compile(r"^shard-\d{5}\.((predictions|rejected)\.parquet|metrics\.json)(\.partial)?$")


def prediction_schema(*, label: bool = False, probabilities: bool = False) -> pa.Schema:
    """The staged predictions' schema: a regressor's three columns, plus a classifier's extras when it returns them."""
    extras = [CLASS_FIELDS[name] for name, wanted in (("label", label), ("probabilities", probabilities)) if wanted]
    return pa.schema([*PREDICTION_SCHEMA, *extras])


@dataclass(frozen=True)
class ShardResult:
    """Counts and staged files of one scored shard; plain data so it can travel as an Airflow XCom."""

    source_uri: str  # what the shard read, as a person reads it (a file, row groups, or a group of files)
    input_rows: int
    scored_rows: int
    rejected_rows: int
    predictions_uri: str
    rejects_uri: str
    scored_at: str
    # The shard's index in the plan (-1 from code that named a shard by its one file in source_uri).
    shard: int = -1
    # Its monitoring accumulator's state, staged as JSON ("" when none was kept).
    metrics_uri: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> ShardResult:
        return cls(**raw)


def safe_segment(text: str) -> str:
    """A path segment that is safe on any filesystem and S3 (Airflow run ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._=-]", "_", text)


def run_prefix(staging_root: str, job: str, partition_key: str, run_id: str) -> str:
    """The folder (or S3 prefix) holding every staged file of one run."""
    return storage.join(staging_root, safe_segment(job), safe_segment(partition_key), safe_segment(run_id))


def shard_prefix(staging_root: str, job: str, partition_key: str, run_id: str, shard_index: int) -> str:
    return storage.join(run_prefix(staging_root, job, partition_key, run_id), f"shard-{shard_index:05d}")


def remove_staged_run(staging_root: str, job: str, partition_key: str, run_id: str) -> int:
    """Delete one run's staged shard files (local or S3); returns how many were removed.

    A local run folder whose real path leads out of the staging root (a symlinked job or partition
    folder) is left alone with a warning: a cleanup never deletes outside the root.
    """
    prefix = run_prefix(staging_root, job, partition_key, run_id)
    if not storage.is_s3(prefix):
        root, real = Path(staging_root).resolve(), Path(prefix).resolve()
        if root not in real.parents:
            log.warning("not removing %s: it leads out of the staging root %s", prefix, staging_root)
            return 0
        prefix = str(real)
    files = [info.uri for info in storage.list_file_info(prefix) if _is_staged_file(prefix, info.uri)]
    storage.delete_files(files)
    storage.remove_empty_dirs(prefix, staging_root)
    return len(files)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep removed: runs, files and bytes."""

    runs: int
    files: int
    bytes: int

    def line(self, staging_root: str, max_age_hours: float) -> str:
        return (
            f"swept {self.runs} staged run(s), {self.files} file(s), {self.bytes} bytes "
            f"older than {max_age_hours:g} hours from {staging_root}"
        )


def sweep_staging(staging_root: str, *, max_age_hours: float, now: datetime | None = None) -> SweepResult:
    """Delete the staging of every run whose newest file is older than `max_age_hours` (runs killed mid-way).

    A run still writing has a recent file and is kept whole. Only files laid out as staged shards
    ({job}/{partition}/{run}/shard-NNNNN.*.parquet) are touched, whatever else the root holds.
    """
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(hours=max_age_hours)
    runs: dict[tuple[str, ...], list[storage.FileInfo]] = {}
    for info in storage.list_file_info(staging_root):
        parts = _relative_parts(staging_root, info.uri)
        if len(parts) == 4 and STAGED_FILE.match(parts[3]):
            runs.setdefault(tuple(parts[:3]), []).append(info)
    stale = {key: files for key, files in runs.items() if max(f.modified for f in files) < cutoff}
    doomed = [f for files in stale.values() for f in files]
    storage.delete_files([f.uri for f in doomed])
    for key in stale:
        storage.remove_empty_dirs(storage.join(staging_root, *key), staging_root)
    return SweepResult(runs=len(stale), files=len(doomed), bytes=sum(f.size for f in doomed))


def _relative_parts(root: str, uri: str) -> list[str]:
    if storage.is_s3(root):
        prefix = root.rstrip("/") + "/"
        return uri[len(prefix) :].split("/") if uri.startswith(prefix) else []
    return list(Path(uri).relative_to(root).parts)


def _is_staged_file(prefix: str, uri: str) -> bool:
    parts = _relative_parts(prefix, uri)
    return len(parts) == 1 and STAGED_FILE.match(parts[0]) is not None


class StagedWriter:
    """Writes one shard's output as Parquet row groups straight to disk, so memory stays flat."""

    def __init__(self, uri: str, schema: pa.Schema):
        self.uri = uri
        if storage.is_s3(uri):
            descriptor, self._local = tempfile.mkstemp(suffix=".parquet")
            os.close(descriptor)
        else:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            # Written beside the target and renamed at close: a crashed shard leaves no half file.
            self._local = f"{uri}.partial"
        encodings = {name: kind for name, kind in _ENCODINGS.items() if name in schema.names}
        self._writer = pq.ParquetWriter(
            self._local,
            schema,
            use_dictionary=[name for name in schema.names if name not in encodings],
            column_encoding=encodings or None,
        )
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def abort(self) -> None:
        """Drop what was written so far; nothing reaches the staging location."""
        try:
            self._writer.close()
        finally:
            if os.path.exists(self._local):
                os.unlink(self._local)

    def close(self) -> None:
        self._writer.close()
        if storage.is_s3(self.uri):
            with open(self._local, "rb") as handle:
                storage.upload_from(handle, self.uri)
            os.unlink(self._local)
        else:
            os.replace(self._local, self.uri)


def read_staged(uri: str, batch_rows: int = 250_000, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """A staged file back, in batches; only those of `columns` it has, when given."""
    with local_copy(uri) as path:
        parquet = pq.ParquetFile(path)
        if columns is not None:
            columns = [name for name in columns if name in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            yield pa.Table.from_batches([batch])
