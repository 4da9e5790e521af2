"""The Lambda handler serves any bundle as its manifest declares: a fraud classifier and a multiclass risk model."""

from __future__ import annotations

import json

import pytest

from scoring.stream.wire import kinesis_event_record, sqs_event_record
from tests.webservice.generic_bundles import RISK_CLASSES, fraud_transactions, risk_cases

STREAM_ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/transactions"
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:transactions"


def kinesis_event(payloads: list[dict]) -> dict:
    """A Kinesis event as Lambda builds it, sequence numbers 5000, 5001, ..."""
    records = [
        {"PartitionKey": "k", "SequenceNumber": str(5000 + i), "Data": json.dumps(payload).encode()}
        for i, payload in enumerate(payloads)
    ]
    return {"Records": [kinesis_event_record(r, "shardId-000000000000", STREAM_ARN, "us-east-1") for r in records]}


def sqs_event(payloads: list[dict]) -> dict:
    """An SQS event as Lambda builds it, message ids m-0, m-1, ..."""
    messages = [
        {"MessageId": f"m-{i}", "ReceiptHandle": f"r-{i}", "Body": json.dumps(payload)}
        for i, payload in enumerate(payloads)
    ]
    return {"Records": [sqs_event_record(m, QUEUE_ARN, "us-east-1") for m in messages]}


EVENTS = {"kinesis": kinesis_event, "sqs": sqs_event}


@pytest.mark.parametrize("source", list(EVENTS))
def test_transactions_are_answered_with_predict_proba_in_every_payload_shape(cold_start, fraud_model, source):
    # Given a handler around the fraud bundle, and transactions sent flat, in the generic wrapper with an id,
    # and in the wrapper without one
    handler = cold_start(SCORING_MODEL_URI=str(fraud_model.directory))
    transactions = fraud_transactions(30, seed=17)
    payloads = [
        {"record": t, "id": f"t-{i}"} if i % 3 == 0 else {"record": t} if i % 3 == 1 else t
        for i, t in enumerate(transactions)
    ]
    # When Lambda delivers them in one event
    response = handler.lambda_handler(EVENTS[source](payloads), None)
    # Then nothing fails, and each message is predict_proba[:, 1], with the id exactly when one was sent
    assert response["batchItemFailures"] == []
    expected = fraud_model.predict_proba(transactions)[:, 1].tolist()
    answers = [message["prediction"] for message in response["predictions"]]
    assert answers == [
        {"fraud_probability": p, "id": f"t-{i}"} if i % 3 == 0 else {"fraud_probability": p}
        for i, p in enumerate(expected)
    ]
    assert {(m["model"], m["version"]) for m in response["predictions"]} == {("fraud", "3")}


@pytest.mark.parametrize("source", list(EVENTS))
def test_a_bad_transaction_fails_alone_with_a_one_line_reason(cold_start, fraud_model, source, caplog):
    # Given a batch whose middle transaction names a country the manifest does not allow, or a bad id
    handler = cold_start(SCORING_MODEL_URI=str(fraud_model.directory))
    good = {"amount": 20.0, "merchant": "fuel", "country": "FR"}
    payloads = [
        {"record": good, "id": 1},
        {"record": {**good, "country": "XX"}, "id": 2},
        {"record": good, "id": True},
        {"record": good, "id": 4},
    ]
    event = EVENTS[source](payloads)
    # When it is handled (no dead-letter queue: bad records are reported)
    response = handler.lambda_handler(event, None)
    # Then only those two are reported, each for its own reason, and the others are answered
    failed = [entry["itemIdentifier"] for entry in response["batchItemFailures"]]
    ids = [r["kinesis"]["sequenceNumber"] if "kinesis" in r else r["messageId"] for r in event["Records"]]
    assert failed == [ids[1], ids[2]]
    assert [m["prediction"]["id"] for m in response["predictions"]] == [1, 4]
    assert "country" in caplog.text and "id field 'id': expected an integer or a string, got a boolean" in caplog.text


@pytest.mark.parametrize("source", list(EVENTS))
def test_a_multiclass_bundle_publishes_the_label_and_the_probabilities(cold_start, risk_model, source):
    # Given a handler around the risk bundle, and cases with their id beside the wrapper, inside it, or flat
    handler = cold_start(SCORING_MODEL_URI=str(risk_model.directory))
    cases = risk_cases(12, seed=4)
    payloads = [
        {"record": c, "case_id": i}
        if i % 3 == 0
        else {"record": {**c, "case_id": i}}
        if i % 3 == 1
        else {**c, "case_id": i}
        for i, c in enumerate(cases)
    ]
    # When they arrive
    response = handler.lambda_handler(EVENTS[source](payloads), None)
    # Then each message holds the most probable class, every class's probability and the case id
    assert response["batchItemFailures"] == []
    expected = [
        {
            "risk": RISK_CLASSES[row.index(max(row))],
            "probabilities": dict(zip(RISK_CLASSES, row, strict=True)),
            "case_id": i,
        }
        for i, row in enumerate(risk_model.predict_proba(cases).tolist())
    ]
    assert [m["prediction"] for m in response["predictions"]] == expected


def test_a_multiclass_record_without_its_id_is_refused(cold_start, risk_model):
    # Given a bundle that names an id field, a stream record without it cannot be matched to its answer
    handler = cold_start(SCORING_MODEL_URI=str(risk_model.directory))
    response = handler.lambda_handler(sqs_event([{"record": {"age": 30, "region": "east"}}]), None)
    assert response["batchItemFailures"] == [{"itemIdentifier": "m-0"}] and response["predictions"] == []


@pytest.mark.aws
def test_published_messages_carry_the_manifests_names(cold_start, fraud_model, new_stream, read_stream):
    # Given a fraud handler publishing to Kinesis
    stream = new_stream()
    handler = cold_start(
        SCORING_MODEL_URI=str(fraud_model.directory), SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=stream
    )
    transaction = {"amount": 3000.0, "merchant": "casino", "country": "NG"}
    # When one transaction with an id and one without are handled
    handler.lambda_handler(kinesis_event([{"record": transaction, "id": "t-9"}, transaction]), None)
    # Then the stream holds both answers under the manifest's output name, the id where one was sent
    probability = fraud_model.predict_proba([transaction])[0, 1]
    assert sorted((m["prediction"] for m in read_stream(stream)), key=len) == [
        {"fraud_probability": probability},
        {"fraud_probability": probability, "id": "t-9"},
    ]


@pytest.mark.parametrize("source", list(EVENTS))
def test_a_classifier_imported_with_no_features_answers_predict_proba(cold_start, imported_fraud_model, source):
    # Given a handler around the fraud pickle imported with no --features
    handler = cold_start(SCORING_MODEL_URI=str(imported_fraud_model.directory))
    transactions = fraud_transactions(40, seed=78)
    # When the transactions arrive in the generic wrapper
    response = handler.lambda_handler(
        EVENTS[source]([{"record": t, "id": i} for i, t in enumerate(transactions)]), None
    )
    # Then every message is predict_proba[:, 1] of its transaction, under its id
    assert response["batchItemFailures"] == []
    expected = imported_fraud_model.predict_proba(transactions)[:, 1].tolist()
    assert [m["prediction"] for m in response["predictions"]] == [
        {"fraud_probability": p, "id": i} for i, p in enumerate(expected)
    ]
