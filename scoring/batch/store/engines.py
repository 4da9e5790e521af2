"""Engines and migrations for the predictions database (PostgreSQL in production, SQLite embedded).

Migrations run at deploy time only (`scoring db upgrade`: make demo, make airflow, the compose seed
service); scoring runs never migrate, they check the revision (`require_current`) and stop with
DatabaseBehind saying what to run, so several workers never race to migrate one database.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from scoring.errors import ConfigError, DatabaseBehind, DatabaseUnavailable
from scoring.settings import normalize_database_url

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their directory created and WAL journaling."""
    url = normalize_database_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"SCORING_DATABASE_URL is not a database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # hide_parameters: a refused row (a rejected record, a raw input) never reaches a log through an error.
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def describe(engine: Engine) -> str:
    """The engine's URL with its password hidden, fit for a message."""
    return engine.url.render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line only: PostgreSQL adds hints and context lines below it."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return lines[0].strip() if lines else type(cause).__name__


def check_reachable(engine: Engine) -> None:
    """Open one connection, so an unreachable database is one DatabaseUnavailable naming it, not a traceback."""
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database {describe(engine)}: {first_line(exc)}") from exc


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (a user's SQL shell) see the last committed publish while the next one runs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` with Alembic (the only way tables are created); deploy time only."""
    from alembic import command

    check_reachable(engine)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def require_current(engine: Engine) -> None:
    """Return if the schema is at this code's head revision, else DatabaseBehind naming the command that fixes it.

    DatabaseUnavailable when the database cannot be reached at all.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    check_reachable(engine)
    heads = set(ScriptDirectory.from_config(_alembic_config()).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return
    where = describe(engine)
    at = ", ".join(sorted(current)) or "no revision (no tables yet)"
    raise DatabaseBehind(
        f"the predictions database at {where} is at {at}, this code needs revision {', '.join(sorted(heads))}: "
        f"run `scoring db upgrade --database {where}` (with the real password) where the code is deployed"
    )
