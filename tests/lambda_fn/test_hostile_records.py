"""Hostile records against the real handler: whatever one record holds, it fails alone; a record that can never
succeed goes to the dead-letter queue instead of being retried; a retried batch publishes under the same keys."""

from __future__ import annotations

import base64
import json
import logging
import re

import pytest

from scoring.errors import MalformedEvent
from scoring.model import record_ids
from scoring.stream.wire import kinesis_event_record

pytestmark = pytest.mark.aws

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/ride_events"


def ride(ride_id, trip_distance: float = 2.5) -> str:
    return json.dumps(
        {"ride": {"PULocationID": 10, "DOLocationID": 50, "trip_distance": trip_distance}, "ride_id": ride_id}
    )


def kinesis_event(payloads: list[str], arn: str = ARN) -> dict:
    """A Kinesis event as Lambda builds it, sequence numbers 1000, 1001, ..."""
    records = [
        {"PartitionKey": "k", "SequenceNumber": str(1000 + position), "Data": payload.encode()}
        for position, payload in enumerate(payloads)
    ]
    return {"Records": [kinesis_event_record(r, "shardId-000000000000", arn, "us-east-1") for r in records]}


def columnar_only(monkeypatch) -> None:
    """Score every batch through the columnar path, where the SIMULATED faults below are injected (the small
    path sums a linear model itself and never calls the patched method)."""
    monkeypatch.setattr("scoring.model.records.SMALL_PATH_MAX_RECORDS", 0)


def refuse_distance(handler, distance: float, monkeypatch) -> None:
    """Make the loaded model raise on one trip distance (SIMULATED: a transformer refusing a value the validator let in)."""
    columnar_only(monkeypatch)
    real_predict = handler.HANDLER.predictor.predict_with_probabilities

    def predict(inputs):
        if (inputs["trip_distance"] == distance).any():
            raise ValueError(f"cannot transform {distance}")
        return real_predict(inputs)

    handler.HANDLER.predictor.predict_with_probabilities = predict


@pytest.fixture
def outputs(cold_start, new_stream, read_stream, new_queue, drain_queue):
    """A fresh handler publishing to a new Kinesis stream, with or without a dead-letter queue, and readers."""

    def start(dead_letters: bool = True, **settings: str):
        stream_name, dlq = new_stream(), new_queue()
        settings = {"SCORING_STREAM_OUTPUT": "kinesis", "SCORING_OUTPUT_STREAM": stream_name, **settings}
        if dead_letters:
            settings["SCORING_DEAD_LETTER_QUEUE_URL"] = dlq
        handler = cold_start(**settings)
        return handler, (lambda: read_stream(stream_name)), (lambda: drain_queue(dlq))

    return start


@pytest.mark.parametrize("id_rule", ["on", "as it was"])
def test_a_lone_surrogate_id_fails_alone_and_nothing_is_written_before_it_is_known(outputs, monkeypatch, id_rule):
    # Given 600 rides where the 551st has a lone surrogate id (valid JSON), after a full PutRecords batch of 500;
    # with the id rule as it was before it refused surrogates, the record reaches output building, as it did
    # when the batch failed after 500 writes: the id rule is the first defence, this proves the second
    if id_rule != "on":
        monkeypatch.setattr(record_ids, "UNSTORABLE", re.compile(r"[\x00-\x1f\x7f]"))
    payloads = [ride(i) for i in range(600)]
    payloads[550] = '{"ride": {"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1.0}, "ride_id": "\\ud800"}'
    handler, published, dead_letters = outputs()
    # When the handler scores the batch
    response = handler.lambda_handler(kinesis_event(payloads), None)
    # Then every other ride is published exactly once, and nothing is reported for a retry
    assert response["batchItemFailures"] == []
    assert sorted(m["prediction"]["ride_id"] for m in published()) == [i for i in range(600) if i != 550]
    # And the bad record is in the dead-letter queue with its reason and the event record to replay it
    (letter,) = dead_letters()
    assert letter["itemIdentifier"] == "1550"
    assert ("lone surrogate" if id_rule == "on" else "UnicodeEncodeError") in letter["reason"]
    assert base64.b64decode(letter["record"]["kinesis"]["data"]).decode() == payloads[550]
    assert letter["record"]["eventSourceARN"] == ARN and "Traceback" not in json.dumps(letter)


def test_a_record_the_model_cannot_take_fails_alone(outputs, monkeypatch):
    # Given a model that raises on one ride's value (SIMULATED: a transformer refusing a value the validator let in)
    handler, published, dead_letters = outputs()
    refuse_distance(handler, 13.13, monkeypatch)
    # When a batch holds it between two good rides
    response = handler.lambda_handler(kinesis_event([ride(1), ride(2, 13.13), ride(3)]), None)
    # Then the good rides are published and the other one dead-lettered with the error's type, not a traceback
    assert response["batchItemFailures"] == []
    assert [m["prediction"]["ride_id"] for m in published()] == [1, 3]
    (letter,) = dead_letters()
    assert letter["itemIdentifier"] == "1001" and "ValueError" in letter["reason"]


def test_a_model_that_fails_on_every_record_fails_the_batch_for_a_retry(outputs, monkeypatch):
    # Given a model that raises whatever it is given (SIMULATED: the fault is not any record's)
    handler, published, dead_letters = outputs()

    def predict(inputs):
        raise MemoryError("simulated")

    columnar_only(monkeypatch)
    handler.HANDLER.predictor.predict_with_probabilities = predict
    # When a batch arrives, then the invocation fails, so Lambda retries it, and nothing is dead-lettered
    with pytest.raises(MemoryError):
        handler.lambda_handler(kinesis_event([ride(1), ride(2)]), None)
    assert published() == [] and dead_letters() == []


def test_a_retried_batch_publishes_under_the_same_keys_and_a_fifo_output_keeps_one_copy(cold_start, sqs, drain_queue):
    # Given a handler writing to a FIFO queue
    queue = sqs.create_queue(QueueName="rides-out-retry.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    handler = cold_start(SCORING_STREAM_OUTPUT="sqs", SCORING_OUTPUT_QUEUE_URL=queue)
    event = kinesis_event([ride(1), ride(2), ride(3)])
    # When Lambda delivers the same batch twice (a retry)
    first = handler.lambda_handler(event, None)
    second = handler.lambda_handler(event, None)
    # Then both answers carry the same stable key per record, distinct between records
    keys = [m["key"] for m in first["predictions"]]
    assert keys == [m["key"] for m in second["predictions"]] and len(set(keys)) == 3
    # And the queue holds one message per ride
    assert [(m["key"], m["prediction"]["ride_id"]) for m in drain_queue(queue)] == list(
        zip(keys, [1, 2, 3], strict=True)
    )


def test_the_same_sequence_number_on_two_streams_is_two_records(cold_start, sqs, drain_queue):
    # Given a FIFO output fed by two input streams whose records share sequence numbers
    queue = sqs.create_queue(QueueName="rides-out-sources.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    handler = cold_start(SCORING_STREAM_OUTPUT="sqs", SCORING_OUTPUT_QUEUE_URL=queue)
    # When each delivers one ride under sequence number 1000
    handler.lambda_handler(kinesis_event([ride(1)], arn=ARN), None)
    handler.lambda_handler(kinesis_event([ride(2)], arn=ARN + "-eu"), None)
    # Then neither is taken for a duplicate of the other
    assert sorted(m["prediction"]["ride_id"] for m in drain_queue(queue)) == [1, 2]


def test_without_a_dead_letter_queue_bad_records_are_reported_and_the_container_warns_once(outputs, caplog):
    # Given a handler without a dead-letter queue
    caplog.set_level(logging.WARNING)
    handler, published, _ = outputs(dead_letters=False)
    # When two batches each hold a record that can never succeed
    answers = [handler.lambda_handler(kinesis_event([ride(1), "{poison", ride(3)]), None) for _ in range(2)]
    # Then it is reported each time (today's behaviour), and the container said once that it will be retried
    assert all(a["batchItemFailures"] == [{"itemIdentifier": "1001"}] for a in answers)
    assert caplog.text.count("SCORING_DEAD_LETTER_QUEUE_URL is not set") == 1


def test_a_dead_letter_of_a_record_too_large_for_sqs_keeps_its_reason_and_key(outputs):
    # Given a Kinesis record of 300 KiB that is not JSON (Kinesis takes 1 MiB; SQS 256 KiB)
    handler, published, dead_letters = outputs()
    response = handler.lambda_handler(kinesis_event([ride(1), "{" + "x" * 300 * 1024]), None)
    # Then it is dead-lettered within SQS's limit, with the reason, its identifiers, and what was left out
    assert response["batchItemFailures"] == []
    (letter,) = dead_letters()
    assert len(json.dumps(letter)) <= 256 * 1024
    assert letter["reason"].startswith("the payload is not valid JSON")
    assert letter["record"]["eventSourceARN"] == ARN and letter["record"]["kinesis"]["sequenceNumber"] == "1001"
    assert letter["record"]["kinesis"]["data"] is None and "kinesis.data" in letter["dropped"]


def test_a_dead_letter_that_cannot_be_written_is_reported(outputs):
    # Given a dead-letter queue that refuses every message (SIMULATED: SQS unavailable)
    handler, published, _ = outputs()

    class Unavailable:
        def send_message_batch(self, QueueUrl, Entries):
            return {"Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "ServiceUnavailable"} for e in Entries]}

    handler.HANDLER.dead_letters.client = Unavailable()
    handler.HANDLER.dead_letters.retry.sleep = lambda seconds: None
    # When a batch holds a bad record
    response = handler.lambda_handler(kinesis_event([ride(1), "{poison", ride(3)]), None)
    # Then that record is reported for a retry, and the good rides are published
    assert response["batchItemFailures"] == [{"itemIdentifier": "1001"}]
    assert [m["prediction"]["ride_id"] for m in published()] == [1, 3]


@pytest.mark.parametrize(
    ("event", "kind"), [([{"Records": []}], "a list"), ("Records", "a string"), (None, "null"), (7, "an int")]
)
def test_an_event_that_is_not_an_object_is_refused_in_one_line(cold_start, caplog, event, kind):
    handler = cold_start()
    with pytest.raises(MalformedEvent, match=f"the event is {kind}, not an object"):
        handler.lambda_handler(event, None)
    (line,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"the event is {kind}, not an object" in line.getMessage() and line.exc_info is None


def test_an_output_the_queue_will_never_take_is_dead_lettered_not_retried(cold_start, new_queue, drain_queue):
    # Given an SQS output that refuses ride 2 as the sender's fault (SIMULATED: moto never does), and a DLQ
    output, dlq = new_queue(), new_queue()
    handler = cold_start(
        SCORING_STREAM_OUTPUT="sqs", SCORING_OUTPUT_QUEUE_URL=output, SCORING_DEAD_LETTER_QUEUE_URL=dlq
    )
    real = handler.HANDLER.sink.client

    class RefusesRideTwo:
        def send_message_batch(self, QueueUrl, Entries):
            refused = [e for e in Entries if json.loads(e["MessageBody"])["prediction"]["ride_id"] == 2]
            real.send_message_batch(QueueUrl=QueueUrl, Entries=[e for e in Entries if e not in refused])
            failed = [{"Id": e["Id"], "SenderFault": True, "Code": "InvalidParameterValue"} for e in refused]
            return {"Failed": failed}

    handler.HANDLER.sink.client = RefusesRideTwo()
    # When a batch holds it
    response = handler.lambda_handler(kinesis_event([ride(1), ride(2), ride(3)]), None)
    # Then it is not reported (a retry would be refused again) but dead-lettered, and the others published
    assert response["batchItemFailures"] == []
    assert [m["prediction"]["ride_id"] for m in drain_queue(output)] == [1, 3]
    (letter,) = drain_queue(dlq)
    assert letter["itemIdentifier"] == "1001" and letter["reason"].startswith(
        "output not written: InvalidParameterValue"
    )


def test_a_huge_integer_id_is_refused_by_name_and_dead_lettered(outputs):
    # Given an integer id of 300 digits (no table or partition key could hold it: one id rule in every mode)
    handler, published, dead_letters = outputs()
    response = handler.lambda_handler(kinesis_event([ride(10**299), ride(7)]), None)
    # Then the other ride is published, and the huge one is dead-lettered with the rule it broke
    assert response["batchItemFailures"] == []
    assert [m["prediction"]["ride_id"] for m in published()] == [7]
    (letter,) = dead_letters()
    assert letter["itemIdentifier"] == "1000" and "is longer than 128 characters" in letter["reason"]


def test_a_lone_valid_record_the_model_cannot_take_is_dead_lettered_not_retried_forever(outputs, monkeypatch):
    # Given a model that raises on one ride's value, and a batch whose only valid record is that ride
    # (SIMULATED model fault): alone, a poison record and a broken model look the same
    handler, published, dead_letters = outputs()
    refuse_distance(handler, 13.13, monkeypatch)
    # When it arrives beside an invalid record
    response = handler.lambda_handler(kinesis_event([ride(2, 13.13), "not json"]), None)
    # Then the invocation answers: both go to the dead-letter queue (replayable), nothing is retried in a loop
    assert response["batchItemFailures"] == [] and published() == []
    assert sorted(letter["itemIdentifier"] for letter in dead_letters()) == ["1000", "1001"]
