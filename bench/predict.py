"""Columnar fast path vs the classic `to_dict` + `dv.transform` path, same bundle, same rows, same run.

    .venv/bin/python bench/predict.py [--rows 1000000] [--repeat 3]
    .venv/bin/python bench/predict.py --small    # JSON records: the small-request path vs the columnar one

Two models: the demo ride bundle (the ride_pu_do preset) and a generic declared one, a fraud
classifier on an amount, a merchant and a concat of country and hour, answering P(fraud).
Prints rows/s of each path (best of --repeat) and their ratio; checks both give identical output.
With --small: score_records on 1, 10, 100, ... JSON records (as online and stream get them), through the
small-request path (scoring.model.small) and through the columnar path, both models, the same outcomes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from scoring.demo.synthetic import generate_rides
from scoring.demo.training import train_demo_bundle
from scoring.model.artifacts import dump_artifact
from scoring.model.bundle import load_bundle, sha256_of
from scoring.model.declaration import Declaration
from scoring.model.features import build_features, records_for_vectorizer
from scoring.model.importing import write_bundle
from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust

MERCHANTS = np.array([f"merchant-{i}" for i in range(400)], dtype=object)
COUNTRIES = np.array(["DE", "FR", "NG", "US", "BR", "IN", "JP", "GB"], dtype=object)
FRAUD = Declaration.from_json(
    [
        {"name": "amount", "type": "number", "minimum": 0},
        {"name": "merchant", "type": "string"},
        {"name": "country", "type": "string", "values": COUNTRIES.tolist()},
        {"name": "hour", "type": "integer", "minimum": 0, "maximum": 23},
    ],
    [
        {"name": "amount", "kind": "number", "inputs": ["amount"]},
        {"name": "merchant", "kind": "categorical", "inputs": ["merchant"]},
        {"name": "country_hour", "kind": "concat", "inputs": ["country", "hour"]},
    ],
    "bench",
)


def predict_naive(predictor: Predictor, inputs: pd.DataFrame) -> np.ndarray:
    """The classic tutorial path (per-row dicts, dv.transform): the reference the fast path must equal."""
    records = records_for_vectorizer(build_features(predictor.declaration, inputs))
    bundle = predictor.bundle
    model_input = bundle.vectorizer.transform(records) if bundle.vectorizer is not None else records
    if bundle.manifest.task == "binary":
        return np.asarray(bundle.model.predict_proba(model_input)[:, 1], dtype=float)
    return np.asarray(bundle.model.predict(model_input), dtype=float)


def transactions(rows: int, seed: int) -> pd.DataFrame:
    """Fraud-model inputs: skewed amounts, 400 merchants, 8 countries, 24 hours."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": np.round(rng.exponential(120.0, rows), 2),
            "merchant": MERCHANTS[rng.zipf(1.6, rows) % len(MERCHANTS)],
            "country": COUNTRIES[rng.integers(0, len(COUNTRIES), rows)],
            "hour": rng.integers(0, 24, rows),
        }
    )


def fraud_bundle(directory: str) -> None:
    """Fit DictVectorizer + LogisticRegression on the classic dicts of 20,000 transactions and write the bundle."""
    training = transactions(20_000, seed=1)
    labels = ((training["amount"] > 300) | (training["country"] == "NG")).astype(int).to_numpy()
    dv = DictVectorizer()
    model = LogisticRegression(max_iter=500).fit(
        dv.fit_transform(records_for_vectorizer(build_features(FRAUD, training))), labels
    )
    artifact = dump_artifact((dv, model), "pickle")
    manifest = Manifest(
        name="fraud",
        version="1",
        sha256=sha256_of(artifact),
        format="dv_tuple",
        features=FRAUD.features,
        inputs=FRAUD.inputs,
        id_field=None,
        output="fraud_probability",
        task="binary",
        classes=(0, 1),
        positive_class=1,
    )
    write_bundle(directory, artifact, manifest)


def best_seconds(action, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def compare(label: str, predictor: Predictor, raw: pd.DataFrame, repeat: int) -> float | None:
    """Print both paths' rows/s for one model; the speed-up, or None when they disagree."""
    valid = predictor.schema.validate_frame(raw).valid
    fast, naive = predictor.predict(valid), predict_naive(predictor, valid)
    if not np.array_equal(fast, naive):
        print(f"MISMATCH ({label}): fast and naive paths disagree", file=sys.stderr)
        return None
    naive_s = best_seconds(lambda: predict_naive(predictor, valid), repeat)
    fast_s = best_seconds(lambda: predictor.predict(valid), repeat)
    validate_s = best_seconds(lambda: predictor.schema.validate_frame(raw), repeat)
    rows = len(valid)
    print(f"{label}: {rows} rows  (identical predictions on both paths)")
    print(f"  naive  to_dict + dv.transform + predict : {rows / naive_s:>12,.0f} rows/s  ({naive_s:.3f} s)")
    print(f"  fast   columnar vocabulary    + predict : {rows / fast_s:>12,.0f} rows/s  ({fast_s:.3f} s)")
    print(f"  schema validation (typed columns)       : {rows / validate_s:>12,.0f} rows/s  ({validate_s:.3f} s)")
    print(f"  speed-up fast/naive: {naive_s / fast_s:.1f}x  (target >= 8x)")
    return naive_s / fast_s


SMALL_SIZES = (1, 10, 100, 300, 1000, 3000)


def compare_small(name: str, predictor: Predictor, frame: pd.DataFrame, repeat: int) -> bool:
    """Milliseconds per score_records call of JSON records, small path vs columnar, at several sizes."""
    from scoring.model.records import outcomes_of, score_columnar
    from scoring.model.small import SMALL_PATH_MAX_RECORDS, SmallPath

    small = SmallPath.of(predictor)
    assert small is not None
    json_records = [
        {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
        for row in frame.head(max(SMALL_SIZES)).to_dict(orient="records")
    ]
    print(f"\n{name}: score_records on JSON records (limit of the small path: {SMALL_PATH_MAX_RECORDS})")
    print(f"{'records':>8} {'small ms':>10} {'columnar ms':>12} {'ratio':>7}")
    same = True
    for size in SMALL_SIZES:
        records = json_records[:size]
        scored = small.score(records)
        assert scored is not None
        same &= outcomes_of(predictor, records, scored) == outcomes_of(
            predictor, records, score_columnar(predictor, records)
        )
        number = max(1, 2000 // size)
        small_ms = best_of(lambda r=records: outcomes_of(predictor, r, small.score(r)), number, repeat)
        columnar_ms = best_of(lambda r=records: outcomes_of(predictor, r, score_columnar(predictor, r)), number, repeat)
        print(f"{size:>8} {small_ms:>10.3f} {columnar_ms:>12.3f} {columnar_ms / small_ms:>6.1f}x")
    if not same:
        print("MISMATCH: the small path and the columnar path disagree", file=sys.stderr)
    return same


def best_of(call, number: int, repeat: int) -> float:
    """Milliseconds per call, best of `repeat` rounds of `number` calls."""
    rounds = []
    for _ in range(max(repeat, 3)):
        started = time.perf_counter()
        for _ in range(number):
            call()
        rounds.append((time.perf_counter() - started) / number)
    return min(rounds) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="the small-request path vs the columnar one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as ride_dir, tempfile.TemporaryDirectory() as fraud_dir:
        train_demo_bundle(ride_dir)
        fraud_bundle(fraud_dir)
        rides = Predictor(load_bundle(ride_dir, BundleTrust.of_bundle(ride_dir)))
        fraud = Predictor(load_bundle(fraud_dir, BundleTrust.of_bundle(fraud_dir)))
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)
    if args.small:
        rides_frame = generate_rides(max(SMALL_SIZES), start=start, span=timedelta(days=1), seed=5)
        ride_inputs = rides_frame[["ride_id", "PULocationID", "DOLocationID", "trip_distance"]]
        same = [
            compare_small("ride_pu_do preset (LinearRegression, summed directly)", rides, ride_inputs, args.repeat),
            compare_small(
                "generic declaration (LogisticRegression, P(fraud))",
                fraud,
                transactions(max(SMALL_SIZES), 5),
                args.repeat,
            ),
        ]
        return 0 if all(same) else 1
    ride_rows = generate_rides(args.rows, start=start, span=timedelta(days=1), seed=5)
    speedups = [
        compare("ride_pu_do preset (regression)", rides, ride_rows, args.repeat),
        compare("generic declaration (binary classifier, concat)", fraud, transactions(args.rows, 5), args.repeat),
    ]
    return 0 if all(speedups) else 1


if __name__ == "__main__":
    sys.exit(main())
