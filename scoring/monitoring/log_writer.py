"""The prediction log's writer: one connection to prediction_log and the COPYs sent over it.

A batch the database refuses for its data is retried row by row, so one odd record loses only itself. Any
other failure (a lock, a timeout, a lost connection) loses the batch, is counted and warned about once, and
drops the connection; after a failed connection the next attempt waits RETRY_AFTER, so a database that is
down costs no CPU. A database failure never reaches the caller.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from scoring.monitoring.copy_text import copy_lines, is_data_error

log = logging.getLogger("scoring.monitoring.prediction_log")  # one logger for the log's warnings, queue or writer

# After a failed connection, the next attempt waits this long (seconds): a down database costs no CPU.
RETRY_AFTER = 5.0


class CopyWriter:
    """Copies batches of COPY text lines into prediction_log, counting what it wrote and what it lost."""

    def __init__(self, connect: Callable[[], Any]):
        self._connect = connect
        self._connection: Any = None
        self._retry_at = 0.0
        self.written = 0  # records copied into prediction_log
        self.failed = 0  # records lost to a database error

    def write(self, lines: list[str]) -> tuple[int, bool]:
        """Copy one batch: how many rows were written, and whether the database is still worth writing to.

        A batch refused for its data is retried row by row; any other error loses it (counted, warned once)."""
        try:
            connection = self._connected()
        except Exception as exc:  # unreachable, or reached moments ago: the batch waits for no one
            self._lose(len(lines), len(lines), exc)
            return 0, False
        try:
            copy_lines(connection, lines)
        except Exception as exc:  # any driver error: the batch is not written, the caller never sees it
            if len(lines) > 1 and is_data_error(exc) and self._rolled_back():
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
                copy_lines(self._connected(), [line])
            except Exception as exc:
                if is_data_error(exc) and self._rolled_back():
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
                first_line(first_error),
            )
        return written, True

    def _lose(self, lost: int, of: int, exc: BaseException) -> None:
        """Count `lost` records as failed, warn once, and drop the connection the error may have broken."""
        self.failed += lost
        counted = f"{lost} records" if lost == of else f"{lost} of {of} records"
        log.warning("prediction log: %s not written (%s: %s)", counted, type(exc).__name__, first_line(exc))
        self.reset()

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

    def reset(self) -> None:
        """Drop a connection an error may have left in a failed transaction; the next batch reconnects."""
        if self._connection is not None:
            # Closing a broken connection may raise anything; it is being dropped either way.
            with contextlib.suppress(Exception):
                self._connection.close()
        self._connection = None


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""
