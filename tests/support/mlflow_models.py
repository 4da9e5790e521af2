"""Models as teams hand them over: the course's ride Pipeline and a fraud classifier, logged to a real MLflow store.

The tracking store is SQLite plus a local artifact folder, both under a test's temporary folder, reached
through MLFLOW_TRACKING_URI as `scoring model import` reaches it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

# RandomForest's trees are a type skops does not trust by default; the course's model needs it listed.
TREE_TYPES = ["sklearn.tree._tree.Tree"]
RIDE_DERIVE = 'PU_DO=PULocationID+"_"+DOLocationID'


def ride_records(count: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    """Rides as the raw data has them: two location ids and a distance."""
    rng = random.Random(seed)
    return [
        {
            "PULocationID": rng.randint(1, 30),
            "DOLocationID": rng.randint(1, 30),
            "trip_distance": round(rng.uniform(0.2, 25.0), 2),
        }
        for _ in range(count)
    ]


def save_local(folder: Path, model: Any, serialization: str = "pickle") -> Path:
    """An MLflow model folder written without a tracking store, as `mlflow.sklearn.save_model` leaves it."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        model,
        str(folder),
        serialization_format=serialization,
        skops_trusted_types=TREE_TYPES if serialization == "skops" else None,
        pip_requirements=["scikit-learn"],
    )
    return folder


def ride_pipeline(records: list[dict[str, Any]] | None = None) -> Pipeline:
    """The course's model: DictVectorizer then a (small) random forest, on PU_DO and trip_distance."""
    records = records or ride_records()
    dicts = [
        {"PU_DO": f"{r['PULocationID']}_{r['DOLocationID']}", "trip_distance": r["trip_distance"]} for r in records
    ]
    durations = [3.0 + 2.5 * r["trip_distance"] + (r["PULocationID"] % 5) for r in records]
    return make_pipeline(DictVectorizer(), RandomForestRegressor(n_estimators=5, max_depth=6, random_state=0)).fit(
        dicts, durations
    )


def course_dicts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the course's predict.py feeds the pyfunc model: PU_DO joined from the ids, plus the distance."""
    return [{"PU_DO": f"{r['PULocationID']}_{r['DOLocationID']}", "trip_distance": r["trip_distance"]} for r in records]


def fraud_records(count: int = 400, seed: int = 11) -> list[dict[str, Any]]:
    """Card payments: an amount, a merchant and a country."""
    rng = random.Random(seed)
    return [
        {
            "amount": round(rng.uniform(1, 2000), 2),
            "merchant": rng.choice(["acme", "globex", "initech", "umbrella"]),
            "country": rng.choice(["DE", "FR", "NL", "US"]),
        }
        for _ in range(count)
    ]


def fraud_labels(records: list[dict[str, Any]]) -> list[int]:
    """1 for fraud: large amounts abroad or at one merchant (a rule the classifier can learn)."""
    return [int(r["amount"] > 1200 and r["country"] == "US" or r["merchant"] == "umbrella") for r in records]


def fraud_pipeline() -> Pipeline:
    """A binary classifier on amount (number), merchant and country (text), fed through a DictVectorizer."""
    records = fraud_records()
    return make_pipeline(DictVectorizer(), LogisticRegression(max_iter=1000)).fit(records, fraud_labels(records))


@dataclass(frozen=True)
class TrackingStore:
    """A local MLflow tracking store: its URI and the experiment runs are logged to."""

    uri: str
    experiment_id: str


@contextmanager
def tracking_store(folder: Path) -> Iterator[TrackingStore]:
    """A fresh SQLite tracking store under `folder`, set as MLFLOW_TRACKING_URI while the block runs."""
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("DO_NOT_TRACK", "true")
        mlflow.set_tracking_uri(uri)
        experiment_id = mlflow.create_experiment("import-tests", artifact_location=str(folder / "artifacts"))
        try:
            yield TrackingStore(uri=uri, experiment_id=experiment_id)
        finally:
            mlflow.set_tracking_uri(None)


def log_sklearn(
    store: TrackingStore,
    model: Any,
    *,
    name: str = "model",
    serialization: str = "skops",
    registered_name: str | None = None,
    alias: str | None = None,
    signature: Any = None,
) -> tuple[str, str]:
    """Log `model` in its own run as the sklearn flavor; (runs:/ URI, run id). Registered and aliased when asked."""
    import mlflow
    import mlflow.sklearn

    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        mlflow.sklearn.log_model(
            model,
            name=name,
            serialization_format=serialization,
            skops_trusted_types=TREE_TYPES if serialization == "skops" else None,
            registered_model_name=registered_name,
            signature=signature,
            # Named requirements: MLflow skips inferring them, which takes seconds per model.
            pip_requirements=["scikit-learn"],
        )
    if registered_name and alias:
        client = mlflow.MlflowClient()
        latest = max(int(v.version) for v in client.search_model_versions(f"name='{registered_name}'"))
        client.set_registered_model_alias(registered_name, alias, str(latest))
    return f"runs:/{run.info.run_id}/{name}", run.info.run_id
