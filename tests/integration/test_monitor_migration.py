"""Migration 0003 on PostgreSQL and SQLite: the monitoring tables exactly as scoring.monitoring.tables declares them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from scoring.batch.store.engines import require_current, upgrade
from scoring.batch.store.tables import metadata
from scoring.errors import DatabaseBehind
from scoring.monitoring.tables import partition_metrics, prediction_log, traffic_metrics

pytestmark = pytest.mark.postgres

MONITORING = ("partition_metrics", "traffic_metrics", "prediction_log")


def _schema_differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), metadata)


def test_the_head_creates_the_monitoring_tables_as_declared(pg_engine):
    # Given a PostgreSQL database upgraded to the head
    inspector = sa.inspect(pg_engine)
    # Then the three tables exist, with the declared primary keys and the prediction log's index
    for table in (partition_metrics, traffic_metrics, prediction_log):
        assert inspector.has_table(table.name)
        assert inspector.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
        assert [c["name"] for c in inspector.get_columns(table.name)] == [c.name for c in table.columns]
    indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("prediction_log")}
    assert indexes["ix_prediction_log_source_logged_at"] == ["source", "logged_at"]
    # And Alembic sees no difference between the migrated schema and the code's metadata (types included)
    assert _schema_differences(pg_engine) == []
    require_current(pg_engine)


def test_the_prediction_log_accepts_only_its_two_sources(pg_engine):
    row = {
        "logged_at": datetime(2026, 3, 1, 8, tzinfo=timezone.utc),
        "model_name": "m",
        "model_version": "1",
        "inputs": {"trip_distance": 1.5},
        "prediction": 3.0,
    }
    with pg_engine.begin() as connection:
        connection.execute(sa.insert(prediction_log), [{**row, "source": "online"}, {**row, "source": "stream"}])
    with pytest.raises(sa.exc.IntegrityError), pg_engine.begin() as connection:
        connection.execute(sa.insert(prediction_log).values(**row, source="batch"))


def test_a_database_at_0002_is_behind_and_downgrade_removes_the_tables(pg_schema_url):
    # Given a database at revision 0002
    from scoring.batch.store.engines import make_engine

    engine = make_engine(pg_schema_url)
    upgrade(engine, "0002")
    # Then scoring refuses it, naming the revision it needs
    with pytest.raises(DatabaseBehind, match="is at 0002, this code needs revision 0003"):
        require_current(engine)
    # When upgraded, and downgraded again, Then the monitoring tables come and go
    upgrade(engine)
    assert all(sa.inspect(engine).has_table(name) for name in MONITORING)
    from alembic import command

    from scoring.batch.store.engines import _alembic_config

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    assert not any(sa.inspect(engine).has_table(name) for name in MONITORING)
    engine.dispose()


def test_sqlite_migrates_to_the_same_tables(sqlite_engine):
    inspector = sa.inspect(sqlite_engine)
    assert all(inspector.has_table(name) for name in MONITORING)
