"""The partition_metrics table, as SQLAlchemy Core metadata.

It has its own MetaData until it joins the predictions database's tables (scoring/batch/store/tables.py),
whose Alembic migration creates it; the monitoring code reads and writes it through this Table only.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, MetaData, String, Table, false

metadata = MetaData()

# One row per (job, partition, feature, metric): a rerun of a partition replaces its rows. feature is an
# input's name, the bundle's output name for the prediction, or "*" for the partition as a whole; the
# hourly traffic metrics of the online and stream modes have the same columns (job 'online' or 'stream').
partition_metrics = Table(
    "partition_metrics",
    metadata,
    Column("job", String(200), primary_key=True),
    Column("partition_key", String(32), primary_key=True),
    Column("run_id", String(100), nullable=False),
    Column("feature", String(200), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("value", Float(precision=53), nullable=False),
    # Set on drift statistics only: the threshold the value was compared with.
    Column("threshold", Float(precision=53)),
    Column("drifted", Boolean, nullable=False, server_default=false()),
)
