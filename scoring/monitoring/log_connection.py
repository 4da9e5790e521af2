"""Connections for the prediction log: plain DB-API to PostgreSQL with connect, statement and lock timeouts.

psycopg2 where installed, else the pure-Python pg8000, which the Lambda zip carries; no SQLAlchemy (the
Lambda zip has none). The timeouts make a locked or stuck prediction_log cost a flush seconds, never a hang.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Seconds a connection may take to open, a statement to run and a lock to be waited for: a locked or stuck
# prediction_log costs a flush this long once, never a hang (the Lambda flushes before it answers).
TIMEOUT = 3.0
# pg8000's socket timeout: past the server's own timeouts, so those fire first and leave a usable connection.
SOCKET_GRACE = 5.0


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
