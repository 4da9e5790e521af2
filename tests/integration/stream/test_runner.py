"""The local event source over real HTTP to a moto server: input stream/queue -> runner -> handler -> output.

The handler is the scoring core's own (built in-process from SCORING_* settings, the runner's default) or
lambda/lambda_function.py loaded as a cold container would; either way the same composition answers.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter

import pytest

from scoring.cli import main
from scoring.errors import ConfigError, MalformedEvent
from scoring.settings import Settings
from scoring.stream.handler import build_handler
from scoring.stream.runner import CheckpointStore, PollLimits, invoke, load_handler, run_kinesis, run_sqs
from scoring.stream.wire import batch_response, kinesis_event_record
from tests.support.lambda_handler import HANDLER_PATH

pytestmark = pytest.mark.aws

QUICK = PollLimits(idle_timeout=0.5, poll_seconds=0.05)


def tutorial_payload(ride) -> str:
    """The classic tutorial's message: features under "ride", the id beside them."""
    features = {"PULocationID": int(ride.PULocationID), "DOLocationID": int(ride.DOLocationID)}
    return json.dumps({"ride": {**features, "trip_distance": float(ride.trip_distance)}, "ride_id": int(ride.ride_id)})


def batch_predictions(predictor, rides) -> dict[int, float]:
    """The batch path's answer for the same rides: validate the frame, one predict, keyed by ride id."""
    valid = predictor.schema.validate_frame(rides).valid
    return dict(zip(rides.loc[valid.index, "ride_id"].tolist(), predictor.predict(valid).tolist(), strict=True))


def durations_by_ride(messages: list[dict]) -> dict[int, float]:
    assert all(m["model"] == "ride_duration" and m["version"] == "1" for m in messages)
    return {m["prediction"]["ride_id"]: m["prediction"]["duration"] for m in messages}


def test_kinesis_rides_flow_through_runner_and_handler_to_the_output_stream(
    kinesis, new_stream, read_stream, cold_start, predictor, rides, tmp_path
):
    # Given 250 rides on a two-shard input stream and a handler writing to an output stream
    rides = rides.head(250)
    source, sink = new_stream(shards=2), new_stream()
    for ride in rides.itertuples():
        kinesis.put_record(StreamName=source, Data=tutorial_payload(ride).encode(), PartitionKey=str(ride.ride_id))
    handler = cold_start(SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=sink)
    checkpoints = tmp_path / "checkpoints.json"
    # When the runner polls the input until it is idle
    summary = run_kinesis(handler.lambda_handler, source, checkpoints=CheckpointStore(checkpoints), limits=QUICK)
    # Then every ride is on the output stream once, with exactly the batch path's prediction
    outputs = read_stream(sink)
    assert len(outputs) == 250 and summary.records == 250 and summary.failed == 0
    assert durations_by_ride(outputs) == batch_predictions(predictor, rides)
    # And each shard is checkpointed at its last record, so a second run finds nothing to do
    saved = json.loads(checkpoints.read_text())
    (per_shard,) = saved.values()
    assert len(per_shard) == 2
    again = run_kinesis(handler.lambda_handler, source, checkpoints=CheckpointStore(checkpoints), limits=QUICK)
    assert again.batches == 0 and len(read_stream(sink)) == 250


IN_PROCESS: list[str] = []  # no --function: the runner builds the scoring handler from the settings
LAMBDA_FILE = ["--function", f"{HANDLER_PATH}:lambda_handler"]


@pytest.mark.parametrize("function", [IN_PROCESS, LAMBDA_FILE], ids=["in-process handler", "lambda_function.py"])
@pytest.mark.parametrize("dead_letters", [False, True], ids=["no dead-letter queue", "dead-letter queue"])
def test_sqs_rides_flow_through_the_cli_runner_and_poison_messages_are_kept(
    sqs, new_queue, drain_queue, stream_env, predictor, rides, capsys, dead_letters, function
):
    # Given 40 rides and 2 poison messages on an input queue, and a handler writing to an output queue
    rides = rides.head(40)
    source, sink, dlq = new_queue(VisibilityTimeout="60"), new_queue(), new_queue()
    for ride in rides.itertuples():
        sqs.send_message(QueueUrl=source, MessageBody=tutorial_payload(ride))
    sqs.send_message(QueueUrl=source, MessageBody="{not json")
    sqs.send_message(QueueUrl=source, MessageBody=json.dumps({"ride": {"PULocationID": 1}, "ride_id": 999}))
    settings = {"SCORING_DEAD_LETTER_QUEUE_URL": dlq} if dead_letters else {}
    stream_env(SCORING_STREAM_OUTPUT="sqs", SCORING_OUTPUT_QUEUE_URL=sink, **settings)
    # When `scoring stream run` polls the queue through the scoring handler or the Lambda file
    code = main(
        ["stream", "run", "--sqs-queue-url", source, *function]
        + ["--batch-size", "25", "--idle-timeout", "1", "--poll-seconds", "0"]
    )
    # Then every ride is answered with the batch path's prediction
    assert code == 0
    assert durations_by_ride(drain_queue(sink)) == batch_predictions(predictor, rides)
    # And the poison messages are kept: in the dead-letter queue with their reasons (deleted from the input,
    # not reported), or without one, left on the input queue for a retry
    reported = 0 if dead_letters else 2
    assert f"42 records, {reported} reported as failed" in capsys.readouterr().out
    attributes = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == str(reported)
    expected = [
        "missing required field 'DOLocationID'; missing required field 'trip_distance'",
        "the payload is not valid JSON (Expecting property name enclosed in double quotes at position 1)",
    ]
    assert sorted(letter["reason"] for letter in drain_queue(dlq)) == (expected if dead_letters else [])


def test_kinesis_resumes_at_the_first_failed_record_and_discards_the_batch_after_its_retries(
    kinesis, new_stream, read_stream, cold_start, predictor, rides, tmp_path
):
    # Given one shard holding two rides, a poison record, then a third ride
    rides = rides.head(3)
    source, sink = new_stream(), new_stream()
    payloads = [tutorial_payload(ride) for ride in rides.itertuples()]
    for data in [payloads[0], payloads[1], "{poison", payloads[2]]:
        kinesis.put_record(StreamName=source, Data=data.encode(), PartitionKey="same-shard")
    handler = cold_start(SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=sink)
    invocations: list[list[str]] = []

    def recording_handler(event, context):
        invocations.append([record["kinesis"]["sequenceNumber"] for record in event["Records"]])
        return handler.lambda_handler(event, context)

    checkpoints = tmp_path / "checkpoints.json"
    # When the runner polls with one retry allowed
    summary = run_kinesis(
        recording_handler, source, checkpoints=CheckpointStore(checkpoints), limits=QUICK, max_retries=1
    )
    # Then it read all four, retried from the poison record once, then moved past the batch
    first, retry = invocations
    assert len(first) == 4 and retry == first[2:]
    assert summary.failed == 2
    (per_shard,) = json.loads(checkpoints.read_text()).values()
    assert list(per_shard.values()) == [first[-1]]
    # And the ride after the poison record was published on both tries (at-least-once), always with the same value
    outputs = read_stream(sink)
    assert Counter(m["prediction"]["ride_id"] for m in outputs) == {0: 1, 1: 1, 2: 2}
    assert durations_by_ride(outputs) == batch_predictions(predictor, rides)


@pytest.fixture
def stream_with_a_bad_ride_in_the_middle(kinesis, new_stream, rides):
    """One shard: three rides, a ride that can never be scored (PULocationID true), three more rides."""
    rides = rides.head(6)
    source = new_stream()
    payloads = [tutorial_payload(ride) for ride in rides.itertuples()]
    bad = json.dumps({"ride": {"PULocationID": True, "DOLocationID": 2, "trip_distance": 1.0}, "ride_id": 999})
    sequence_numbers = [
        kinesis.put_record(StreamName=source, Data=data.encode(), PartitionKey="one-shard")["SequenceNumber"]
        for data in [*payloads[:3], bad, *payloads[3:]]
    ]
    return source, rides, bad, sequence_numbers[3]


def test_kinesis_with_a_dead_letter_queue_publishes_every_good_ride_once_and_reports_nothing(
    stream_with_a_bad_ride_in_the_middle,
    new_stream,
    new_queue,
    read_stream,
    drain_queue,
    stream_env,
    predictor,
    tmp_path,
    capsys,
):
    # Given a permanently invalid ride between good ones, and a handler with an output stream and a dead-letter queue
    source, rides, bad, bad_sequence = stream_with_a_bad_ride_in_the_middle
    sink, dlq = new_stream(), new_queue()
    stream_env(SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=sink, SCORING_DEAD_LETTER_QUEUE_URL=dlq)
    # When `scoring stream run` polls the stream until it is idle with its own handler, two retries allowed
    code = main(
        ["stream", "run", "--kinesis-stream", source]
        + ["--checkpoints", str(tmp_path / "checkpoints.json"), "--max-retries", "2"]
        + ["--idle-timeout", "0.5", "--poll-seconds", "0.05"]
    )
    # Then one invocation handled all seven records and none was reported for a retry
    assert code == 0
    assert "1 invocations, 7 records, 0 reported as failed" in capsys.readouterr().out
    # And every good ride is published exactly once, with the batch path's prediction
    outputs = read_stream(sink)
    assert Counter(m["prediction"]["ride_id"] for m in outputs) == dict.fromkeys(rides["ride_id"].tolist(), 1)
    assert durations_by_ride(outputs) == batch_predictions(predictor, rides)
    # And the bad ride is in the dead-letter queue with its reason and the record to replay it
    (letter,) = drain_queue(dlq)
    assert letter["reason"] == "field 'PULocationID': expected an integer, got a boolean"
    assert letter["itemIdentifier"] == bad_sequence
    assert base64.b64decode(letter["record"]["kinesis"]["data"]).decode() == bad


def test_kinesis_without_a_dead_letter_queue_retries_the_bad_ride_and_republishes_what_follows(
    stream_with_a_bad_ride_in_the_middle, new_stream, read_stream, cold_start, tmp_path, caplog
):
    # Given the same stream and a handler without a dead-letter queue
    caplog.set_level(logging.WARNING)
    source, rides, _, bad_sequence = stream_with_a_bad_ride_in_the_middle
    sink = new_stream()
    handler = cold_start(SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=sink)
    # When the runner polls it, two retries allowed
    summary = run_kinesis(
        handler.lambda_handler, source, checkpoints=CheckpointStore(tmp_path / "c.json"), limits=QUICK, max_retries=2
    )
    # Then the bad ride is reported on the first try and both retries (today's behaviour), then skipped
    assert (summary.batches, summary.failed) == (3, 3)
    # And the rides after it are published on every try, each copy under the same key; those before it once
    outputs = read_stream(sink)
    ids = rides["ride_id"].tolist()
    assert Counter(m["prediction"]["ride_id"] for m in outputs) == {
        **dict.fromkeys(ids[:3], 1),
        **dict.fromkeys(ids[3:], 3),
    }
    assert len({m["key"] for m in outputs}) == 6
    # And the container warned once that permanent failures are retried
    assert caplog.text.count("SCORING_DEAD_LETTER_QUEUE_URL is not set") == 1
    assert caplog.text.count(f"stream item {bad_sequence} failed") == 3


def test_a_new_run_resumes_after_the_checkpoint(kinesis, new_stream, cold_start, tmp_path):
    source = new_stream()
    kinesis.put_record(
        StreamName=source,
        Data=b'{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1.0, "ride_id": 1}',
        PartitionKey="a",
    )
    handler = cold_start()
    store = tmp_path / "checkpoints.json"
    assert run_kinesis(handler.lambda_handler, source, checkpoints=CheckpointStore(store), limits=QUICK).records == 1
    kinesis.put_record(
        StreamName=source,
        Data=b'{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 2.0, "ride_id": 2}',
        PartitionKey="a",
    )
    seen: list[int] = []

    def recording_handler(event, context):
        response = handler.lambda_handler(event, context)
        seen.extend(p["prediction"]["ride_id"] for p in response["predictions"])
        return response

    run_kinesis(recording_handler, source, checkpoints=CheckpointStore(store), limits=QUICK)
    assert seen == [2]


def test_max_batches_stops_the_runner(sqs, new_queue, cold_start):
    source = new_queue()
    for ride_id in range(5):
        body = json.dumps({"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1.0, "ride_id": ride_id})
        sqs.send_message(QueueUrl=source, MessageBody=body)
    handler = cold_start()
    summary = run_sqs(handler.lambda_handler, source, batch_size=2, limits=PollLimits(max_batches=2, poll_seconds=0))
    assert (summary.batches, summary.records) == (2, 4)


RECORD = {"PartitionKey": "k", "SequenceNumber": "1", "Data": b"{}"}


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, []),
        (batch_response([], []), []),
        (batch_response(["2"], []), ["2"]),
        (batch_response(["3", "1"], []), ["1", "3"]),
        # As Lambda does: an identifier not in the batch, or an empty one, fails the whole batch.
        ({"batchItemFailures": [{"itemIdentifier": "99"}]}, ["1", "2", "3"]),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, ["1", "2", "3"]),
        ("not a mapping", ["1", "2", "3"]),
    ],
)
def test_invoke_reads_the_partial_batch_response_as_lambda_does(response, failed):
    records = [kinesis_event_record(dict(RECORD, SequenceNumber=s), "shardId-0", "arn", "us-east-1") for s in "123"]
    assert invoke(lambda event, context: response, records, ["1", "2", "3"]) == failed


def test_a_handler_that_raises_fails_the_whole_batch():
    def broken(event, context):
        raise RuntimeError("boom")

    assert invoke(broken, [{}, {}], ["a", "b"]) == ["a", "b"]


def test_a_handler_that_refuses_the_batch_by_name_fails_it_in_one_line(caplog):
    def refusing(event, context):
        raise MalformedEvent("event record 1 is neither a Kinesis record nor an SQS message")

    assert invoke(refusing, [{}, {}], ["a", "b"]) == ["a", "b"]
    (line,) = caplog.records
    assert "event record 1 is neither" in line.getMessage() and line.exc_info is None


def test_the_in_process_handler_is_the_composition_the_lambda_function_runs(cold_start, rides):
    # Given the Lambda function cold-started, and the core's handler built from the same settings
    function = cold_start()
    handler = build_handler(Settings.from_env())
    # And a Kinesis event of three rides and a poison record
    payloads = [tutorial_payload(ride) for ride in rides.head(3).itertuples()] + ["{poison"]
    raw = [dict(RECORD, SequenceNumber=str(n), Data=p.encode()) for n, p in enumerate(payloads, start=1)]
    event = {"Records": [kinesis_event_record(r, "shardId-0", "arn", "us-east-1") for r in raw]}
    # When both answer it
    answer = handler(event, None)
    # Then the answers are identical: the three predictions, and (no dead-letter queue) the poison reported
    assert answer == function.lambda_handler(event, None)
    assert len(answer["predictions"]) == 3 and answer["batchItemFailures"] == [{"itemIdentifier": "4"}]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no/such/file.py:lambda_handler", "handler file no/such/file.py does not exist"),
        (f"{HANDLER_PATH}:no_such_function", "has no function 'no_such_function'"),
    ],
)
def test_a_custom_handler_that_cannot_be_loaded_is_named(stream_env, spec, message):
    stream_env()
    with pytest.raises(ConfigError, match=message):
        load_handler(spec)


def test_the_default_handler_refuses_incomplete_settings_before_polling(stream_env, capsys):
    # Given an output named without its stream
    stream_env(SCORING_STREAM_OUTPUT="kinesis")
    # When `scoring stream run` starts with its own handler
    code = main(["stream", "run", "--sqs-queue-url", "http://unused.invalid/queue", "--max-batches", "1"])
    # Then it stops before polling, naming the missing setting
    assert code == 1 and "SCORING_OUTPUT_STREAM" in capsys.readouterr().err
