"""The prediction log: what the web service and the stream scored, written to prediction_log in batches.

The request path only appends to a bounded in-memory queue: when it is full the records are dropped and
counted (`dropped`), never waited for. A background writer thread inserts what is queued in batches (one
multi-row INSERT per batch). A Lambda is frozen between invocations, where no thread runs, so the stream
uses the log without a thread and calls `flush()` at the end of each invocation. A database failure never
fails a request or a record: the records are dropped, counted (`failed`) and logged as a warning.

Every value is made storable first (NUL and lone surrogates replaced, NaN as null), and a batch the database
still refuses for its data is retried row by row, so one odd record loses only itself. Any other failure (a
lock, a timeout, a lost connection) ends the flush: what is still queued is counted as failed rather than
each batch paying the timeout again. Connections carry connect, statement and lock timeouts (TIMEOUT), so a
locked table costs a flush seconds, never a hang.

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

from scoring.model.storable import clean_text, storable_json

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
# Seconds a connection may take to open, a statement to run and a lock to be waited for: a locked or stuck
# prediction_log costs a flush this long once, never a hang (the Lambda flushes before it answers).
TIMEOUT = 3.0
# pg8000's socket timeout: past the server's own timeouts, so those fire first and leave a usable connection.
SOCKET_GRACE = 5.0
# SQLSTATE class of "data exception": the row's values were refused, the connection is fine.
DATA_EXCEPTION = "22"


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


def connect(url: str, timeout: float = TIMEOUT) -> Any:
    """A DB-API connection to the PostgreSQL database at `url` (postgresql://, postgres:// or postgresql+driver://)
    that gives up connecting, running a statement or waiting for a lock after `timeout` seconds."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError("the prediction log needs a postgresql:// URL")
    try:
        import psycopg2
    except ImportError:
        connection = _connect_pg8000(parts, timeout)
    else:
        dsn = url.replace(parts.scheme + "://", "postgresql://", 1)
        # libpq takes whole seconds, at least 2; a URL's own connect_timeout wins.
        given = "connect_timeout" in parse_qs(parts.query)
        connection = psycopg2.connect(dsn, **({} if given else {"connect_timeout": max(2, math.ceil(timeout))}))
    _limit_statements(connection, timeout)
    return connection


def _limit_statements(connection: Any, timeout: float) -> None:
    """Set the session's statement and lock timeouts (after connecting: a URL's `options` keep their search_path)."""
    milliseconds = str(max(1, int(timeout * 1000)))
    cursor = connection.cursor()
    try:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false)",
            (milliseconds, milliseconds),
        )
    finally:
        cursor.close()
    connection.commit()


def _connect_pg8000(parts: Any, timeout: float = TIMEOUT) -> Any:
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
        timeout=timeout + SOCKET_GRACE,
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
        timeout: float = TIMEOUT,
    ) -> PredictionLog:
        """A log writing to the PostgreSQL database at `url`; it connects lazily, so a database that is down
        does not stop the caller from starting. `fields` keeps only those keys of each logged record;
        `timeout` bounds connecting, each statement and each lock wait (seconds)."""
        return cls(lambda: connect(url, timeout), source, capacity, background=background, fields=fields)

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
                    self._kept(record),
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

    def _kept(self, record: Any) -> dict[str, Any]:
        """The record's declared fields only: a queued row holds no more than the model reads."""
        if not isinstance(record, dict):
            return {}
        if self.fields is None:
            return record
        return {key: record[key] for key in self.fields if key in record}

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued now, in the caller's thread; returns how many records were inserted.

        After a batch fails for anything but its data, the rest queued now is counted as failed, not tried:
        a locked table or a dead database would cost every batch its timeout again."""
        inserted = 0
        with self._write_lock:
            while True:
                batch = self._take(BATCH_ROWS)
                if not batch:
                    return inserted
                written, healthy = self._write(batch)
                inserted += written
                if not healthy:
                    self._give_up()
                    return inserted

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

    def _give_up(self) -> None:
        """Count everything still queued as failed (the database just failed this flush)."""
        with self._lock:
            rest = len(self._queue)
            self._queue.clear()
        if rest:
            self.failed += rest
            log.warning("prediction log: %d more records not written (the database failed this flush)", rest)

    def _take(self, limit: int) -> list[_Row]:
        with self._lock:
            count = min(limit, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _write(self, batch: list[_Row]) -> tuple[int, bool]:
        """Insert one batch: how many rows were written, and whether the database is still worth writing to.

        A batch refused for its data is retried row by row; any other error loses it (counted, warned once)."""
        try:
            connection = self._connected()
        except Exception as exc:  # unreachable, or reached moments ago: the batch waits for no one
            self._lose(len(batch), len(batch), exc)
            return 0, False
        try:
            rows = [self._parameters(row) for row in batch]
        except Exception as exc:  # a value even the cleaning cannot turn into JSON: never the caller's error
            self._lose(len(batch), len(batch), exc)
            return 0, True
        try:
            self._insert(connection, rows)
        except Exception as exc:  # any driver error: the batch is not written, the caller never sees it
            if len(rows) > 1 and _is_data_error(exc) and self._rolled_back():
                return self._write_each(rows)
            self._lose(len(batch), len(batch), exc)
            return 0, False
        self.written += len(batch)
        return len(batch), True

    def _write_each(self, rows: list[tuple[Any, ...]]) -> tuple[int, bool]:
        """Insert the rows of a refused batch one at a time, so only the rows the database refuses are lost."""
        written, refused, first_error = 0, 0, None
        for position, row in enumerate(rows):
            try:
                self._insert(self._connected(), [row])
            except Exception as exc:
                if _is_data_error(exc) and self._rolled_back():
                    refused += 1
                    first_error = first_error or exc
                    continue
                self.written += written
                self._lose(refused + len(rows) - position, len(rows), exc)
                return written, False
            written += 1
        self.written += written
        if first_error is not None:
            self.failed += refused
            log.warning(
                "prediction log: %d of %d records not written (%s: %s)",
                refused,
                len(rows),
                type(first_error).__name__,
                _first_line(first_error),
            )
        return written, True

    def _insert(self, connection: Any, rows: list[tuple[Any, ...]]) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute(insert_sql(len(rows)), [value for row in rows for value in row])
        finally:
            cursor.close()
        connection.commit()

    def _lose(self, lost: int, of: int, exc: BaseException) -> None:
        """Count `lost` records as failed, warn once, and drop the connection the error may have broken."""
        self.failed += lost
        counted = f"{lost} records" if lost == of else f"{lost} of {of} records"
        log.warning("prediction log: %s not written (%s: %s)", counted, type(exc).__name__, _first_line(exc))
        self._reset()

    def _rolled_back(self) -> bool:
        """End the failed transaction so the connection takes the next statement; False if it cannot."""
        try:
            self._connection.rollback()
        except Exception:
            return False
        return True

    def _parameters(self, row: _Row) -> tuple[Any, ...]:
        logged_at, name, version, record_id, record, prediction, label = row
        return (
            self.source,
            datetime.fromtimestamp(logged_at, timezone.utc),
            clean_text(name),
            clean_text(version),
            None if record_id is None else clean_text(record_id),
            inputs_json(record),
            prediction,
            None if label is None else clean_text(label),
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
    """The record as JSON text PostgreSQL's jsonb takes: NaN and infinity as null (JSON has neither), NUL and
    lone surrogates replaced in keys and values at any depth (jsonb refuses the first, UTF-8 cannot encode the
    second), so one odd record never loses its batch."""
    try:
        text = json.dumps(record, default=str, allow_nan=False)
    except ValueError:
        text = ""
    # The usual record has no escape to worry about; any \u0000 or \udXXX (a surrogate, paired or not) is
    # re-read value by value, so an emoji costs a walk but never a row.
    if text and "\\u0000" not in text and "\\ud" not in text:
        return text
    return storable_json(record, non_finite_as_text=False)


def _is_data_error(exc: BaseException) -> bool:
    """Whether the database (or the driver, before sending) refused the values, not the connection or a lock."""
    if isinstance(exc, ValueError):  # psycopg2 refuses NUL, both drivers a surrogate, before sending
        return True
    code = getattr(exc, "pgcode", None)  # psycopg2
    if code is None and exc.args and isinstance(exc.args[0], dict):  # pg8000: the server's fields by code
        code = exc.args[0].get("C")
    return isinstance(code, str) and code.startswith(DATA_EXCEPTION)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""
