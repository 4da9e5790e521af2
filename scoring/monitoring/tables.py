"""The monitoring tables, as SQLAlchemy Core metadata: partition_metrics, traffic_metrics and prediction_log.

Migration 0003 (scoring/batch/store/migrations) creates them; scoring/batch/store/tables.py adds them to the
predictions database's metadata. Monitoring code reads and writes them through these Tables only, except
the prediction log's writer (scoring.monitoring.prediction_log), which runs where SQLAlchemy is not
installed (the Lambda) and speaks plain DB-API to the same columns.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# Where logged traffic comes from: the web service or the stream's Lambda.
SOURCES = ("online", "stream")


def _metrics_columns() -> list[Column]:
    return [
        Column("job", String(200), primary_key=True),
        Column("partition_key", String(32), primary_key=True),
        Column("run_id", String(100), nullable=False),
        Column("feature", String(200), primary_key=True),
        Column("metric", String(64), primary_key=True),
        Column("value", Float(precision=53), nullable=False),
        # Set on drift statistics only: the threshold the value was compared with.
        Column("threshold", Float(precision=53)),
        Column("drifted", Boolean, nullable=False, server_default=false()),
    ]


# One row per (job, partition, feature, metric): a rerun of a partition replaces its rows. feature is an
# input's name, the bundle's output name for the prediction, or "*" for the partition as a whole.
partition_metrics = Table("partition_metrics", metadata, *_metrics_columns())

# The same metrics for each hour of logged traffic: job is the source ('online' or 'stream'), partition_key
# the hour (YYYY-MM-DDTHH, UTC); the hourly traffic DAG replaces an hour's rows when it recomputes them.
traffic_metrics = Table("traffic_metrics", metadata, *_metrics_columns())

# What the web service and the Lambda scored: one row per answered record.
prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("record_id", Text),
    Column("inputs", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("prediction", Float(precision=53), nullable=False),
    Column("label", Text),
    CheckConstraint("source IN ('online', 'stream')", name="ck_prediction_log_source"),
    Index("ix_prediction_log_source_logged_at", "source", "logged_at"),
)
