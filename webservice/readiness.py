"""Readiness of the predictions database: a cheap `SELECT 1`, remembered for a few seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scoring.settings import Settings, normalize_database_url

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

# Probes arrive every few seconds from every load balancer; one real check per interval is enough.
CACHE_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class CheckResult:
    """Whether a dependency is usable, and a short reason safe to show to anyone."""

    ok: bool
    detail: str


def database_to_check(settings: Settings) -> str | None:
    """The database URL /ready must reach, or None when the service was not pointed at one.

    Left unset, the URL is the batch demo's local SQLite file, which the web service never writes;
    only a URL chosen on purpose (SCORING_DATABASE_URL set, even to that default) is part of readiness.
    """
    return settings.database_url if settings.database_url_set else None


class DatabaseProbe:
    """Checks that the database answers `SELECT 1`; thread-safe, and built lazily so no connection crosses a fork.

    The lock guards the cached state only and is never held while the database is asked: under gevent
    a connect may yield, and another greenlet then waiting on that (pre-fork, unpatched) lock would
    block the whole worker. While one check runs, other callers get the previous answer.
    """

    def __init__(self, url: str, cache_seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.url = url
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._checking = False
        self._checked_at: float | None = None
        self._last = CheckResult(False, "not checked yet")

    def check(self) -> CheckResult:
        """The last result if it is fresh or a check is under way, otherwise a new `SELECT 1`."""
        with self._lock:
            now = self.clock()
            stale = self._checked_at is None or now - self._checked_at >= self.cache_seconds
            if self._checking or not stale:
                return self._last
            self._checking = True
        try:
            result = self._select_one()
        finally:
            with self._lock:
                self._checking = False
        with self._lock:
            self._last, self._checked_at = result, now
        return result

    def _select_one(self) -> CheckResult:
        from sqlalchemy import text

        try:
            with self._get_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # a bad URL, a refused connection, a missing driver: all mean "not ready"
            log.warning("database readiness check failed: %s: %s", type(exc).__name__, exc)
            return CheckResult(False, f"unreachable ({type(exc).__name__})")
        return CheckResult(True, "ok")

    def _get_engine(self):
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.engine import make_url
            from sqlalchemy.pool import NullPool

            url = make_url(normalize_database_url(self.url))
            # A probe must fail fast, not hang on a silent host; only PostgreSQL drivers take this argument.
            connect_args = (
                {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if url.get_backend_name() == "postgresql" else {}
            )
            # NullPool: one short connection per check, nothing held open between probes.
            self._engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        return self._engine
