"""Writing a partition's metrics: delete its old rows and insert the new ones, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Table, delete, insert

from scoring.monitoring.accumulate import MetricRow
from scoring.monitoring.tables import partition_metrics


def replace_partition_metrics(
    connection: Connection,
    job: str,
    partition_key: str,
    run_id: str,
    rows: Iterable[MetricRow],
    table: Table = partition_metrics,
) -> int:
    """Replace the partition's metrics with `rows` (a rerun replaces them, as it replaces predictions); returns
    how many were written. The caller's transaction makes this atomic with the predictions it describes."""
    connection.execute(delete(table).where(table.c.job == job, table.c.partition_key == partition_key))
    values = [
        {
            "job": job,
            "partition_key": partition_key,
            "run_id": run_id,
            "feature": row.feature,
            "metric": row.metric,
            "value": float(row.value),
            "threshold": row.threshold,
            "drifted": bool(row.drifted),
        }
        for row in rows
    ]
    if values:
        connection.execute(insert(table), values)
    return len(values)
