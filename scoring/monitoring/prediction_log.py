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
Lambda zip carries), no SQLAlchemy: the Lambda zip has none. This module is the queue and its flushes; the COPY
text is copy_text.py, the writer and its retries log_writer.py, the connections log_connection.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from scoring.monitoring.copy_text import Outcome, copy_line, copy_text
from scoring.monitoring.log_connection import TIMEOUT, connect
from scoring.monitoring.log_writer import CopyWriter, first_line

log = logging.getLogger(__name__)

SOURCES = ("online", "stream")
# One COPY carries about this many rows (a whole request's records stay in one batch).
BATCH_ROWS = 5000
DEFAULT_CAPACITY = 5000
# The background writer wakes this often (seconds). With the capacity it caps the rate written per process
# (5,000 records a second): the writer's Python (about 1.5 us a record) and the database's COPY (about 5 us)
# stay within issue 14's 5% of a 2-core machine at full load; traffic past it is dropped and counted.
FLUSH_INTERVAL = 1.0

# A queued call: logged_at (epoch seconds), model name and version, the outcomes as given, and per outcome
# its input: a tuple of the declared fields' values, or the record itself (a dict, or anything else when no
# fields are declared), or a dict of the declared fields it has when it lacks some.
_Entry = tuple[float, str, str, Sequence[Outcome], list[Any]]


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
        self._writer = CopyWriter(connect)
        self._queue: deque[_Entry] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._interval = interval
        self.dropped = 0  # records the full queue turned away
        self._unwritten = 0  # records lost before the database saw them (the flush gave up, or no COPY text)
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
    def written(self) -> int:
        """Records copied into prediction_log."""
        return self._writer.written

    @property
    def failed(self) -> int:
        """Records lost to a database error (or that no COPY text could be made of)."""
        return self._writer.failed + self._unwritten

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
                    written, healthy = self._writer.write(lines)
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
        self._writer.reset()

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
            self._unwritten += rest
            log.warning("prediction log: %d more records not written (the database failed this flush)", rest)

    def _lines(self, entry: _Entry) -> list[str]:
        """The COPY text lines of one queued call's scored records (a record that cannot be made one is lost)."""
        logged_at, name, version, outcomes, values = entry
        stamp = datetime.fromtimestamp(logged_at, timezone.utc).isoformat()
        prefix = f"{self.source}\t{stamp}\t{copy_text(name)}\t{copy_text(version)}\t"
        fields = self.fields
        try:
            return [
                copy_line(prefix, outcome, value, fields)
                for outcome, value in zip(outcomes, values, strict=False)
                if outcome.prediction is not None
            ]
        except Exception:  # a value even the cleaning cannot write: find it, and lose only it
            lines = []
            for outcome, value in zip(outcomes, values, strict=False):
                if outcome.prediction is None:
                    continue
                try:
                    lines.append(copy_line(prefix, outcome, value, fields))
                except Exception as exc:
                    self._unwritten += 1
                    log.warning("prediction log: a record not written (%s: %s)", type(exc).__name__, first_line(exc))
            return lines


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
