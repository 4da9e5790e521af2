"""Metrics of one partition, accumulated chunk by chunk in bounded memory, mergeable across shards.

A number column keeps a histogram on edges fixed from its first PENDING_LIMIT values (for mean and
quantiles) and, when the bundle has a reference profile, one on the reference's edges (for drift); a text
column keeps category counts (the reference's categories plus OTHER, or the first MAX_CATEGORIES seen).
Quantiles come from a histogram, so they are approximate (linear within a bin); the mean is exact.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scoring.monitoring import drift
from scoring.monitoring.histogram import REPORTED_QUANTILES, NumberHistogram, TextCounts, quantile_edges
from scoring.monitoring.profile import Kind, NumberProfile, ReferenceProfile, TextProfile

# The feature name of partition-level rows.
PARTITION = "*"
# Without a reference, a number column buffers this many values before fixing its bin edges on them.
PENDING_LIMIT = 10_000


@dataclass(frozen=True)
class MetricRow:
    """One row of partition_metrics, less the job, partition key and run id the caller adds."""

    feature: str
    metric: str
    value: float
    threshold: float | None = None
    drifted: bool = False


class _Histograms:
    """A histogram on edges fixed from the first PENDING_LIMIT values seen (values wait in a bounded buffer
    until then), so quantiles stay fine wherever the data lies, even far outside the reference."""

    def __init__(self) -> None:
        self.histogram: NumberHistogram | None = None
        self.pending: list[np.ndarray] = []
        self.pending_size = 0

    def add(self, values: np.ndarray) -> None:
        if self.histogram is not None:
            self.histogram.add(values)
            return
        self.pending.append(values)
        self.pending_size += len(values)
        if self.pending_size >= PENDING_LIMIT:
            self.finished()

    def finished(self) -> NumberHistogram:
        """The histogram, fixing its edges on the buffered values if that has not happened yet."""
        if self.histogram is None:
            values = np.concatenate(self.pending) if self.pending else np.zeros(0)
            self.histogram = NumberHistogram(quantile_edges(values))
            self.histogram.add(values)
            self.pending, self.pending_size = [], 0
        return self.histogram

    def to_json(self) -> dict[str, Any]:
        pending = np.concatenate(self.pending).tolist() if self.pending else []
        return {"histogram": self.histogram.to_json() if self.histogram is not None else None, "pending": pending}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> _Histograms:
        histograms = cls()
        histograms.histogram = NumberHistogram.from_json(raw["histogram"]) if raw["histogram"] is not None else None
        pending = np.array(raw["pending"], dtype=float)
        histograms.pending, histograms.pending_size = ([pending] if len(pending) else []), len(pending)
        return histograms

    def merge(self, other: _Histograms) -> None:
        if other.histogram is None:
            for values in other.pending:
                self.add(values)
            return
        if self.histogram is None:
            pending, self.pending, self.pending_size = self.pending, [], 0
            self.histogram = copy.deepcopy(other.histogram)
            for values in pending:
                self.histogram.add(values)
            return
        self.histogram.merge(other.histogram)


class _NumberColumn:
    """A number column: its own histogram for the statistics, and one on the reference's edges for drift."""

    def __init__(self, reference_edges: np.ndarray | None):
        self.stats = _Histograms()
        self.on_reference = None if reference_edges is None else NumberHistogram(reference_edges)
        self.missing = 0

    def add(self, values: np.ndarray) -> None:
        self.stats.add(values)
        if self.on_reference is not None:
            self.on_reference.add(values)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "number",
            "missing": self.missing,
            "stats": self.stats.to_json(),
            "on_reference": self.on_reference.to_json() if self.on_reference is not None else None,
        }

    def restore(self, raw: Mapping[str, Any]) -> None:
        """Take the counts of a `to_json` state (the reference edges stay this column's own)."""
        self.missing = int(raw["missing"])
        self.stats = _Histograms.from_json(raw["stats"])
        if self.on_reference is not None and raw["on_reference"] is not None:
            self.on_reference = NumberHistogram.from_json(raw["on_reference"])

    def merge(self, other: _NumberColumn) -> None:
        self.missing += other.missing
        self.stats.merge(other.stats)
        if self.on_reference is not None and other.on_reference is not None:
            self.on_reference.merge(other.on_reference)


class _TextColumn:
    def __init__(self, categories: tuple[str, ...] | None):
        self.counts = TextCounts(categories)
        self.missing = 0

    def to_json(self) -> dict[str, Any]:
        return {"kind": "text", "missing": self.missing, "counts": dict(self.counts.counts)}

    def restore(self, raw: Mapping[str, Any]) -> None:
        """Take the counts of a `to_json` state."""
        self.missing = int(raw["missing"])
        self.counts.counts = {str(name): int(n) for name, n in raw["counts"].items()}

    def merge(self, other: _TextColumn) -> None:
        self.missing += other.missing
        self.counts.merge(other.counts)


class PartitionAccumulator:
    """Everything partition_metrics reports for one partition (or one shard of it), fed one chunk at a time."""

    def __init__(
        self,
        profile: ReferenceProfile | None,
        kinds: Mapping[str, Kind],
        output_name: str,
        *,
        number_threshold: float = drift.DEFAULT_NUMBER_THRESHOLD,
        text_threshold: float = drift.DEFAULT_TEXT_THRESHOLD,
    ):
        self.profile = profile
        self.output_name = output_name
        self.kinds: dict[str, Kind] = {name: kind for name, kind in kinds.items() if name != output_name}
        self.kinds[output_name] = kinds.get(output_name, "number")
        self.thresholds = {"number": number_threshold, "text": text_threshold}
        self.valid_rows = 0
        self.rejected_rows = 0
        self.columns: dict[str, _NumberColumn | _TextColumn] = {
            name: self._new_column(name, kind) for name, kind in self.kinds.items()
        }

    def _reference(self, name: str) -> NumberProfile | TextProfile | None:
        """The reference's profile of a column, when there is one of the same kind."""
        column = self.profile.columns.get(name) if self.profile is not None else None
        return column if column is not None and column.kind == self.kinds[name] else None

    def _new_column(self, name: str, kind: Kind) -> _NumberColumn | _TextColumn:
        reference = self._reference(name)
        if kind == "number":
            return _NumberColumn(np.array(reference.edges) if isinstance(reference, NumberProfile) else None)
        return _TextColumn(reference.categories if isinstance(reference, TextProfile) else None)

    def add(self, valid_inputs: pd.DataFrame, predictions: np.ndarray, rejected_count: int) -> None:
        """Count one chunk: its valid rows (the inputs named in `kinds`), their predictions, and how many it rejected."""
        self.valid_rows += len(valid_inputs)
        self.rejected_rows += int(rejected_count)
        for name, column in self.columns.items():
            if name == self.output_name:
                series = pd.Series(np.asarray(predictions, dtype=float))
            elif name in valid_inputs.columns:
                series = valid_inputs[name]
            else:
                column.missing += len(valid_inputs)
                continue
            if isinstance(column, _NumberColumn):
                values = series.to_numpy(dtype=float, na_value=np.nan)
                missing = np.isnan(values)
                column.missing += int(missing.sum())
                column.add(values[~missing] if missing.any() else values)
            else:
                # A plain int64 column cannot hold a null: skip the scan.
                column.missing += 0 if series.dtype == np.int64 else int(series.isna().sum())
                column.counts.add(series)

    def to_json(self) -> dict[str, Any]:
        """The accumulator as plain JSON: under Airflow each shard runs in its own process and the publish
        merges what they staged."""
        return {
            "profile": self.profile.to_json() if self.profile is not None else None,
            "kinds": dict(self.kinds),
            "output": self.output_name,
            "valid_rows": self.valid_rows,
            "rejected_rows": self.rejected_rows,
            "columns": {name: column.to_json() for name, column in self.columns.items()},
        }

    @classmethod
    def from_json(
        cls,
        raw: Mapping[str, Any],
        *,
        number_threshold: float = drift.DEFAULT_NUMBER_THRESHOLD,
        text_threshold: float = drift.DEFAULT_TEXT_THRESHOLD,
    ) -> PartitionAccumulator:
        """The accumulator `to_json` described, judging drift with the given thresholds."""
        profile = ReferenceProfile.from_json(raw["profile"]) if raw["profile"] is not None else None
        accumulator = cls(
            profile, raw["kinds"], raw["output"], number_threshold=number_threshold, text_threshold=text_threshold
        )
        accumulator.valid_rows = int(raw["valid_rows"])
        accumulator.rejected_rows = int(raw["rejected_rows"])
        for name, column in accumulator.columns.items():
            column.restore(raw["columns"][name])
        return accumulator

    def merge(self, other: PartitionAccumulator) -> None:
        """Add another shard's accumulator of the same partition (same profile, kinds and output)."""
        if other.kinds != self.kinds:
            raise ValueError("cannot merge accumulators of different columns")
        self.valid_rows += other.valid_rows
        self.rejected_rows += other.rejected_rows
        for name, column in self.columns.items():
            column.merge(other.columns[name])  # type: ignore[arg-type]

    def metrics(self) -> list[MetricRow]:
        """The partition's rows: counts and shares, then each input's and the prediction's statistics and drift."""
        rows: list[MetricRow] = []
        features: list[MetricRow] = []
        for name, column in self.columns.items():
            features.extend(self._column_metrics(name, column))
        drifted = sorted({row.feature for row in features if row.drifted and row.feature != self.output_name})
        total = self.valid_rows + self.rejected_rows
        rows.append(MetricRow(PARTITION, "input_rows", float(total)))
        rows.append(MetricRow(PARTITION, "rejected_rows", float(self.rejected_rows)))
        rows.append(MetricRow(PARTITION, "share_rejected", self.rejected_rows / total if total else 0.0))
        rows.append(MetricRow(PARTITION, "reference_present", 1.0 if self.profile is not None else 0.0))
        if self.profile is not None:
            rows.append(MetricRow(PARTITION, "drifted_features", float(len(drifted))))
        return rows + features

    def drifted_features(self) -> list[str]:
        """Names of the drifted columns, the prediction included (for a warning naming them)."""
        return [row.feature for row in self.metrics() if row.drifted]

    def _column_metrics(self, name: str, column: _NumberColumn | _TextColumn) -> list[MetricRow]:
        rows: list[MetricRow] = []
        if name != self.output_name and self.valid_rows:
            rows.append(MetricRow(name, "share_missing", column.missing / self.valid_rows))
        reference = self._reference(name)
        if isinstance(column, _NumberColumn):
            histogram = column.stats.finished()
            if histogram.count:
                rows.append(MetricRow(name, "mean", histogram.mean()))
                rows.extend(MetricRow(name, key, histogram.quantile(q)) for key, q in REPORTED_QUANTILES.items())
            current = column.on_reference
            if isinstance(reference, NumberProfile) and current is not None and current.count:
                ref = reference.histogram()
                value = drift.wasserstein_normed(
                    ref.positions(), ref.counts, current.positions(), current.counts, reference.std
                )
                rows.append(self._drift_row(name, drift.NUMBER_STATISTIC, value, "number"))
        elif isinstance(reference, TextProfile) and column.counts.count:
            value = drift.jensenshannon_distance(reference.counts, column.counts.counts)
            rows.append(self._drift_row(name, drift.TEXT_STATISTIC, value, "text"))
        return [row for row in rows if np.isfinite(row.value)]

    def _drift_row(self, name: str, statistic: str, value: float, kind: Kind) -> MetricRow:
        threshold = self.thresholds[kind]
        return MetricRow(name, statistic, value, threshold, drift.is_drifted(value, threshold))
