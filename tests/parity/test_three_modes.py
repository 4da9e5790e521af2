"""One golden set of rides through all three deployment modes: every mode must give the same numbers.

batch  : Parquet partition -> batch engine -> PostgreSQL predictions table
online : POST /predict to webservice/ as shipped (python -m webservice.serve: Granian), over HTTP
stream : Kinesis (moto server, HTTP) -> `scoring stream run` -> lambda_function.py -> output stream
reference: the pickle itself, `dv.transform(dicts)` + `model.predict`, as the classic tutorial does
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import requests

from scoring.batch.partitions import PartitionKey
from scoring.cli import main
from scoring.demo.synthetic import write_partition
from tests.conftest import make_rides
from tests.integration.batch_helpers import run, stored
from tests.support.gunicorn import running_service
from tests.support.lambda_handler import HANDLER_PATH

pytestmark = [pytest.mark.postgres, pytest.mark.aws]

# Edge cases first: unknown zones and pairs (ignored by the vectorizer), zero and extreme distances.
EDGE_RIDES = [
    (10, 50, 40.0),  # the classic tutorial payload
    (0, 0, 0.0),  # zone 0 and a zero distance
    (999, 1000, 3.5),  # zones the model never saw
    (1, 265, 0.01),
    (265, 1, 250.5),
    (132, 132, 1e-9),
    (7, 7, 12345.678),
]


@pytest.fixture(scope="module")
def golden() -> pd.DataFrame:
    """The edge cases plus 200 ordinary synthetic rides, with integer ride ids."""
    ordinary = make_rides(200, seed=2024)[["PULocationID", "DOLocationID", "trip_distance"]]
    edges = pd.DataFrame(EDGE_RIDES, columns=["PULocationID", "DOLocationID", "trip_distance"])
    rides = pd.concat([edges, ordinary], ignore_index=True)
    rides.insert(0, "ride_id", np.arange(1000, 1000 + len(rides), dtype=np.int64))
    return rides


def reference(bundle_dir, rides: pd.DataFrame) -> dict[str, float]:
    """The tutorial's computation on the raw pickle, no project code involved."""
    dv, model = pickle.loads((bundle_dir / "model.bin").read_bytes())
    dicts = [
        {"PU_DO": f"{r.PULocationID}_{r.DOLocationID}", "trip_distance": float(r.trip_distance)}
        for r in rides.itertuples()
    ]
    return dict(zip(rides["ride_id"].astype(str), model.predict(dv.transform(dicts)).tolist(), strict=True))


def batch_mode(golden, predictor, pg_engine, tmp_path) -> dict[str, float]:
    hour = PartitionKey.parse("2026-05-01T12")
    write_partition(str(tmp_path / "in"), "rides", hour, golden, files=2)
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"), key=hour)
    rows = stored(pg_engine, hour)
    assert len(rows) == len(golden)
    return dict(zip(rows["record_id"], rows["prediction"], strict=True))


def online_mode(golden, demo_bundle_dir, tmp_path) -> dict[str, float]:
    records = [
        {
            "ride_id": int(r.ride_id),
            "PULocationID": int(r.PULocationID),
            "DOLocationID": int(r.DOLocationID),
            "trip_distance": float(r.trip_distance),
        }
        for r in golden.itertuples()
    ]
    with running_service(tmp_path / "serve.log", SCORING_MODEL_URI=str(demo_bundle_dir)) as (url, _):
        response = requests.post(f"{url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    return {str(p["ride_id"]): p["duration"] for p in response.json()["predictions"]}


def stream_mode(golden, kinesis, new_stream, read_stream, stream_env, tmp_path) -> dict[str, float]:
    source, sink = new_stream(shards=2), new_stream()
    for r in golden.itertuples():
        ride = {
            "PULocationID": int(r.PULocationID),
            "DOLocationID": int(r.DOLocationID),
            "trip_distance": float(r.trip_distance),
        }
        payload = json.dumps({"ride": ride, "ride_id": int(r.ride_id)})
        kinesis.put_record(StreamName=source, Data=payload.encode(), PartitionKey=str(r.ride_id))
    stream_env(SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=sink)
    code = main(
        ["stream", "run", "--kinesis-stream", source, "--function", f"{HANDLER_PATH}:lambda_handler"]
        + ["--idle-timeout", "1", "--poll-seconds", "0.05", "--checkpoints", str(tmp_path / "checkpoints.json")]
    )
    assert code == 0
    outputs = read_stream(sink)
    assert {(m["model"], m["version"]) for m in outputs} == {("ride_duration", "1")}
    return {str(m["prediction"]["ride_id"]): m["prediction"]["duration"] for m in outputs}


def test_batch_online_stream_and_the_reference_agree_exactly(
    golden, predictor, demo_bundle_dir, pg_engine, kinesis, new_stream, read_stream, stream_env, tmp_path
):
    # Given the golden rides and the tutorial's own answer for them
    expected = reference(demo_bundle_dir, golden)
    # When each deployment mode scores them
    answers = {
        "batch": batch_mode(golden, predictor, pg_engine, tmp_path),
        "online": online_mode(golden, demo_bundle_dir, tmp_path),
        "stream": stream_mode(golden, kinesis, new_stream, read_stream, stream_env, tmp_path),
    }
    # Then every mode has every ride, with bit-for-bit the reference prediction
    for mode, predictions in answers.items():
        assert predictions.keys() == expected.keys(), mode
        mismatched = {
            ride: (predictions[ride], expected[ride]) for ride in expected if predictions[ride] != expected[ride]
        }
        assert mismatched == {}, f"{mode} differs from the reference"
