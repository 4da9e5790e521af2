"""The compose streaming path without Docker: rides.py -> Kinesis (moto) -> the runner exactly as compose
starts it -> HTTP -> the real Lambda handler behind a stand-in emulator -> Kinesis -> rides.py read."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest

from scoring.cli import main as scoring_main
from tests.compose.stack import ROOT, argv, load_compose, read_env_file
from tests.compose.test_rie_invoke import FakeEmulator, ok

GOOD_RIDE = {"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}, "ride_id": 256}
BAD_RIDE = {"ride": {"PULocationID": True, "DOLocationID": 205, "trip_distance": 3.66}, "ride_id": 257}


@pytest.fixture(scope="module")
def rides() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rides", ROOT / "docker/stream/rides.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replace_option(args: list[str], option: str, value: str) -> list[str]:
    position = args.index(option)
    return [*args[: position + 1], value, *args[position + 2 :]]


@pytest.mark.aws
def test_a_ride_sent_to_the_input_stream_comes_out_scored(
    aws, new_stream, new_queue, cold_start, rides, tmp_path, monkeypatch, capsys
):
    import boto3

    # Given the two streams, a dead-letter queue as compose gives the function, and the real function
    # (writing to Kinesis) behind a stand-in emulator
    ride_events, predictions, dead_letters = new_stream(), new_stream(), new_queue()
    compose = load_compose(read_env_file(ROOT / ".env.example"))
    assert "SCORING_DEAD_LETTER_QUEUE_URL" in compose["services"]["lambda"]["environment"]
    function = cold_start(
        SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=predictions, SCORING_DEAD_LETTER_QUEUE_URL=dead_letters
    ).lambda_handler
    emulator = FakeEmulator(lambda event: ok(function(event, None)))
    monkeypatch.setenv("LAMBDA_INVOKE_URL", emulator.url)
    # and the runner's command as compose runs it, pointed at this test's stream and folders
    command = argv(compose["services"]["stream-runner"]["command"])
    command = replace_option(command, "--kinesis-stream", ride_events)
    command = replace_option(command, "--function", f"{ROOT / 'docker/stream/rie_invoke.py'}:lambda_handler")
    command = replace_option(command, "--checkpoints", str(tmp_path / "checkpoints.json"))
    try:
        # When a good and a bad ride are sent, and the runner polls once
        for ride in (GOOD_RIDE, BAD_RIDE):
            assert rides.main(["send", "--stream", ride_events, json.dumps(ride)]) == 0
        assert scoring_main([*command, "--max-batches", "1", "--poll-seconds", "0.1"]) == 0
    finally:
        emulator.close()
    # Then one invocation carried both, nothing was reported (no retry will fix the bad one), the good one
    # was scored, and the bad one waits in the dead-letter queue with its reason
    assert "1 invocations, 2 records, 0 reported as failed" in capsys.readouterr().out
    (message,) = list(rides.read(predictions))
    assert message["prediction"]["ride_id"] == 256 and message["prediction"]["duration"] > 0
    assert message["model"] == "ride_duration"
    (dead,) = boto3.client("sqs").receive_message(QueueUrl=dead_letters, WaitTimeSeconds=1)["Messages"]
    assert "PULocationID" in json.loads(dead["Body"])["reason"]


@pytest.mark.aws
def test_rides_can_go_to_the_sqs_queue(aws, new_queue, rides, capsys):
    import boto3

    queue_url = new_queue()
    assert rides.main(["send", "--sqs", "--queue-url", queue_url, json.dumps(GOOD_RIDE)]) == 0
    message_id = capsys.readouterr().out.strip()
    (message,) = boto3.client("sqs").receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert message["MessageId"] == message_id and json.loads(message["Body"]) == GOOD_RIDE


@pytest.mark.parametrize(
    "args",
    [["send", "{}"], ["send", "--sqs", "{}"], ["read"]],
    ids=["no stream", "no queue", "nothing to read"],
)
def test_rides_needs_a_destination(rides, monkeypatch, args):
    for name in ("RIDE_EVENTS_STREAM", "RIDE_EVENTS_QUEUE_URL", "PREDICTIONS_STREAM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as stop:
        rides.main(args)
    assert stop.value.code == 2


def test_rides_refuses_a_payload_that_is_not_json(rides):
    with pytest.raises(json.JSONDecodeError):
        rides.send("{ride: 1}", stream="s", queue_url=None, client=object())
