"""A 100-record Kinesis invocation of the Lambda handler vs the tutorial's per-record loop, same run, same moto.

    .venv/bin/python bench/stream.py [--records 100] [--repeat 5] [--cold-starts 3] [--zip-tree build/lambda]

Both paths score the same rides with the same bundle and publish to Kinesis streams on a local moto
server over HTTP. The handler decodes the batch, validates it, predicts once and calls PutRecords;
the tutorial loop, for each record, decodes base64 and JSON, builds a feature dict, calls
dv.transform and model.predict, and calls put_record. Times are the best of --repeat runs.
Also prints the cold start: a fresh interpreter importing the handler module, bundle load and
output client included, once in this environment and once from the tree `make lambda-zip` staged
(nothing else importable but boto3, which the Lambda runtime provides).
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from scoring.demo.synthetic import generate_rides
from scoring.demo.training import train_demo_bundle
from scoring.model import records as records_module
from scoring.model.records import score_records
from scoring.stream.runner import load_module
from scoring.stream.wire import kinesis_event_record

HANDLER = Path(__file__).resolve().parents[1] / "lambda" / "lambda_function.py"
STREAM_ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/rides"

# As the Lambda runtime does: the handler's folder first on sys.path, the module imported by name.
COLD_START = """
import importlib, os, sys, time
started = time.perf_counter()
sys.path[:0] = [os.path.dirname(sys.argv[1]), *sys.argv[2:]]
importlib.import_module("lambda_function")
print(time.perf_counter() - started)
"""


def kinesis_event(n: int) -> dict:
    """A Kinesis event of n tutorial-shaped rides, as Lambda builds it."""
    rides = generate_rides(n, start=datetime(2026, 2, 1, tzinfo=timezone.utc), span=timedelta(hours=1), seed=9)
    records = []
    for position, ride in enumerate(rides.itertuples()):
        ride_fields = {"PULocationID": int(ride.PULocationID), "DOLocationID": int(ride.DOLocationID)}
        payload = {"ride": {**ride_fields, "trip_distance": float(ride.trip_distance)}, "ride_id": int(ride.ride_id)}
        raw = {"PartitionKey": str(ride.ride_id), "SequenceNumber": str(10**20 + position), "Data": json.dumps(payload)}
        raw["Data"] = raw["Data"].encode()
        records.append(kinesis_event_record(raw, "shardId-000000000000", STREAM_ARN, "us-east-1"))
    return {"Records": records}


def tutorial_loop(event: dict, dv, model, manifest, kinesis, stream: str) -> list[dict]:
    """The classic tutorial's handler body: one record at a time, one put_record each."""
    outputs = []
    for record in event["Records"]:
        payload = json.loads(base64.b64decode(record["kinesis"]["data"]).decode("utf-8"))
        ride, ride_id = payload["ride"], payload["ride_id"]
        features = {"PU_DO": f"{ride['PULocationID']}_{ride['DOLocationID']}", "trip_distance": ride["trip_distance"]}
        prediction = float(model.predict(dv.transform(features))[0])
        output = {
            "model": manifest.name,
            "version": manifest.version,
            "prediction": {"duration": prediction, "ride_id": ride_id},
        }
        kinesis.put_record(StreamName=stream, Data=json.dumps(output), PartitionKey=str(ride_id))
        outputs.append(output)
    return outputs


def cold_starts(count: int, zip_tree: Path | None = None) -> list[float]:
    """Seconds to import the handler (settings, bundle load and verification, client) in fresh interpreters.

    With zip_tree, the interpreter sees only that tree plus boto3 and its kin, as in the Lambda runtime.
    """
    command = [sys.executable, "-c", COLD_START, str(HANDLER)]
    with tempfile.TemporaryDirectory() as runtime:
        if zip_tree is not None:
            for name in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3"):
                Path(runtime, name).symlink_to(Path(importlib.util.find_spec(name).origin).parent)
            command = [
                sys.executable,
                "-S",
                "-c",
                COLD_START,
                str(zip_tree / "lambda_function.py"),
                str(zip_tree),
                runtime,
            ]
        runs = [subprocess.run(command, capture_output=True, text=True, check=True) for _ in range(count)]
    return [float(run.stdout.strip().splitlines()[-1]) for run in runs]


def small_path_gain(handler, run_handler, repeat: int, answered: list[dict]) -> tuple[float, float, float] | None:
    """(handler seconds with the columnar path forced, score_records seconds small, columnar); None on a mismatch."""
    predictor = handler.HANDLER.predictor
    records = [
        {"ride_id": i, "PULocationID": i % 200, "DOLocationID": (7 * i) % 200, "trip_distance": 1.5} for i in range(100)
    ]
    small_score_s = min(timeit.repeat(lambda: score_records(predictor, records), number=20, repeat=repeat)) / 20
    limit = records_module.SMALL_PATH_MAX_RECORDS
    records_module.SMALL_PATH_MAX_RECORDS = 0  # every call takes the columnar path
    try:
        columnar = run_handler()
        columnar_answered = [{k: v for k, v in m.items() if k != "key"} for m in columnar["predictions"]]
        columnar_s = min(timeit.repeat(run_handler, number=1, repeat=repeat))
        columnar_score_s = min(timeit.repeat(lambda: score_records(predictor, records), number=20, repeat=repeat)) / 20
    finally:
        records_module.SMALL_PATH_MAX_RECORDS = limit
    return (columnar_s, small_score_s, columnar_score_s) if columnar_answered == answered else None


def describe(starts: list[float]) -> str:
    return f"median {statistics.median(starts):.2f} s  [{', '.join(f'{s:.2f}' for s in starts)}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--zip-tree", type=Path, default=HANDLER.parents[1] / "build" / "lambda")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with tempfile.TemporaryDirectory() as bundle_dir:
        train_demo_bundle(bundle_dir)
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            SCORING_MODEL_URI=bundle_dir,
            SCORING_STREAM_OUTPUT="kinesis",
            SCORING_OUTPUT_STREAM="predictions-handler",
        )
        kinesis = boto3.client("kinesis")
        for stream in ("predictions-handler", "predictions-tutorial"):
            kinesis.create_stream(StreamName=stream, ShardCount=1)
            kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1})
        handler = load_module(HANDLER)
        bundle = handler.HANDLER.predictor.bundle
        event = kinesis_event(args.records)

        def run_handler():
            return handler.lambda_handler(event, None)

        def run_tutorial():
            return tutorial_loop(
                event, bundle.vectorizer, bundle.model, bundle.manifest, kinesis, "predictions-tutorial"
            )

        response, tutorial = run_handler(), run_tutorial()
        # The handler's messages also carry their record's stable key, which the tutorial has no notion of.
        answered = [{k: v for k, v in message.items() if k != "key"} for message in response["predictions"]]
        if response["batchItemFailures"] or answered != tutorial:
            print("MISMATCH: the handler and the tutorial loop disagree", file=sys.stderr)
            return 1
        handler_s = min(timeit.repeat(run_handler, number=1, repeat=args.repeat))
        tutorial_s = min(timeit.repeat(run_tutorial, number=1, repeat=args.repeat))
        small = small_path_gain(handler, run_handler, args.repeat, answered)
        if small is None:
            print("MISMATCH: the small-request path and the columnar path disagree", file=sys.stderr)
            return 1
        starts = cold_starts(args.cold_starts)
        zip_tree = args.zip_tree if (args.zip_tree / "lambda_function.py").is_file() else None
        zip_starts = cold_starts(args.cold_starts, zip_tree) if zip_tree else []
    server.stop()

    n = args.records
    print(f"records per invocation: {n}  (identical predictions on both paths; moto server over HTTP)")
    print(f"tutorial loop  per-record predict + put_record : {tutorial_s * 1000:8.1f} ms  ({n} PutRecord calls)")
    print(
        f"handler        one predict + PutRecords        : {handler_s * 1000:8.1f} ms  ({-(-n // 500)} PutRecords call)"
    )
    print(f"speed-up handler/tutorial: {tutorial_s / handler_s:.1f}x  (target >= 20x)")
    columnar_s, small_score_s, columnar_score_s = small
    print(
        f"handler with the columnar path forced        : {columnar_s * 1000:8.1f} ms  "
        f"(small-request path saves {(columnar_s - handler_s) * 1000:.1f} ms per invocation)"
    )
    print(
        f"scoring step alone (score_records, {n} records): small path {small_score_s * 1000:.2f} ms, "
        f"columnar {columnar_score_s * 1000:.2f} ms = {columnar_score_s / small_score_s:.1f}x"
    )
    print(
        f"cold start, this environment (import handler + load bundle + client): {describe(starts)}  (target <= 1.5 s)"
    )
    if zip_starts:
        print(f"cold start, the zip's tree {args.zip_tree} + boto3:          {describe(zip_starts)}  (target <= 1.5 s)")
    else:
        print(f"cold start of the zip: skipped, {args.zip_tree} not built (make lambda-zip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
