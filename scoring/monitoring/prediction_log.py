"""The prediction log: what the web service and the stream scored, written to prediction_log in batches.

The request path only appends one entry per call to a bounded in-memory queue: the call's outcomes as given
and the values of the declared input fields (one C-level itemgetter per record; a record's other keys are not
kept, so a queued record holds no more than the model reads). No row, text or JSON is built there. When the
queue is full the records are dropped and counted (`dropped`), never waited for.

A background writer thread wakes every `interval` seconds, not once per request or per full batch: the queue's
capacity over the interval caps the rate it writes at (and so the CPU and the GIL it takes from requests);
what arrives faster is dropped and counted, as the queue being full means. It turns what is queued into the
text of a PostgreSQL COPY (one line per record, one JSON serialisation per record with orjson where
installed) and sends each batch with one COPY. A Lambda is frozen between invocations, where no thread runs,
so the stream uses the log without a thread and calls `flush()` at the end of each invocation. A database
failure never fails a request or a record: the records are dropped, counted (`failed`) and logged as a warning.

Every value is made storable first (NUL and lone surrogates replaced, NaN as null), and a batch the database
still refuses for its data is retried row by row, so one odd record loses only itself. Any other failure (a
lock, a timeout, a lost connection) ends the flush: what is still queued is counted as failed rather than
each batch paying the timeout again. Connections carry connect, statement and lock timeouts (TIMEOUT), so a
locked table costs a flush seconds, never a hang.

Plain DB-API (psycopg2's copy_expert where installed, else the pure-Python pg8000's COPY stream, which the
Lambda zip carries), no SQLAlchemy: the Lambda zip has none.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from scoring.model.storable import clean_text, storable_json

try:  # in the web extra; the Lambda zip may go without it and serialise with json
    import orjson
except ImportError:  # pragma: no cover - depends on the install
    orjson = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SOURCES = ("online", "stream")
COLUMNS = ("source", "logged_at", "model_name", "model_version", "record_id", "inputs", "prediction", "label")
COPY_SQL = f"COPY prediction_log ({', '.join(COLUMNS)}) FROM STDIN"
# One COPY carries about this many rows (a whole request's records stay in one batch).
BATCH_ROWS = 5000
DEFAULT_CAPACITY = 5000
# The background writer wakes this often (seconds). With the capacity it caps the rate written per process
# (5,000 records a second): the writer's Python (about 1.5 us a record) and the database's COPY (about 5 us)
# stay within issue 14's 5% of a 2-core machine at full load; traffic past it is dropped and counted.
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
# Bytes psycopg2 reads from the COPY buffer per message.
COPY_CHUNK = 1 << 20
# COPY's text format: NULL, and the characters a value must escape (plus what clean_text replaces).
COPY_NULL = "\\N"
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00\ud800-\udfff]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# orjson writes NaN and infinity as null (as the log wants), numpy scalars as numbers, other keys as text.
_ORJSON_OPTIONS = (orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) if orjson is not None else 0


class Outcome(Protocol):
    """What the log needs of a scored record (scoring.model.records.RecordOutcome has it)."""

    @property
    def record_id(self) -> str | None: ...
    @property
    def prediction(self) -> float | None: ...
    @property
    def label(self) -> object | None: ...


# A queued call: logged_at (epoch seconds), model name and version, the outcomes as given, and per outcome
# its input: a tuple of the declared fields' values, or the record itself (a dict, or anything else when no
# fields are declared), or a dict of the declared fields it has when it lacks some.
_Entry = tuple[float, str, str, Sequence[Outcome], list[Any]]


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
    """A bounded queue of scored records and the writer that copies them into prediction_log."""

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
        self._values = _values_getter(self.fields)
        self._connect = connect
        self._connection: Any = None
        self._retry_at = 0.0
        self._queue: deque[_Entry] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._interval = interval
        self.dropped = 0  # records the full queue turned away
        self.written = 0  # records copied into prediction_log
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
        database. What does not fit in the queue is dropped and counted.

        The outcomes are kept as given (they must not change afterwards); of each record only the declared
        fields' values."""
        count = len(outcomes)
        if not count:
            return
        taken = 0
        if self._queued < self.capacity:  # read without the lock: a full queue costs no lock at all
            room = self.capacity - self._queued
            kept = outcomes if count <= room else outcomes[:room]
            values = self._kept(inputs if count <= room else inputs[:room])
            now = time.time()
            with self._lock:
                room = max(0, self.capacity - self._queued)
                if len(kept) > room:  # other threads filled it meanwhile
                    kept, values = kept[:room], values[:room]
                if kept:
                    self._queue.append((now, model_name, model_version, kept, values))
                    self._queued += len(kept)
            taken = len(kept)
            if taken == count:
                return
        lost = _scored(outcomes[taken:])
        if lost:
            with self._lock:
                self.dropped += lost

    def _kept(self, records: Sequence[Any]) -> list[Any]:
        """Of each record, only what the log stores: the declared fields' values, not the record."""
        if self._values is None:
            return list(records)
        try:
            return list(map(self._values, records))
        except (KeyError, TypeError, IndexError):  # a record without every field, or not a dict: the slow way
            fields = self.fields or ()
            return [
                {key: record[key] for key in fields if key in record} if isinstance(record, dict) else {}
                for record in records
            ]

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return self._queued

    def flush(self) -> int:
        """Write everything queued now, in the caller's thread; returns how many records were written.

        After a batch fails for anything but its data, the rest queued now is counted as failed, not tried:
        a locked table or a dead database would cost every batch its timeout again."""
        inserted = 0
        with self._write_lock:
            entries = self._take()
            lines: list[str] = []
            while entries or lines:
                if entries:
                    lines += self._lines(entries.popleft())
                if lines and (len(lines) >= BATCH_ROWS or not entries):
                    written, healthy = self._write(lines)
                    inserted += written
                    lines = []
                    if not healthy:
                        self._give_up(entries)
                        return inserted
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
            if self._closed:
                return
            try:
                self.flush()
            except Exception:  # the writer must survive anything a batch throws
                log.exception("prediction log writer: unexpected error")

    def _take(self) -> deque[_Entry]:
        """Everything queued, leaving the queue empty (one swap under the lock, whatever its length)."""
        with self._lock:
            entries, self._queue, self._queued = self._queue, deque(), 0
        return entries

    def _give_up(self, entries: deque[_Entry]) -> None:
        """Count what this flush still holds and everything queued as failed (the database just failed)."""
        entries += self._take()
        rest = sum(_scored(entry[3]) for entry in entries)
        if rest:
            self.failed += rest
            log.warning("prediction log: %d more records not written (the database failed this flush)", rest)

    def _lines(self, entry: _Entry) -> list[str]:
        """The COPY text lines of one queued call's scored records (a record that cannot be made one is lost)."""
        logged_at, name, version, outcomes, values = entry
        stamp = datetime.fromtimestamp(logged_at, timezone.utc).isoformat()
        prefix = f"{self.source}\t{stamp}\t{_copy_text(name)}\t{_copy_text(version)}\t"
        fields = self.fields
        try:
            return [
                _line(prefix, outcome, value, fields)
                for outcome, value in zip(outcomes, values, strict=False)
                if outcome.prediction is not None
            ]
        except Exception:  # a value even the cleaning cannot write: find it, and lose only it
            lines = []
            for outcome, value in zip(outcomes, values, strict=False):
                if outcome.prediction is None:
                    continue
                try:
                    lines.append(_line(prefix, outcome, value, fields))
                except Exception as exc:
                    self.failed += 1
                    log.warning("prediction log: a record not written (%s: %s)", type(exc).__name__, _first_line(exc))
            return lines

    def _write(self, lines: list[str]) -> tuple[int, bool]:
        """Copy one batch: how many rows were written, and whether the database is still worth writing to.

        A batch refused for its data is retried row by row; any other error loses it (counted, warned once)."""
        try:
            connection = self._connected()
        except Exception as exc:  # unreachable, or reached moments ago: the batch waits for no one
            self._lose(len(lines), len(lines), exc)
            return 0, False
        try:
            _copy(connection, lines)
        except Exception as exc:  # any driver error: the batch is not written, the caller never sees it
            if len(lines) > 1 and _is_data_error(exc) and self._rolled_back():
                return self._write_each(lines)
            self._lose(len(lines), len(lines), exc)
            return 0, False
        self.written += len(lines)
        return len(lines), True

    def _write_each(self, lines: list[str]) -> tuple[int, bool]:
        """Copy the rows of a refused batch one at a time, so only the rows the database refuses are lost."""
        written, refused, first_error = 0, 0, None
        for position, line in enumerate(lines):
            try:
                _copy(self._connected(), [line])
            except Exception as exc:
                if _is_data_error(exc) and self._rolled_back():
                    refused += 1
                    first_error = first_error or exc
                    continue
                self.written += written
                self._lose(refused + len(lines) - position, len(lines), exc)
                return written, False
            written += 1
        self.written += written
        if first_error is not None:
            self.failed += refused
            log.warning(
                "prediction log: %d of %d records not written (%s: %s)",
                refused,
                len(lines),
                type(first_error).__name__,
                _first_line(first_error),
            )
        return written, True

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


def _values_getter(fields: tuple[str, ...] | None) -> Callable[[Any], tuple[Any, ...]] | None:
    """A C-level function from a record to its declared fields' values (KeyError if one is missing)."""
    if fields is None:
        return None
    if len(fields) == 1:
        field = fields[0]
        return lambda record: (record[field],)
    if not fields:
        return lambda record: ()
    return itemgetter(*fields)


def _scored(outcomes: Sequence[Outcome]) -> int:
    return sum(1 for outcome in outcomes if outcome.prediction is not None)


def _line(prefix: str, outcome: Outcome, value: Any, fields: tuple[str, ...] | None) -> str:
    """One record's COPY text line: the call's prefix, then record id, inputs, prediction and label."""
    if type(value) is tuple and fields is not None:
        record = dict(zip(fields, value, strict=False))  # the getter made it len(fields) long: no check
    else:
        record = value if isinstance(value, dict) else {}
    record_id, label = outcome.record_id, outcome.label
    return (
        f"{prefix}{COPY_NULL if record_id is None else _copy_text(str(record_id))}\t{_copy_json(record)}\t"
        f"{float(outcome.prediction)!r}\t{COPY_NULL if label is None else _copy_text(str(label))}\n"  # type: ignore[arg-type]
    )


def _copy_text(text: str) -> str:
    """`text` as a COPY text-format value: storable (clean_text), with backslash, tab and line ends escaped."""
    if _COPY_SPECIAL.search(text) is None:
        return text
    return clean_text(text).translate(_COPY_ESCAPES)


def _copy_json(record: dict[str, Any]) -> str:
    """The record's storable JSON (as inputs_json) as a COPY text-format value."""
    if orjson is not None:
        try:
            data = orjson.dumps(record, default=str, option=_ORJSON_OPTIONS)
        except (TypeError, ValueError):  # a lone surrogate (orjson refuses it), an integer past 64 bits, ...
            data = b"\\u0000"
        # A NUL becomes \u0000, which jsonb refuses (orjson writes every other character as UTF-8, never \ud...):
        # that record, and one orjson refused, take the cleaning path.
        text = inputs_json(record) if b"\\u0000" in data else data.decode()
    else:
        text = inputs_json(record)
    # JSON has no raw tab or line end; its escapes' backslashes are COPY's escape character.
    return text.replace("\\", "\\\\") if "\\" in text else text


def _copy(connection: Any, lines: list[str]) -> None:
    """Send the lines to prediction_log with one COPY and commit (a lone surrogate raises before sending)."""
    data = "".join(lines).encode("utf-8")
    cursor = connection.cursor()
    try:
        if hasattr(cursor, "copy_expert"):  # psycopg2
            cursor.copy_expert(COPY_SQL, io.BytesIO(data), size=COPY_CHUNK)
        else:  # pg8000: an iterable of bytes is sent as it is
            cursor.execute(COPY_SQL, stream=[data])
    finally:
        cursor.close()
    connection.commit()


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
    if isinstance(exc, ValueError):  # a lone surrogate UTF-8 cannot encode, refused before sending
        return True
    code = getattr(exc, "pgcode", None)  # psycopg2
    if code is None and exc.args and isinstance(exc.args[0], dict):  # pg8000: the server's fields by code
        code = exc.args[0].get("C")
    return isinstance(code, str) and code.startswith(DATA_EXCEPTION)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""
