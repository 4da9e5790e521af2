"""The monitoring accumulator's cost against the engine's own work (validate + predict) on the same rows.

    .venv/bin/python bench/monitoring.py [--rows 1000000] [--chunk 100000] [--repeat 3]

Trains the demo bundle, profiles 50,000 training-like rides as its reference, then feeds the rows in
chunks (as the batch engine reads them) to the validator and Predictor, and to a PartitionAccumulator.
Prints seconds per 1M rows of each (best of --repeat) and their ratio. That baseline is stricter than the
issue's budget (at most 10% of the engine's END-TO-END time: reading, staging and publishing included),
which bench/batch.py measures with the accumulator on and off in one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from scoring.demo.synthetic import generate_rides
from scoring.demo.training import train_demo_bundle
from scoring.model.bundle import load_bundle
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust
from scoring.monitoring.accumulate import PartitionAccumulator
from scoring.monitoring.profile import ReferenceProfile

# The demo's zones are integers feeding a concatenated (categorical) feature: text for drift.
KINDS = {"PULocationID": "text", "DOLocationID": "text", "trip_distance": "number"}
TARGET = 0.10


def best_seconds(action: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        bundle_dir = f"{folder}/ride_duration/1"
        train_demo_bundle(bundle_dir)
        predictor = Predictor(load_bundle(bundle_dir, BundleTrust.of_bundle(bundle_dir)))
    output = predictor.bundle.manifest.output
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)
    rides = generate_rides(args.rows, start=start, span=timedelta(days=1), seed=5)
    chunks = [rides.iloc[i : i + args.chunk] for i in range(0, len(rides), args.chunk)]

    reference = predictor.schema.validate_frame(generate_rides(50_000, start=start, span=timedelta(days=28), seed=6))
    profile = ReferenceProfile.build(reference.valid, predictor.predict(reference.valid), KINDS, output)

    # The engine's part: what it does to every chunk whether or not it monitors.
    scored: list[tuple[pd.DataFrame, np.ndarray, int]] = []

    def engine() -> None:
        scored.clear()
        for chunk in chunks:
            result = predictor.schema.validate_frame(chunk)
            scored.append((result.valid, predictor.predict(result.valid), result.rejected_count))

    def monitor() -> PartitionAccumulator:
        accumulator = PartitionAccumulator(profile, KINDS, output)
        for valid, predictions, rejected in scored:
            accumulator.add(valid, predictions, rejected)
        accumulator.metrics()
        return accumulator

    engine_seconds = best_seconds(engine, args.repeat)
    monitor_seconds = best_seconds(monitor, args.repeat)
    per_million = 1_000_000 / args.rows
    ratio = monitor_seconds / engine_seconds
    print(f"rows {args.rows:,} in chunks of {args.chunk:,}; inputs monitored: {', '.join(KINDS)} and {output}")
    print(f"engine (validate + predict): {engine_seconds * per_million:.3f} s per 1M rows")
    print(f"monitoring accumulator:      {monitor_seconds * per_million:.3f} s per 1M rows")
    print(
        f"ratio: {ratio:.1%} of validate + predict alone (the {TARGET:.0%} budget is of the engine end to end: "
        "bench/batch.py)"
    )
    drifted = [row.feature for row in monitor().metrics() if row.drifted]
    print(f"drifted features on these clean rows: {drifted or 'none'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
