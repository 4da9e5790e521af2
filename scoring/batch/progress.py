"""A one-line progress counter for long runs on a terminal; silent when output is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class RowProgress:
    """Prints 'label: N rows (R rows/s)' in place at most a few times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.5):
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = self.stream.isatty()
        self.rows = 0
        self._started = time.monotonic()
        self._last = 0.0

    def __enter__(self) -> RowProgress:
        return self

    def advance(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            rate = self.rows / max(now - self._started, 1e-9)
            self.stream.write(f"\r{self.label}: {self.rows:,} rows ({rate:,.0f} rows/s)")
            self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self.enabled and self.rows:
            self.stream.write("\r\033[K")
            self.stream.flush()
