"""Reading partition_metrics back: a printed table, and a plot of drift per feature across partitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from scoring.errors import ScoringError
from scoring.monitoring.accumulate import PARTITION
from scoring.monitoring.drift import NUMBER_STATISTIC, TEXT_STATISTIC
from scoring.monitoring.tables import partition_metrics

DRIFT_STATISTICS = (NUMBER_STATISTIC, TEXT_STATISTIC)


class PlotUnavailable(ScoringError):
    """--plot was asked for but matplotlib, an optional dependency, is not installed."""


@dataclass(frozen=True)
class StoredMetric:
    """One row of partition_metrics."""

    partition_key: str
    feature: str
    metric: str
    value: float
    threshold: float | None
    drifted: bool


def read_metrics(engine: Engine, job: str, partition_key: str | None = None) -> list[StoredMetric]:
    """A job's metrics (one partition's with `partition_key`), by partition, partition-level rows first."""
    table = partition_metrics
    query = select(
        table.c.partition_key, table.c.feature, table.c.metric, table.c.value, table.c.threshold, table.c.drifted
    ).where(table.c.job == job)
    if partition_key is not None:
        query = query.where(table.c.partition_key == partition_key)
    with engine.connect() as connection:
        found = [StoredMetric(*row) for row in connection.execute(query)]
    return sorted(found, key=lambda m: (m.partition_key, m.feature != PARTITION, m.feature, m.metric))


def format_table(metrics: Sequence[StoredMetric]) -> str:
    """The metrics as aligned text columns, drifted rows marked, and a closing line naming the drifted features."""
    header = ("partition", "feature", "metric", "value", "threshold", "drifted")
    lines = [
        (
            m.partition_key,
            m.feature,
            m.metric,
            f"{m.value:.6g}",
            "" if m.threshold is None else f"{m.threshold:g}",
            "DRIFTED" if m.drifted else "",
        )
        for m in metrics
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *lines]
    ]
    return "\n".join([*text, summary(metrics)])


def summary(metrics: Sequence[StoredMetric]) -> str:
    """One line: how many partitions, and which drifted on which features."""
    partitions = sorted({m.partition_key for m in metrics})
    drifted: dict[str, list[str]] = {}
    for m in metrics:
        if m.drifted:
            drifted.setdefault(m.partition_key, []).append(m.feature)
    if not drifted:
        return f"{len(partitions)} partition(s), none drifted"
    named = "; ".join(f"{key}: {', '.join(features)}" for key, features in sorted(drifted.items()))
    return f"{len(partitions)} partition(s), {len(drifted)} drifted ({named})"


def plot_drift(metrics: Sequence[StoredMetric], path: str, title: str) -> int:
    """Draw each feature's drift statistic across partitions, with its threshold, into a PNG; returns the
    number of features drawn."""
    try:
        from matplotlib.figure import Figure  # optional: only --plot needs it
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    statistics = [m for m in metrics if m.metric in DRIFT_STATISTICS]
    partitions = sorted({m.partition_key for m in metrics})
    position = {key: i for i, key in enumerate(partitions)}
    figure = Figure(figsize=(max(6.0, 0.45 * len(partitions) + 3.0), 4.5), layout="constrained")
    axes = figure.subplots()
    features = sorted({m.feature for m in statistics})
    for feature in features:
        points = sorted((position[m.partition_key], m.value, m.drifted) for m in statistics if m.feature == feature)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        line = axes.plot(xs, ys, marker="o", markersize=3, label=feature)[0]
        flagged = [(x, y) for x, y, d in points if d]
        if flagged:
            axes.scatter(
                [x for x, _ in flagged],
                [y for _, y in flagged],
                s=60,
                facecolors="none",
                edgecolors=line.get_color(),
                linewidths=1.5,
            )
    for threshold in sorted({m.threshold for m in statistics if m.threshold is not None}):
        axes.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        axes.annotate(f"threshold {threshold:g}", (0, threshold), textcoords="offset points", xytext=(2, 3), fontsize=8)
    axes.set_xticks(range(len(partitions)), partitions, rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("drift statistic (circled: drifted)")
    axes.set_title(title)
    if features:
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no drift statistics (no reference profile)", ha="center", transform=axes.transAxes)
    figure.savefig(path, dpi=110)
    return len(features)
