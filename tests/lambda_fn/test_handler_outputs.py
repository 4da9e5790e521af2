"""The handler writing to real (moto) Kinesis and SQS outputs, a bundle from S3, and failed writes reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from scoring.errors import BundleIntegrityError
from tests.support.lambda_handler import HANDLER_PATH

pytestmark = pytest.mark.aws


class RefuseRide:
    """A real boto3 client to moto whose writes of one ride are always refused.

    SIMULATED: moto never throttles, so this wrapper answers ProvisionedThroughputExceeded (Kinesis)
    or an internal error (SQS) for that ride's entry; every other entry really goes to moto.
    """

    def __init__(self, client, ride_id):
        self.client, self.ride_id = client, ride_id
        self.meta = client.meta

    def _refused(self, body) -> bool:
        return json.loads(body)["prediction"]["ride_id"] == self.ride_id

    def put_records(self, StreamName, Records):
        passed = iter(
            self.client.put_records(
                StreamName=StreamName, Records=[r for r in Records if not self._refused(r["Data"])]
            )["Records"]
        )
        error = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "simulated"}
        return {"Records": [error if self._refused(r["Data"]) else next(passed) for r in Records]}

    def send_message_batch(self, QueueUrl, Entries):
        passed = [e for e in Entries if not self._refused(e["MessageBody"])]
        self.client.send_message_batch(QueueUrl=QueueUrl, Entries=passed)
        refused = [e for e in Entries if self._refused(e["MessageBody"])]
        return {"Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refused]}


@pytest.fixture
def publishing_handler(cold_start, new_stream, read_stream, new_queue, drain_queue):
    """A fresh handler publishing to a new Kinesis stream or SQS queue, and a reader of what it published."""

    def start(output: str):
        if output == "kinesis":
            stream = new_stream()
            handler = cold_start(SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=stream)
            return handler, lambda: read_stream(stream)
        queue = new_queue()
        handler = cold_start(SCORING_STREAM_OUTPUT="sqs", SCORING_OUTPUT_QUEUE_URL=queue)
        return handler, lambda: drain_queue(queue)

    return start


def good_ids(event: dict) -> list:
    return [256, 257, "ride-261"] if "kinesis" in event["Records"][0] else [256, 258]


@pytest.mark.parametrize("output", ["kinesis", "sqs"])
def test_outputs_are_published_and_also_returned(output, recorded_event, publishing_handler):
    # Given a handler configured to publish to Kinesis or SQS
    handler, published_messages = publishing_handler(output)
    event = recorded_event("kinesis_rides.json")
    # When it handles a recorded event
    response = handler.lambda_handler(event, None)
    # Then what it published is what it returned, one message per good ride
    published = published_messages()
    assert published == response["predictions"]
    assert [m["prediction"]["ride_id"] for m in published] == good_ids(event)


@pytest.mark.parametrize(("output", "event_file"), [("kinesis", "kinesis_rides.json"), ("sqs", "sqs_rides.json")])
def test_an_output_that_cannot_be_written_is_reported_with_the_poison_records(
    output, event_file, recorded_event, cold_start, publishing_handler
):
    # Given the event's poison records, and a handler whose output refuses ride 256 on every attempt (simulated)
    event = recorded_event(event_file)
    poison = [f["itemIdentifier"] for f in cold_start().lambda_handler(event, None)["batchItemFailures"]]
    handler, published_messages = publishing_handler(output)
    handler.HANDLER.sink.client = RefuseRide(handler.HANDLER.sink.client, 256)
    handler.HANDLER.sink.retry.sleep = lambda seconds: None
    # When the event is handled
    response = handler.lambda_handler(event, None)
    # Then ride 256's input item (the event's first) is reported with the poison records, in event order
    first = event["Records"][0]
    ride_256_item = first["kinesis"]["sequenceNumber"] if output == "kinesis" else first["messageId"]
    assert response["batchItemFailures"] == [{"itemIdentifier": i} for i in [ride_256_item, *poison]]
    # And the other good rides are published and returned, ride 256 in neither
    published = published_messages()
    assert published == response["predictions"]
    assert [m["prediction"]["ride_id"] for m in published] == good_ids(event)[1:]


def test_bundle_is_loaded_from_s3_and_its_sha256_checked(aws, demo_bundle_dir, cold_start, recorded_event):
    # Given the demo bundle uploaded to (moto) S3
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models")
    for file in demo_bundle_dir.iterdir():
        s3.put_object(Bucket="models", Key=f"ride_duration/1/{file.name}", Body=file.read_bytes())
    local = cold_start().lambda_handler(recorded_event("sqs_rides.json"), None)
    # When a container starts with SCORING_MODEL_URI pointing at it
    from_s3 = cold_start(SCORING_MODEL_URI="s3://models/ride_duration/1/")
    # Then it predicts exactly what the local bundle predicts
    assert from_s3.HANDLER.predictor.bundle.uri == "s3://models/ride_duration/1/"
    assert from_s3.lambda_handler(recorded_event("sqs_rides.json"), None) == local
    # And a tampered artifact is refused at cold start, before it is unpickled
    s3.put_object(Bucket="models", Key="ride_duration/1/model.bin", Body=b"not the pickle the manifest vouches for")
    with pytest.raises(BundleIntegrityError, match="refusing to unpickle"):
        cold_start(SCORING_MODEL_URI="s3://models/ride_duration/1/")


BLOCKED = ("pyarrow", "sqlalchemy", "alembic", "psycopg2")
WITHOUT_BATCH_DEPENDENCIES = f"""
import importlib.abc, json, sys

class Absent(importlib.abc.MetaPathFinder):
    # Acts as if these were not installed, as in the Lambda zip.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, Absent())
from scoring.stream.runner import load_module
module = load_module(sys.argv[1])
event = json.load(open(sys.argv[2]))
print(json.dumps(module.lambda_handler(event, None)))
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {BLOCKED!r})))
"""


def test_streaming_path_needs_none_of_the_batch_dependencies(cold_start, stream_env, recorded_event):
    # Given an interpreter where pyarrow, SQLAlchemy, alembic and psycopg2 cannot be imported (as in the zip)
    stream_env()
    event_path = Path(__file__).parent / "events" / "kinesis_rides.json"
    # When the handler is cold-started and invoked there
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_BATCH_DEPENDENCIES, str(HANDLER_PATH), str(event_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Then it answers exactly what it answers with them installed
    assert run.returncode == 0, run.stderr
    response, loaded = (json.loads(line) for line in run.stdout.splitlines()[-2:])
    assert loaded == []
    assert response == cold_start().lambda_handler(recorded_event("kinesis_rides.json"), None)
