"""The handler on recorded Kinesis and SQS events: good rides scored, each poison record reported alone."""

from __future__ import annotations

import base64
import json

import pytest

from scoring.errors import ConfigError, MalformedEvent
from scoring.stream.decode import parse_payload, record_key

# Sequence numbers and message ids of tests/lambda_fn/events/*.json, with what each record holds.
KINESIS = {
    "49654353585766103837592386384207446212369425627307212802": ("ok", 256, (130, 205, 3.66)),
    "49654353585766103837592386384207446212369426726818840578": ("ok", 257, (10, 50, 40.0)),
    "49654353585766103837592386384207446212369427826330468354": ("bad base64", None, None),
    "49654353585766103837592386384207446212369428925842096130": ("bad JSON", None, None),
    "49654353585766103837592386384207446212369430025353723906": ("missing field", None, None),
    "49654353585766103837592386384207446212369431124865351682": ("mistyped field", None, None),
    "49654353585766103837592386384207446212369432224376979458": ("ok", "ride-261", (43, 238, 0.0)),
}
SQS = {
    "2e1424d4-f796-459a-8184-9c92662be6da": ("ok", 256, (130, 205, 3.66)),
    "f3a6c2b0-4f3e-4d6e-9a51-7c1e2f0d8a11": ("bad JSON", None, None),
    "0b9c7e55-1d2a-4c39-a7f8-5e6b3d2c1f00": ("ok", 258, (10, 50, 40.0)),
    "9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a": ("missing field", None, None),
    "5c4b3a29-1807-4f6e-9d5c-4b3a2918f7e6": ("mistyped field", None, None),
    "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d": ("missing id", None, None),
}
RECORDED = [("kinesis_rides.json", KINESIS), ("sqs_rides.json", SQS)]


def item_id(record: dict) -> str:
    return record["kinesis"]["sequenceNumber"] if "kinesis" in record else record["messageId"]


def expected_durations(predictor, rides: list[tuple[int, int, float]]) -> list[float]:
    """What the batch path predicts for the same rides."""
    flat = [{"PULocationID": pu, "DOLocationID": do, "trip_distance": km} for pu, do, km in rides]
    checked = predictor.schema.validate_records(flat)
    assert checked.rejected.empty
    return predictor.predict(checked.valid).tolist()


@pytest.mark.parametrize(("event_file", "contents"), RECORDED)
def test_recorded_event_scores_good_rides_and_reports_only_the_poison_ones(
    cold_start, recorded_event, predictor, event_file, contents
):
    # Given a recorded event mixing good rides with poison records, and no output configured
    handler = cold_start()
    # When Lambda invokes the handler
    response = handler.lambda_handler(recorded_event(event_file), None)
    # Then exactly the poison records are reported, in event order, and the good ones are answered
    # (without a dead-letter queue, records that can never succeed are reported, as before)
    poison = [key for key, (kind, _, _) in contents.items() if kind != "ok"]
    good = [(item, value) for item, value in contents.items() if value[0] == "ok"]
    assert response["batchItemFailures"] == [{"itemIdentifier": key} for key in poison]
    durations = expected_durations(predictor, [ride for _, (_, _, ride) in good])
    source = recorded_event(event_file)["Records"][0]["eventSourceARN"]
    assert response["predictions"] == [
        {
            "model": "ride_duration",
            "version": "1",
            "prediction": {"duration": duration, "ride_id": ride_id},
            "key": record_key(source, item),
        }
        for (item, (_, ride_id, _)), duration in zip(good, durations, strict=True)
    ]


@pytest.mark.parametrize(
    ("event_file", "poison_id"),
    [(name, key) for name, contents in RECORDED for key, (kind, _, _) in contents.items() if kind != "ok"],
)
def test_a_single_poison_record_fails_alone(cold_start, recorded_event, event_file, poison_id):
    # Given the good records of a recorded event plus one poison record
    event = recorded_event(event_file)
    contents = dict(RECORDED)[event_file]
    event["Records"] = [r for r in event["Records"] if contents[item_id(r)][0] == "ok" or item_id(r) == poison_id]
    # When the handler scores it
    response = cold_start().lambda_handler(event, None)
    # Then that record alone is reported and every good ride is answered
    assert response["batchItemFailures"] == [{"itemIdentifier": poison_id}]
    assert len(response["predictions"]) == sum(kind == "ok" for kind, _, _ in contents.values())


def test_tutorial_shape_and_flat_record_get_the_same_prediction(cold_start, recorded_event):
    # Given the same ride sent wrapped ({"ride": ..., "ride_id": ...}) and flat
    event = recorded_event("sqs_rides.json")
    ride = {"PULocationID": 74, "DOLocationID": 168, "trip_distance": 2.9}
    wrapped, flat = event["Records"][0], dict(event["Records"][0], messageId="flat-1")
    wrapped["body"] = json.dumps({"ride": ride, "ride_id": 9})
    flat["body"] = json.dumps({**ride, "ride_id": 9})
    event["Records"] = [wrapped, flat]
    # When both are scored in one invocation
    response = cold_start().lambda_handler(event, None)
    # Then both get one and the same answer
    assert response["batchItemFailures"] == []
    first, second = response["predictions"]
    assert first["prediction"] == second["prediction"] and first["prediction"]["ride_id"] == 9
    # And each keeps the key of its own input record
    assert first["key"] != second["key"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ('{"ride": {"PULocationID": 1', "the payload is not valid JSON (Expecting ',' delimiter at position 27)"),
        ("[1, 2]", "the payload is not a JSON object"),
        ('{"ride": [1, 2], "ride_id": 3}', "field 'ride': expected an object"),
        ('{"ride": {"PULocationID": 1}}', "missing id field 'ride_id'"),
        ('{"PULocationID": 1, "ride_id": null}', "missing id field 'ride_id'"),
        ('{"PULocationID": 1, "ride_id": true}', "id field 'ride_id': expected an integer or a string, got a boolean"),
        ('{"PULocationID": 1, "ride_id": " "}', "missing id field 'ride_id'"),
        ('{"PULocationID": 1, "ride_id": NaN}', "id field 'ride_id': expected an integer or a string, got NaN"),
        (
            '{"PULocationID": 1, "ride_id": {"a": 1}}',
            "id field 'ride_id': expected an integer or a string, got an object",
        ),
        (
            '{"PULocationID": 1, "ride_id": "\\ud800"}',
            "id field 'ride_id': is not valid Unicode text (a lone surrogate)",
        ),
        ('{"PULocationID": 1, "ride_id": "a\\u0000b"}', "id field 'ride_id': contains a control character"),
        ('{"PULocationID": 1, "ride_id": "' + "x" * 129 + '"}', "id field 'ride_id': is longer than 128 characters"),
    ],
)
def test_payload_problems_are_named_without_echoing_the_record(payload, reason):
    assert parse_payload(payload, "ride_id") == (None, None, reason)


def test_inner_id_is_used_when_the_wrapper_has_none():
    record, record_id, error = parse_payload('{"ride": {"PULocationID": 1, "ride_id": 7}}', "ride_id")
    assert error is None and record == {"PULocationID": 1, "ride_id": 7} and record_id == 7


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("eyJyaWRlIjog!!", "the record's data is not valid base64"),
        (base64.b64encode(b"\xff\xfe{}").decode(), "the record's data is not UTF-8 text"),
    ],
)
def test_kinesis_data_problems_are_reported_per_record(cold_start, recorded_event, caplog, data, reason):
    event = recorded_event("kinesis_rides.json")
    event["Records"] = event["Records"][:2]
    event["Records"][1]["kinesis"]["data"] = data
    response = cold_start().lambda_handler(event, None)
    assert response["batchItemFailures"] == [{"itemIdentifier": item_id(event["Records"][1])}]
    assert reason in caplog.text


def test_an_event_that_is_not_from_kinesis_or_sqs_fails_the_whole_invocation(cold_start):
    # A record without a sequence number or message id cannot be reported alone: Lambda must retry the batch.
    handler = cold_start()
    with pytest.raises(MalformedEvent, match="record 0 is neither"):
        handler.lambda_handler({"Records": [{"eventSource": "aws:s3"}]}, None)
    with pytest.raises(MalformedEvent, match="no 'Records' list"):
        handler.lambda_handler({"detail": {}}, None)


def test_an_empty_batch_answers_nothing(cold_start):
    assert cold_start().lambda_handler({"Records": []}, None) == {"batchItemFailures": [], "predictions": []}


def test_cold_start_refuses_an_output_without_its_destination(cold_start):
    with pytest.raises(ConfigError, match="SCORING_OUTPUT_STREAM"):
        cold_start(SCORING_STREAM_OUTPUT="kinesis")
    with pytest.raises(ConfigError, match="SCORING_OUTPUT_QUEUE_URL"):
        cold_start(SCORING_STREAM_OUTPUT="sqs")


@pytest.mark.parametrize("payload", ['{"ride_id": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000])
def test_payloads_beyond_pythons_json_limits_fail_alone(payload):
    record, _, reason = parse_payload(payload, "ride_id")
    assert record is None and reason == "the payload is valid JSON but too large or too deeply nested to read"
