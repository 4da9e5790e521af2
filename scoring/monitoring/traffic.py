"""Hourly traffic metrics: the logged predictions of one source's closed hour, read in chunks from prediction_log,
summarised by the same PartitionAccumulator as a batch partition, and written to traffic_metrics (replacing
the hour's rows), with job = the source and partition_key = the hour."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from scoring.model.manifest import Manifest
from scoring.model.reference import ReferenceProfile, input_kinds
from scoring.monitoring.accumulate import MetricRow, PartitionAccumulator
from scoring.monitoring.tables import SOURCES, prediction_log, traffic_metrics
from scoring.monitoring.writes import replace_partition_metrics
from scoring.partition_keys import PartitionKey

# Logged rows read per round trip: bounded memory whatever an hour's traffic.
CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class HourMetrics:
    """One source's hour: how many predictions it logged, the rows written and the features that drifted."""

    source: str
    hour: str
    logged: int
    rows: list[MetricRow]
    drifted: list[str]


def hour_key(start: datetime) -> str:
    """The hour's partition key, YYYY-MM-DDTHH (UTC), as batch names an hourly partition."""
    return str(PartitionKey.of_hour(start))


def parse_hour(key: str) -> datetime:
    """The start (UTC) of the hour named YYYY-MM-DDTHH; InvalidPartitionKey, saying what is wrong, for anything else."""
    return PartitionKey.parse_hour(key).start()


def logged_chunks(engine: Engine, source: str, start: datetime) -> Iterator[tuple[list[dict], np.ndarray]]:
    """The hour's logged inputs and predictions for `source`, CHUNK_ROWS at a time (a server-side cursor)."""
    end = start + timedelta(hours=1)
    query = (
        select(prediction_log.c.inputs, prediction_log.c.prediction)
        .where(prediction_log.c.source == source, prediction_log.c.logged_at >= start, prediction_log.c.logged_at < end)
        .order_by(prediction_log.c.id)
    )
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(query)
        for chunk in result.partitions(CHUNK_ROWS):
            yield [row.inputs or {} for row in chunk], np.array([row.prediction for row in chunk], dtype=float)


def hour_metrics(
    engine: Engine,
    source: str,
    start: datetime,
    manifest: Manifest,
    reference: ReferenceProfile | None,
    threshold: float | None = None,
) -> HourMetrics:
    """The metrics of `source`'s hour starting at `start`, computed as for a batch partition of the same model."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    kinds = input_kinds(manifest)
    thresholds = {} if threshold is None else {"number_threshold": threshold, "text_threshold": threshold}
    accumulator = PartitionAccumulator(reference, kinds, manifest.output, **thresholds)
    logged = 0
    for inputs, predictions in logged_chunks(engine, source, start):
        frame = pd.DataFrame.from_records(inputs, columns=list(kinds))
        accumulator.add(frame, predictions, rejected_count=0)
        logged += len(inputs)
    rows = accumulator.metrics() if logged else []
    return HourMetrics(
        source=source,
        hour=hour_key(start),
        logged=logged,
        rows=rows,
        drifted=[row.feature for row in rows if row.drifted],
    )


def write_hour(engine: Engine, metrics: HourMetrics, run_id: str) -> int:
    """Replace the hour's traffic_metrics rows for its source with these (an hour without traffic keeps none)."""
    with engine.begin() as connection:
        return replace_partition_metrics(
            connection, metrics.source, metrics.hour, run_id, metrics.rows, table=traffic_metrics
        )
