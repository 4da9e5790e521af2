"""The tables of the predictions database, as SQLAlchemy Core metadata: the three of batch scoring here,
and monitoring's (partition_metrics, traffic_metrics, prediction_log; scoring.monitoring.tables) added to
the same metadata.

Alembic migrations (scoring/batch/store/migrations, run by `scoring db upgrade`) create and evolve
them; nothing calls create_all. The shapes follow the data contract in the README.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from scoring.monitoring import tables as monitoring_tables

metadata = MetaData()

# JSONB on PostgreSQL, so users can query raw rejected records; plain JSON text elsewhere.
RawRecord = JSON().with_variant(JSONB(), "postgresql")

predictions = Table(
    "predictions",
    metadata,
    Column("job", String(200), primary_key=True),
    Column("partition_key", String(32), primary_key=True),
    Column("record_id", Text, primary_key=True),
    Column("prediction", Float(precision=53), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("run_id", String(100), nullable=False),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    # A classifier's label and, on request, its class probabilities; NULL for a regressor (revision 0002).
    Column("label", Text),
    Column("probabilities", RawRecord),
)

scoring_runs = Table(
    "scoring_runs",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("job", String(200), nullable=False),
    Column("partition_key", String(32), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("model_sha256", String(64), nullable=False),
    Column("input_rows", BigInteger, nullable=False),
    Column("scored_rows", BigInteger, nullable=False),
    Column("rejected_rows", BigInteger, nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("message", Text),
    Index("ix_scoring_runs_job_partition", "job", "partition_key"),
)

rejected_records = Table(
    "rejected_records",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(100), nullable=False),
    Column("job", String(200), nullable=False),
    Column("partition_key", String(32), nullable=False),
    Column("record_id", Text),
    Column("reason", Text, nullable=False),
    Column("raw_record", RawRecord, nullable=False),
    Index("ix_rejected_records_job_partition", "job", "partition_key"),
    Index("ix_rejected_records_run", "run_id"),
)

# Monitoring's tables belong to this database too (revision 0003): the metadata Alembic compares with knows them.
for _table in monitoring_tables.metadata.tables.values():
    _table.to_metadata(metadata)
