"""Prepare a bench/online.sh run: train the demo bundle and write the request bodies into a work directory.

python bench/online_setup.py WORKDIR   # -> WORKDIR/bundle/, WORKDIR/single.json, WORKDIR/batch100.json

When mlflow is installed it also writes WORKDIR/mlflow_model/ (the same DictVectorizer and model wrapped in
a pyfunc, as a team would log it for `mlflow models serve`) and the same requests in MLflow's
`dataframe_records` format: WORKDIR/mlflow_single.json, WORKDIR/mlflow_batch100.json.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scoring.demo.synthetic import generate_rides
from scoring.demo.training import train_demo_bundle

# The classic tutorial payload, sent as is.
SINGLE_RECORD = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
BATCH_SIZE = 100


def batch_records(count: int) -> list[dict[str, object]]:
    """`count` synthetic rides as /predict records, with ids, so the batch looks like real traffic."""
    rides = generate_rides(count, start=datetime(2026, 3, 1, tzinfo=timezone.utc), span=timedelta(hours=1), seed=7)
    return [
        {
            "ride_id": int(row.ride_id),
            "PULocationID": int(row.PULocationID),
            "DOLocationID": int(row.DOLocationID),
            "trip_distance": float(row.trip_distance),
        }
        for row in rides.itertuples(index=False)
    ]


def save_mlflow_model(bundle_dir: Path, destination: Path) -> bool:
    """The bundle's (DictVectorizer, model) as an MLflow pyfunc folder; False when mlflow is not installed."""
    try:
        import mlflow.pyfunc
    except ImportError:
        return False
    from bench.mlflow_ride import RidePyfunc

    artifact = next(bundle_dir.glob("*.bin"))
    mlflow.pyfunc.save_model(
        str(destination),
        python_model=RidePyfunc(),
        artifacts={"model": str(artifact)},
        code_paths=[str(Path(__file__).with_name("mlflow_ride.py"))],
        pip_requirements=["scikit-learn", "pandas"],
    )
    return True


def main(workdir: str) -> int:
    root = Path(workdir)
    train_demo_bundle(str(root / "bundle"))
    records = batch_records(BATCH_SIZE)
    (root / "single.json").write_text(json.dumps(SINGLE_RECORD))
    (root / "batch100.json").write_text(json.dumps({"records": records}))
    if save_mlflow_model(root / "bundle", root / "mlflow_model"):
        plain = [{key: value for key, value in r.items() if key != "ride_id"} for r in records]
        (root / "mlflow_single.json").write_text(json.dumps({"dataframe_records": [SINGLE_RECORD]}))
        (root / "mlflow_batch100.json").write_text(json.dumps({"dataframe_records": plain}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
