"""The predictions store: one transaction publishes a partition's run, replacing what was there.

PostgreSQL gets a binary COPY (streamed from the staged Parquet, batch by batch); SQLite gets batched
INSERTs inside the same kind of transaction, so both give the same exactly-once semantics.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from scoring.batch.store import pgcopy
from scoring.batch.store.tables import predictions, rejected_records, scoring_runs
from scoring.errors import DuplicateRecordIds
from scoring.monitoring.accumulate import MetricRow
from scoring.monitoring.writes import replace_partition_metrics

COPY_COLUMNS = ("job", "partition_key", "record_id", "prediction", "model_name", "model_version", "run_id", "scored_at")
# A classifier's staged extras, copied only when the run's staged rows carry them: a regressor's COPY is unchanged.
CLASS_COLUMNS = ("label", "probabilities")
CSV_OPTIONS = pacsv.WriteOptions(include_header=False)


def copy_sql(extras: tuple[str, ...] = ()) -> str:
    """The COPY statement for the run's columns (the class extras its staged rows carry)."""
    return f"COPY predictions ({', '.join((*COPY_COLUMNS, *extras))}) FROM STDIN WITH (FORMAT csv)"


COPY_SQL = copy_sql()
# The binary COPY's columns: the run's constants, then the prediction and the record id (pgcopy's row layout).
BINARY_COLUMNS = (
    "job",
    "partition_key",
    "model_name",
    "model_version",
    "run_id",
    "scored_at",
    "prediction",
    "record_id",
)


@dataclass(frozen=True)
class RunRecord:
    """The scoring_runs row of one publish attempt."""

    run_id: str
    job: str
    partition_key: str
    model_name: str
    model_version: str
    model_sha256: str
    input_rows: int
    scored_rows: int
    rejected_rows: int
    source_uri: str
    started_at: datetime
    finished_at: datetime
    status: str
    message: str | None = None


@dataclass(frozen=True)
class PredictionBatch:
    """Scored rows of one staged batch, with the values every row of it shares."""

    rows: pa.Table  # record_id, prediction, row; a classifier's label and probabilities (JSON text) when returned
    scored_at: datetime


def publish(
    engine: Engine,
    run: RunRecord,
    batches: Iterable[PredictionBatch],
    rejects: Iterable[dict[str, object]],
    metrics: Iterable[MetricRow] | None = None,
) -> None:
    """Replace the partition's predictions, rejects and (when given) monitoring metrics with this run's, and
    record the run: all or nothing."""
    with engine.begin() as conn:
        _lock_partition(conn, run.job, run.partition_key)
        where = (predictions.c.job == run.job) & (predictions.c.partition_key == run.partition_key)
        conn.execute(delete(predictions).where(where))
        if conn.dialect.name == "postgresql":
            _copy_predictions(conn, run, batches)
        else:
            _insert_predictions(conn, run, batches)
        conn.execute(
            delete(rejected_records).where(
                (rejected_records.c.job == run.job) & (rejected_records.c.partition_key == run.partition_key)
            )
        )
        _insert_rejects(conn, run, rejects)
        if metrics is not None:
            replace_partition_metrics(conn, run.job, run.partition_key, run.run_id, metrics)
        _record_run(conn, run)


def record_failed_run(
    engine: Engine, run: RunRecord, rejects: Iterable[dict[str, object]] = (), *, only_if_absent: bool = False
) -> bool:
    """Keep the failed run and its rejected rows for inspection; the published predictions stay as they were.

    Its own transaction, apart from any publish. A run id that already published (a cleared publish
    task that failed the second time) keeps its published record, and with `only_if_absent` any
    record is kept; returns whether the failure was recorded.
    """
    with engine.begin() as conn:
        status = conn.execute(select(scoring_runs.c.status).where(scoring_runs.c.run_id == run.run_id)).scalar()
        if status == "published" or (status is not None and only_if_absent):
            return False
        conn.execute(delete(rejected_records).where(rejected_records.c.run_id == run.run_id))
        _insert_rejects(conn, run, rejects)
        _record_run(conn, run)
    return True


def _record_run(conn: Connection, run: RunRecord) -> None:
    # A plan published again (a retried or cleared publish task) replaces its own earlier record.
    conn.execute(delete(scoring_runs).where(scoring_runs.c.run_id == run.run_id))
    conn.execute(insert(scoring_runs).values(**asdict(run)))


def _lock_partition(conn: Connection, job: str, partition_key: str) -> None:
    # Two publishes of one partition must not interleave their delete and insert.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"{job}|{partition_key}"})


def _constant(value: object, rows: int, type_: pa.DataType) -> pa.Array:
    return pa.nulls(rows, type_).fill_null(pa.scalar(value, type_))


def _with_run_columns(run: RunRecord, batch: PredictionBatch) -> pa.Table:
    rows = batch.rows.num_rows
    extras = {name: batch.rows.column(name) for name in CLASS_COLUMNS if name in batch.rows.column_names}
    return pa.table(
        {
            "job": _constant(run.job, rows, pa.string()),
            "partition_key": _constant(run.partition_key, rows, pa.string()),
            "record_id": batch.rows.column("record_id"),
            "prediction": batch.rows.column("prediction"),
            "model_name": _constant(run.model_name, rows, pa.string()),
            "model_version": _constant(run.model_version, rows, pa.string()),
            "run_id": _constant(run.run_id, rows, pa.string()),
            "scored_at": _constant(batch.scored_at, rows, pa.timestamp("us", tz="UTC")),
            **extras,
        }
    )


def binary_copy_sql(extras: tuple[str, ...] = ()) -> str:
    """The binary COPY statement: the run's constants first, then the per-row fields (see pgcopy)."""
    return f"COPY predictions ({', '.join((*BINARY_COLUMNS, *extras))}) FROM STDIN WITH (FORMAT binary)"


def _binary_batch(run: RunRecord, batch: PredictionBatch) -> pa.Buffer:
    rows = batch.rows
    texts = (run.job, run.partition_key, run.model_name, run.model_version, run.run_id)
    extras = [name for name in CLASS_COLUMNS if name in rows.column_names]
    head = pgcopy.constant_head(len(BINARY_COLUMNS) + len(extras), texts, batch.scored_at)
    labels = [rows.column("label")] if "label" in extras else []
    return pgcopy.binary_rows(
        head,
        rows.column("prediction").to_numpy(),
        [rows.column("record_id"), *labels],
        rows.column("probabilities") if "probabilities" in extras else None,
    )


def _copy_predictions(conn: Connection, run: RunRecord, batches: Iterable[PredictionBatch]) -> None:
    """One binary COPY for the whole run, fed through a pipe by a thread that builds it batch by batch.

    Arrow builds each batch's rows without the GIL while the server inserts and indexes the previous
    batch (and the staged Parquet behind `batches` is read in the same thread), so the client-side
    work hides behind the server's.
    """
    import psycopg2.errors

    # Every batch of a run has the same columns (one bundle): the first says which extras the COPY names.
    pending = iter(batches)
    first = next(pending, None)
    if first is None:
        return
    sql = binary_copy_sql(tuple(name for name in CLASS_COLUMNS if name in first.rows.column_names))
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        with open(write_fd, "wb") as sink:
            try:
                sink.write(pgcopy.HEADER)
                for batch in itertools.chain([first], pending):
                    if batch.rows.num_rows:
                        sink.write(_binary_batch(run, batch))
                sink.write(pgcopy.TRAILER)
            except BrokenPipeError:
                pass  # the COPY failed and closed the pipe; its error is the one that matters
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

    producer = threading.Thread(target=produce, name="copy-producer", daemon=True)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with open(read_fd, "rb") as source:
            producer.start()
            try:
                cursor.copy_expert(sql, source, size=1 << 20)
            except psycopg2.errors.UniqueViolation as exc:
                raise DuplicateRecordIds(str(exc).splitlines()[0]) from exc
            except psycopg2.Error as exc:
                if failure:  # the stream broke off because building it failed: that is the error to report
                    raise failure[0] from exc
                # The raw driver error, wrapped as SQLAlchemy wraps every other statement's, so callers see one kind.
                raise DBAPIError.instance(sql, None, exc, psycopg2.Error, hide_parameters=True) from exc
    finally:
        cursor.close()
        producer.join()
    if failure:
        raise failure[0]


def _insert_predictions(conn: Connection, run: RunRecord, batches: Iterable[PredictionBatch]) -> None:
    try:
        for batch in batches:
            for rows in _row_dicts(_with_run_columns(run, batch), 50_000):
                for row in rows:
                    # Staged as JSON text; the JSON column type encodes what it is given, so hand it the object.
                    if row.get("probabilities") is not None:
                        row["probabilities"] = json.loads(str(row["probabilities"]))
                conn.execute(insert(predictions), rows)
    except IntegrityError as exc:
        raise DuplicateRecordIds(str(exc.orig)) from exc


def _row_dicts(table: pa.Table, size: int) -> Iterator[list[dict[str, object]]]:
    for offset in range(0, table.num_rows, size):
        yield table.slice(offset, size).to_pylist()


def _insert_rejects(conn: Connection, run: RunRecord, rejects: Iterable[dict[str, object]]) -> None:
    buffer: list[dict[str, object]] = []
    for reject in rejects:
        buffer.append(
            {
                "run_id": run.run_id,
                "job": run.job,
                "partition_key": run.partition_key,
                "record_id": reject["record_id"],
                "reason": reject["reason"],
                "raw_record": json.loads(str(reject["raw_record"])),
            }
        )
        if len(buffer) >= 5_000:
            conn.execute(insert(rejected_records), buffer)
            buffer = []
    if buffer:
        conn.execute(insert(rejected_records), buffer)


def partition_report(engine: Engine, job: str) -> list[dict[str, object]]:
    """Per partition of `job`: the published run's counts and model, and the rows actually stored."""
    latest = (
        select(scoring_runs)
        .where((scoring_runs.c.job == job) & (scoring_runs.c.status == "published"))
        .order_by(scoring_runs.c.partition_key, scoring_runs.c.finished_at.desc())
    )
    stored = (
        select(predictions.c.partition_key, func.count().label("stored"))
        .where(predictions.c.job == job)
        .group_by(predictions.c.partition_key)
    )
    with engine.connect() as conn:
        counts = {row.partition_key: row.stored for row in conn.execute(stored)}
        report: dict[str, dict[str, object]] = {}
        for row in conn.execute(latest):
            if row.partition_key in report:
                continue
            report[row.partition_key] = {
                "partition": row.partition_key,
                "input": row.input_rows,
                "scored": row.scored_rows,
                "rejected": row.rejected_rows,
                "stored": counts.get(row.partition_key, 0),
                "model": f"{row.model_name} v{row.model_version}",
                "run_id": row.run_id,
            }
    return list(report.values())
