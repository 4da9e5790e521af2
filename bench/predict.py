"""Columnar fast path vs the classic `to_dict` + `dv.transform` path, same bundle, same rows, same run.

    .venv/bin/python bench/predict.py [--rows 1000000] [--repeat 3]

Prints rows/s of each path (best of --repeat) and their ratio; checks both give identical output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from scoring.demo.synthetic import generate_rides
from scoring.demo.training import train_demo_bundle
from scoring.model.bundle import load_bundle
from scoring.model.features import build_features, records_for_vectorizer
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust


def predict_naive(predictor: Predictor, inputs: pd.DataFrame) -> np.ndarray:
    """The classic tutorial path (per-row dicts, dv.transform): the reference the fast path must equal."""
    records = records_for_vectorizer(build_features(predictor.declaration, inputs))
    bundle = predictor.bundle
    if bundle.vectorizer is not None:
        return np.asarray(bundle.model.predict(bundle.vectorizer.transform(records)), dtype=float)
    return np.asarray(bundle.model.predict(records), dtype=float)


def best_seconds(action, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as bundle_dir:
        train_demo_bundle(bundle_dir)
        predictor = Predictor(load_bundle(bundle_dir, BundleTrust.of_bundle(bundle_dir)))
    rides = generate_rides(args.rows, start=datetime(2026, 2, 1, tzinfo=timezone.utc), span=timedelta(days=1), seed=5)
    valid = predictor.schema.validate_frame(rides).valid

    fast, naive = predictor.predict(valid), predict_naive(predictor, valid)
    if not np.array_equal(fast, naive):
        print("MISMATCH: fast and naive paths disagree", file=sys.stderr)
        return 1

    naive_s = best_seconds(lambda: predict_naive(predictor, valid), args.repeat)
    fast_s = best_seconds(lambda: predictor.predict(valid), args.repeat)
    validate_s = best_seconds(lambda: predictor.schema.validate_frame(rides), args.repeat)
    rows = len(valid)
    print(f"rows: {rows}  (identical predictions on both paths)")
    print(f"naive  to_dict + dv.transform + predict : {rows / naive_s:>12,.0f} rows/s  ({naive_s:.3f} s)")
    print(f"fast   columnar vocabulary    + predict : {rows / fast_s:>12,.0f} rows/s  ({fast_s:.3f} s)")
    print(f"schema validation (typed columns)       : {rows / validate_s:>12,.0f} rows/s  ({validate_s:.3f} s)")
    print(f"speed-up fast/naive: {naive_s / fast_s:.1f}x  (target >= 8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
