"""Alembic environment: runs against the connection or URL handed in by scoring.batch.store.engines."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from scoring.batch.store.tables import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic needs a connection (scoring.batch.store.engines.upgrade) or sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
