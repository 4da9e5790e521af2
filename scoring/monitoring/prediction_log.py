"""The prediction log: what the web service and the stream scored, written to prediction_log in batches.

The request path only appends to a bounded in-memory queue: when it is full the records are dropped and
counted (`dropped`), never waited for. A background writer thread inserts what is queued in batches (one
multi-row INSERT per batch). A Lambda is frozen between invocations, where no thread runs, so the stream
uses the log without a thread and calls `flush()` at the end of each invocation. A database failure never
fails a request or a record: the batch is dropped, counted (`failed`) and logged as a warning.

Plain DB-API with `%s` parameters (psycopg2 where installed, else the pure-Python pg8000 the Lambda zip
carries), no SQLAlchemy: the Lambda zip has none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

SOURCES = ("online", "stream")
COLUMNS = ("source", "logged_at", "model_name", "model_version", "record_id", "inputs", "prediction", "label")
# One INSERT carries at most this many rows (8 parameters each, well under PostgreSQL's 65535).
BATCH_ROWS = 1000
DEFAULT_CAPACITY = 10_000
# The background writer wakes at least this often (seconds), so a quiet service's records still land.
FLUSH_INTERVAL = 1.0
# After a failed connection, the next attempt waits this long (seconds): a down database costs no CPU.
RETRY_AFTER = 5.0


class Outcome(Protocol):
    """What the log needs of a scored record (scoring.model.records.RecordOutcome has it)."""

    @property
    def record_id(self) -> str | None: ...
    @property
    def prediction(self) -> float | None: ...
    @property
    def label(self) -> object | None: ...


# A queued row: logged_at (epoch seconds), model name and version, record id, inputs, prediction, label.
_Row = tuple[float, str, str, str | None, dict[str, Any], float, str | None]


def insert_sql(rows: int) -> str:
    """One INSERT of `rows` rows into prediction_log, with DB-API `%s` parameters."""
    one = "(%s, %s, %s, %s, %s, CAST(%s AS jsonb), %s, %s)"
    return f"INSERT INTO prediction_log ({', '.join(COLUMNS)}) VALUES {', '.join([one] * rows)}"


def connect(url: str) -> Any:
    """A DB-API connection to the PostgreSQL database at `url` (postgresql://, postgres:// or postgresql+driver://)."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError("the prediction log needs a postgresql:// URL")
    try:
        import psycopg2
    except ImportError:
        return _connect_pg8000(parts)
    dsn = url.replace(parts.scheme + "://", "postgresql://", 1)
    return psycopg2.connect(dsn)


def _connect_pg8000(parts: Any) -> Any:
    import pg8000.dbapi

    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    # libpq's URL parameters pg8000 knows: a search_path in `options`, and the application's name.
    startup = {"options": query["options"]} if "options" in query else None
    ssl = True if query.get("sslmode") in ("require", "verify-ca", "verify-full") else None
    return pg8000.dbapi.connect(
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        database=unquote(parts.path.lstrip("/")) or None,
        timeout=10,
        application_name=query.get("application_name", "scoring-prediction-log"),
        startup_params=startup,
        ssl_context=ssl,
    )


class PredictionLog:
    """A bounded queue of scored records and the writer that inserts them into prediction_log."""

    def __init__(
        self,
        connect: Callable[[], Any],
        source: str,
        capacity: int = DEFAULT_CAPACITY,
        *,
        background: bool = True,
        fields: Sequence[str] | None = None,
        interval: float = FLUSH_INTERVAL,
    ):
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        self.source = source
        self.capacity = int(capacity)
        self.fields = tuple(fields) if fields is not None else None
        self._connect = connect
        self._connection: Any = None
        self._retry_at = 0.0
        self._queue: deque[_Row] = deque()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._interval = interval
        self.dropped = 0  # records the full queue turned away
        self.written = 0  # records inserted
        self.failed = 0  # records lost to a database error
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
            self._thread.start()

    @classmethod
    def from_url(
        cls,
        url: str,
        source: str,
        capacity: int = DEFAULT_CAPACITY,
        *,
        background: bool = True,
        fields: Sequence[str] | None = None,
    ) -> PredictionLog:
        """A log writing to the PostgreSQL database at `url`; it connects lazily, so a database that is down
        does not stop the caller from starting. `fields` keeps only those keys of each logged record."""
        return cls(lambda: connect(url), source, capacity, background=background, fields=fields)

    def record(self, outcomes: Sequence[Outcome], inputs: Sequence[Any], model_name: str, model_version: str) -> None:
        """Queue the scored outcomes (those with a prediction) with their input records; never blocks on the
        database. What does not fit in the queue is dropped and counted."""
        now = time.time()
        rows: list[_Row] = []
        for outcome, record in zip(outcomes, inputs, strict=False):
            prediction = outcome.prediction
            if prediction is None:
                continue
            label = outcome.label
            rows.append(
                (
                    now,
                    model_name,
                    model_version,
                    None if outcome.record_id is None else str(outcome.record_id),
                    record if isinstance(record, dict) else {},
                    float(prediction),
                    None if label is None else str(label),
                )
            )
        if not rows:
            return
        with self._lock:
            room = max(0, self.capacity - len(self._queue))
            self._queue.extend(rows[:room])
            self.dropped += len(rows) - min(room, len(rows))
            full = len(self._queue) >= BATCH_ROWS
        if full:
            self._wake.set()

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued now, in the caller's thread; returns how many records were inserted."""
        inserted = 0
        with self._write_lock:
            while True:
                batch = self._take(BATCH_ROWS)
                if not batch:
                    return inserted
                inserted += self._write(batch)

    def close(self) -> None:
        """Stop the writer and flush what is queued."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
        self._reset()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
            except Exception:  # the writer must survive anything a batch throws
                log.exception("prediction log writer: unexpected error")

    def _take(self, limit: int) -> list[_Row]:
        with self._lock:
            count = min(limit, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _write(self, batch: list[_Row]) -> int:
        """Insert one batch; on a database error drop it, count it and warn (the caller never sees the error)."""
        try:
            connection = self._connected()
            parameters = [value for row in batch for value in self._parameters(row)]
            cursor = connection.cursor()
            try:
                cursor.execute(insert_sql(len(batch)), parameters)
            finally:
                cursor.close()
            connection.commit()
        except Exception as exc:  # any driver error means the same: this batch is lost
            self.failed += len(batch)
            log.warning(
                "prediction log: %d records not written (%s: %s)", len(batch), type(exc).__name__, _first_line(exc)
            )
            self._reset()
            return 0
        self.written += len(batch)
        return len(batch)

    def _parameters(self, row: _Row) -> tuple[Any, ...]:
        logged_at, name, version, record_id, record, prediction, label = row
        kept = record if self.fields is None else {key: record.get(key) for key in self.fields if key in record}
        return (
            self.source,
            datetime.fromtimestamp(logged_at, timezone.utc),
            name,
            version,
            record_id,
            inputs_json(kept),
            prediction,
            label,
        )

    def _connected(self) -> Any:
        if self._connection is None:
            if time.monotonic() < self._retry_at:
                raise ConnectionError("the prediction log's database was unreachable moments ago")
            try:
                self._connection = self._connect()
            except Exception:
                self._retry_at = time.monotonic() + RETRY_AFTER
                raise
        return self._connection

    def _reset(self) -> None:
        """Drop a connection an error may have left in a failed transaction; the next batch reconnects."""
        if self._connection is not None:
            # Closing a broken connection may raise anything; it is being dropped either way.
            with contextlib.suppress(Exception):
                self._connection.close()
        self._connection = None


def inputs_json(record: dict[str, Any]) -> str:
    """The record as JSON text PostgreSQL's jsonb takes: NaN and infinity as null (JSON has neither), and no
    NUL character (jsonb refuses it), so one odd record never loses its batch."""
    try:
        text = json.dumps(record, default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(
            {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}, default=str
        )
    return text.replace("\\u0000", "\\ufffd")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""
