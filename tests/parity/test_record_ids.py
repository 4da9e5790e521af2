"""One ride sent as 256, 256.0 and "256" is one id in every mode: batch stores "256", online and stream answer it.

The rule (scoring.model.record_ids): what is stored and keyed is the id's canonical text; what is
answered (the /predict echo, the stream message) is the id as the client sent it, once the rule
accepted it, so it canonicalises to the same text.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import requests

from scoring.batch.partitions import PartitionKey
from scoring.cli import main
from scoring.demo.synthetic import write_partition
from scoring.model.record_ids import canonical_id
from tests.integration.batch_helpers import run, stored
from tests.support.gunicorn import running_service
from tests.support.lambda_handler import HANDLER_PATH

pytestmark = [pytest.mark.postgres, pytest.mark.aws]

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40.0}
SENT_IDS = [256, 256.0, "256"]
CANONICAL = "256"


def batch_mode(predictor, pg_engine, tmp_path) -> list[tuple[str, float]]:
    """Each id form in its own partition (a Parquet column has one type): int64, float64 and string columns."""
    answers = []
    for hour, ride_id in enumerate(SENT_IDS, start=10):
        key = PartitionKey.parse(f"2026-06-01T{hour:02d}")
        frame = pd.DataFrame([{"ride_id": ride_id, **RIDE}])
        write_partition(str(tmp_path / "in"), "rides", key, frame, files=1)
        run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"), key=key)
        rows = stored(pg_engine, key)
        answers.append((rows["record_id"].item(), rows["prediction"].item()))
    return answers


def online_mode(demo_bundle_dir, tmp_path) -> list[tuple[object, float]]:
    records = [{"ride_id": ride_id, **RIDE} for ride_id in SENT_IDS]
    with running_service(tmp_path / "serve.log", SCORING_MODEL_URI=str(demo_bundle_dir)) as (url, _):
        response = requests.post(f"{url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    return [(p["ride_id"], p["duration"]) for p in response.json()["predictions"]]


def stream_mode(kinesis, new_stream, read_stream, stream_env, tmp_path) -> list[tuple[object, float]]:
    source, sink = new_stream(), new_stream()
    for ride_id in SENT_IDS:
        payload = json.dumps({"ride": RIDE, "ride_id": ride_id})
        kinesis.put_record(StreamName=source, Data=payload.encode(), PartitionKey=str(ride_id))
    stream_env(SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=sink)
    code = main(
        ["stream", "run", "--kinesis-stream", source, "--function", f"{HANDLER_PATH}:lambda_handler"]
        + ["--idle-timeout", "1", "--poll-seconds", "0.05", "--checkpoints", str(tmp_path / "checkpoints.json")]
    )
    assert code == 0
    return [(m["prediction"]["ride_id"], m["prediction"]["duration"]) for m in read_stream(sink)]


def test_256_and_256_0_and_the_string_256_are_one_id_in_every_mode(
    predictor, demo_bundle_dir, pg_engine, kinesis, new_stream, read_stream, stream_env, tmp_path
):
    # Given one ride sent three times, with its id as an integer, a float and a string
    # When batch, online and stream each score it
    batch = batch_mode(predictor, pg_engine, tmp_path)
    online = online_mode(demo_bundle_dir, tmp_path)
    stream = stream_mode(kinesis, new_stream, read_stream, stream_env, tmp_path)
    # Then batch stores all three under the canonical text "256"
    assert [record_id for record_id, _ in batch] == [CANONICAL] * 3
    # And online and stream answer each with the id as it was sent, which is the same canonical id
    for mode, answers in (("online", online), ("stream", stream)):
        echoed = [record_id for record_id, _ in answers]
        assert sorted(map(repr, echoed)) == sorted(map(repr, SENT_IDS)), mode
        assert {canonical_id(record_id) for record_id in echoed} == {(CANONICAL, None)}, mode
    # And every mode gives the one ride the one prediction
    assert len({prediction for _, prediction in batch + online + stream}) == 1
