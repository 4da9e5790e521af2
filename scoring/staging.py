"""Staged shard output: what a scored shard leaves behind until the run publishes it.

Each shard writes two Parquet files (predictions; rejected rows with reason and raw record) under
a path derived from job, partition, run and shard, so a retried shard overwrites its own output
and a shard can run in another process or machine (staging_root may be s3://).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scoring import storage
from scoring.storage import local_copy

PREDICTION_SCHEMA = pa.schema([("record_id", pa.string()), ("prediction", pa.float64())])
REJECT_SCHEMA = pa.schema([("record_id", pa.string()), ("reason", pa.string()), ("raw_record", pa.string())])


@dataclass(frozen=True)
class ShardResult:
    """Counts and staged files of one scored shard; plain data so it can travel as an Airflow XCom."""

    source_uri: str
    input_rows: int
    scored_rows: int
    rejected_rows: int
    predictions_uri: str
    rejects_uri: str
    scored_at: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> ShardResult:
        return cls(**raw)


def safe_segment(text: str) -> str:
    """A path segment that is safe on any filesystem and S3 (Airflow run ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._=-]", "_", text)


def shard_prefix(staging_root: str, job: str, partition_key: str, run_id: str, shard_index: int) -> str:
    return storage.join(
        staging_root, safe_segment(job), safe_segment(partition_key), safe_segment(run_id), f"shard-{shard_index:05d}"
    )


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
        self._writer = pq.ParquetWriter(self._local, schema)
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
    """A staged file back, in batches."""
    with local_copy(uri) as path:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            yield pa.Table.from_batches([batch])
