"""A run's monitoring: each shard feeds a PartitionAccumulator from the chunks it already holds, stages its
state as JSON beside its predictions, and the publish merges the shards' states into the partition's metrics.

The state carries the bundle's reference profile, so the publish needs no more of the bundle than its
manifest. Shards run in other processes under Airflow, so the accumulator travels as JSON
(PartitionAccumulator.to_json / from_json).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring import storage
from scoring.model.bundle import ModelBundle
from scoring.monitoring import drift
from scoring.monitoring.accumulate import MetricRow, PartitionAccumulator
from scoring.monitoring.profile import ReferenceProfile, input_kinds

# 2: the accumulator's own to_json (1 was this module's copy of its parts).
STATE_VERSION = 2


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


def accumulator_state(accumulator: PartitionAccumulator) -> dict[str, Any]:
    """The accumulator as a versioned JSON-able dict."""
    return {"version": STATE_VERSION, "accumulator": accumulator.to_json()}


def accumulator_from_state(state: Mapping[str, Any], thresholds: Mapping[str, float]) -> PartitionAccumulator:
    """An accumulator rebuilt from `accumulator_state`, with the given drift thresholds."""
    if state.get("version") != STATE_VERSION or "accumulator" not in state:
        raise ValueError(f"monitoring state version {state.get('version')!r}; this code reads {STATE_VERSION}")
    return PartitionAccumulator.from_json(
        state["accumulator"],
        number_threshold=thresholds.get("number", drift.DEFAULT_NUMBER_THRESHOLD),
        text_threshold=thresholds.get("text", drift.DEFAULT_TEXT_THRESHOLD),
    )
