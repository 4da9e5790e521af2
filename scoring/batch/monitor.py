"""A run's monitoring: each shard feeds a PartitionAccumulator from the chunks it already holds, stages its
state as JSON beside its predictions, and the publish merges the shards' states into the partition's metrics.

The state carries the bundle's reference profile, so the publish needs no more of the bundle than its
manifest. Shards run in other processes under Airflow, so the accumulator travels as JSON; until
scoring.monitoring.accumulate gives PartitionAccumulator its own to_json/from_json, this module reads and
writes its (private) parts, and uses the accumulator's own methods as soon as they exist.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scoring import storage
from scoring.model.bundle import Manifest, ModelBundle
from scoring.monitoring import drift
from scoring.monitoring.accumulate import MetricRow, PartitionAccumulator
from scoring.monitoring.histogram import NumberHistogram, TextCounts
from scoring.monitoring.profile import Kind, ReferenceProfile

STATE_VERSION = 1
# Inputs of these feature kinds are text to the model, so their drift is measured on categories.
TEXT_FEATURE_KINDS = ("categorical", "concat")


def input_kinds(manifest: Manifest) -> dict[str, Kind]:
    """Each input's kind for monitoring: "text" when it feeds a categorical or concat feature (or is a string), else "number"."""
    text_inputs = {
        name
        for feature in manifest.declaration.features
        if feature.kind in TEXT_FEATURE_KINDS
        for name in feature.inputs
    }
    return {
        spec.name: "text" if spec.name in text_inputs or spec.type == "string" else "number" for spec in manifest.inputs
    }


def reference_of(bundle: ModelBundle) -> ReferenceProfile | None:
    """The bundle's reference profile, if it carries one."""
    return getattr(bundle, "reference", None)


def shard_monitor(bundle: ModelBundle) -> PartitionAccumulator:
    """A fresh accumulator for one shard of a run scored with `bundle`."""
    manifest = bundle.manifest
    return PartitionAccumulator(reference_of(bundle), input_kinds(manifest), manifest.output)


def stage_monitor(monitor: PartitionAccumulator | None, uri: str) -> str:
    """Write the accumulator's state to `uri` (atomically for a local path); returns the URI, "" for none."""
    if monitor is None:
        return ""
    data = json.dumps(accumulator_state(monitor), separators=(",", ":")).encode()
    if storage.is_s3(uri):
        storage.write_bytes(uri, data)
    else:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        partial = f"{uri}.partial"
        Path(partial).write_bytes(data)
        os.replace(partial, uri)
    return uri


@dataclass(frozen=True)
class RunMetrics:
    """A run's partition_metrics rows and the features (the prediction included) that drifted."""

    rows: list[MetricRow]
    drifted: list[str]


def merged_metrics(states: list[Mapping[str, Any]], drift_threshold: float | None = None) -> RunMetrics | None:
    """Merge the shards' staged states into the partition's metrics; None when no shard kept any.

    `drift_threshold` replaces the default threshold of every drift statistic (numbers and text).
    """
    if not states:
        return None
    thresholds = {} if drift_threshold is None else {"number": drift_threshold, "text": drift_threshold}
    merged = accumulator_from_state(states[0], thresholds)
    for state in states[1:]:
        merged.merge(accumulator_from_state(state, thresholds))
    rows = merged.metrics()
    return RunMetrics(rows=rows, drifted=[row.feature for row in rows if row.drifted])


def read_state(uri: str) -> dict[str, Any]:
    """A shard's staged state back."""
    return json.loads(storage.read_bytes(uri))


# --- The accumulator's state as plain JSON -------------------------------------------------------------


def accumulator_state(accumulator: PartitionAccumulator) -> dict[str, Any]:
    """The accumulator as a JSON-able dict: its profile, columns and counts."""
    own = getattr(accumulator, "to_json", None)
    if callable(own):
        return {"version": STATE_VERSION, "accumulator": own()}
    profile = accumulator.profile
    return {
        "version": STATE_VERSION,
        "profile": profile.to_json() if profile is not None else None,
        "kinds": dict(accumulator.kinds),
        "output": accumulator.output_name,
        "valid_rows": accumulator.valid_rows,
        "rejected_rows": accumulator.rejected_rows,
        "columns": {name: _column_state(column) for name, column in accumulator.columns.items()},
    }


def accumulator_from_state(state: Mapping[str, Any], thresholds: Mapping[str, float]) -> PartitionAccumulator:
    """An accumulator rebuilt from `accumulator_state`, with the given drift thresholds."""
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"monitoring state version {state.get('version')!r}; this code reads {STATE_VERSION}")
    number = thresholds.get("number", drift.DEFAULT_NUMBER_THRESHOLD)
    text = thresholds.get("text", drift.DEFAULT_TEXT_THRESHOLD)
    if "accumulator" in state:
        return PartitionAccumulator.from_json(  # type: ignore[attr-defined]
            state["accumulator"], number_threshold=number, text_threshold=text
        )
    profile = ReferenceProfile.from_json(state["profile"]) if state["profile"] is not None else None
    accumulator = PartitionAccumulator(
        profile, state["kinds"], state["output"], number_threshold=number, text_threshold=text
    )
    accumulator.valid_rows = int(state["valid_rows"])
    accumulator.rejected_rows = int(state["rejected_rows"])
    for name, column in accumulator.columns.items():
        _restore_column(column, state["columns"][name])
    return accumulator


def _histogram_state(histogram: NumberHistogram | None) -> dict[str, Any] | None:
    if histogram is None:
        return None
    return {
        "edges": histogram.edges.tolist(),
        "counts": histogram.counts.tolist(),
        "sums": histogram.sums.tolist(),
        "minimum": histogram.minimum,
        "maximum": histogram.maximum,
    }


def _histogram_from(state: Mapping[str, Any] | None) -> NumberHistogram | None:
    if state is None:
        return None
    histogram = NumberHistogram(np.array(state["edges"], dtype=float))
    histogram.counts = np.array(state["counts"], dtype=np.int64)
    histogram.sums = np.array(state["sums"], dtype=float)
    histogram.minimum, histogram.maximum = float(state["minimum"]), float(state["maximum"])
    return histogram


def _column_state(column: Any) -> dict[str, Any]:
    if isinstance(getattr(column, "counts", None), TextCounts):
        return {"kind": "text", "missing": column.missing, "counts": dict(column.counts.counts)}
    stats = column.stats
    pending = np.concatenate(stats.pending).tolist() if stats.pending else []
    return {
        "kind": "number",
        "missing": column.missing,
        "stats": _histogram_state(stats.histogram),
        "pending": pending,
        "on_reference": _histogram_state(column.on_reference),
    }


def _restore_column(column: Any, state: Mapping[str, Any]) -> None:
    column.missing = int(state["missing"])
    if state["kind"] == "text":
        column.counts.counts = {str(name): int(n) for name, n in state["counts"].items()}
        return
    column.stats.histogram = _histogram_from(state["stats"])
    pending = np.array(state["pending"], dtype=float)
    column.stats.pending = [pending] if len(pending) else []
    column.stats.pending_size = len(pending)
    if column.on_reference is not None and state["on_reference"] is not None:
        column.on_reference = _histogram_from(state["on_reference"])
