"""One payload parser for every bundle: flat records, the course's {"ride": ...} and the generic {"record": ...}."""

from __future__ import annotations

import json

import pytest

from scoring.stream.decode import Payload, parse_payload

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 2.5}
TRANSACTION = {"amount": 12.5, "merchant": "books", "country": "DE"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # The course's shape: the id beside the wrapper, under the id field's name
        ({"ride": RIDE, "ride_id": 256}, Payload({**RIDE, "ride_id": 256}, 256)),
        # The generic wrapper works for a ride bundle too, its id under "id" or the id field's name
        ({"record": RIDE, "id": "r-1"}, Payload({**RIDE, "ride_id": "r-1"}, "r-1")),
        ({"record": RIDE, "ride_id": 7}, Payload({**RIDE, "ride_id": 7}, 7)),
        ({"record": {**RIDE, "ride_id": 8}}, Payload({**RIDE, "ride_id": 8}, 8)),
        ({**RIDE, "ride_id": 9}, Payload({**RIDE, "ride_id": 9}, 9)),
    ],
)
def test_a_ride_bundle_reads_every_shape(payload, expected):
    assert parse_payload(json.dumps(payload), "ride_id", frozenset(RIDE)) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"record": TRANSACTION, "id": "t-1"}, Payload(TRANSACTION, "t-1")),
        ({"record": TRANSACTION, "id": 5}, Payload(TRANSACTION, 5)),
        # Without an id field, an id is optional; a blank one counts as none
        ({"record": TRANSACTION}, Payload(TRANSACTION, None)),
        ({"record": TRANSACTION, "id": " "}, Payload(TRANSACTION, None)),
        (TRANSACTION, Payload(TRANSACTION, None)),
        # A flat record's "id" is just another field: only a wrapper carries an id beside it
        ({**TRANSACTION, "id": "t-2"}, Payload({**TRANSACTION, "id": "t-2"}, None)),
    ],
)
def test_a_bundle_without_an_id_field_takes_an_id_when_one_is_sent(payload, expected):
    assert parse_payload(json.dumps(payload), None, frozenset(TRANSACTION)) == expected


@pytest.mark.parametrize(
    ("payload", "id_field", "reason"),
    [
        ('{"record": [1], "id": 1}', None, "field 'record': expected an object"),
        ('{"record": "x"}', "ride_id", "field 'record': expected an object"),
        ('{"ride": {}, "record": {}}', "ride_id", "the payload has both 'ride' and 'record': send one wrapper"),
        ('{"record": {}, "id": true}', None, "id field 'id': expected an integer or a string, got a boolean"),
        ('{"record": {}, "id": {"a": 1}}', None, "id field 'id': expected an integer or a string, got an object"),
        ('{"record": {}, "id": "\\ud800"}', None, "id field 'id': is not valid Unicode text (a lone surrogate)"),
        ('{"record": {}, "id": NaN}', "case_id", "id field 'case_id': expected an integer or a string, got NaN"),
        ('{"record": {"age": 3}}', "case_id", "missing id field 'case_id'"),
    ],
)
def test_wrapper_and_id_problems_are_named_in_one_line(payload, id_field, reason):
    assert parse_payload(payload, id_field) == (None, None, reason)


def test_an_input_named_like_a_wrapper_is_an_input():
    # Given a bundle with an input called "record", a flat payload keeps it as a field
    payload = json.dumps({"record": "gold", "amount": 1.0})
    assert parse_payload(payload, None, frozenset({"record", "amount"})) == Payload({"record": "gold", "amount": 1.0})
