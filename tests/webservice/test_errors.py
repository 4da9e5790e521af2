"""Bad input is a 4xx JSON error naming the problem, never a 500 or a stack trace; server faults are opaque 5xx."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.webservice.conftest import TUTORIAL_RIDE
from webservice.service import LoadedModel


def error_of(response) -> dict:
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"PULocationID": True}, "field 'PULocationID': expected an integer, got a boolean"),
        ({"DOLocationID": 10.7}, "field 'DOLocationID': 10.7 is not an integer"),
        ({"trip_distance": "40"}, "field 'trip_distance': expected a number, got a string"),
        ({"trip_distance": None}, "field 'trip_distance': is null or NaN"),
        ({"trip_distance": -1}, "field 'trip_distance': -1 is below the minimum 0"),
        ({"PULocationID": [10]}, "field 'PULocationID': expected an integer, got an array"),
    ],
)
def test_a_bad_field_is_named_with_its_record(client, change, reason):
    response = client.post("/predict", json={**TUTORIAL_RIDE, **change})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["problems"] == [{"index": 0, "reason": reason}]


def test_a_missing_field_is_named(client):
    ride = {k: v for k, v in TUTORIAL_RIDE.items() if k != "trip_distance"}
    error = error_of(client.post("/predict", json=ride))
    assert error["problems"] == [{"index": 0, "reason": "missing required field 'trip_distance'"}]


@pytest.mark.parametrize(
    "literal",
    ["1e400", "-1e999", "1" + "0" * 400, "9" * 5000],  # overflow a double; the last also passes Python's digit limit
    ids=["exponent", "negative-exponent", "400-digits", "5000-digits"],
)
def test_numbers_beyond_a_double_are_refused_by_field(client, literal):
    body = f'{{"PULocationID": 10, "DOLocationID": 50, "trip_distance": {literal}}}'
    response = client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 422
    assert error_of(response)["problems"] == [{"index": 0, "reason": "field 'trip_distance': is not finite"}]


def test_a_prediction_that_overflows_is_refused_not_sent_as_invalid_json(client):
    # Given a distance the validator accepts but that drives a linear model past the largest double
    response = client.post("/predict", json={**TUTORIAL_RIDE, "trip_distance": 1e308})
    # Then the record is refused by index; "Infinity" would not be JSON at all
    assert response.status_code == 422
    assert error_of(response)["problems"][0]["index"] == 0
    assert "prediction is not finite" in error_of(response)["problems"][0]["reason"]


def test_every_bad_record_of_a_batch_is_listed_with_index_and_id(client):
    records = [
        {**TUTORIAL_RIDE, "ride_id": 1},
        {**TUTORIAL_RIDE, "trip_distance": True, "ride_id": "bad-1"},
        "not a record",
        {**TUTORIAL_RIDE, "ride_id": 4},
        {"ride_id": 5, "PULocationID": 1.5, "DOLocationID": 2},
    ]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 422
    error = error_of(response)
    assert error["message"] == "3 record(s) failed validation"
    assert error["problems"] == [
        {"index": 1, "id": "bad-1", "reason": "field 'trip_distance': expected a number, got a boolean"},
        {"index": 2, "reason": "record is a string, not an object"},
        {
            "index": 4,
            "id": 5,
            "reason": "field 'PULocationID': 1.5 is not an integer; missing required field 'trip_distance'",
        },
    ]


@pytest.mark.parametrize(
    ("raw_id", "reason"),
    [
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ('{"a": 1}', "object"),
        ("true", "boolean"),
        ("[1]", "array"),
    ],
)
def test_an_id_that_is_not_text_or_a_finite_number_is_refused_by_name(client, raw_id, reason):
    # Given a batch whose second record has an id that cannot be a record id (raw JSON: NaN and Infinity too)
    body = '{"records": [{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 3, "ride_id": 1}, '
    body += '{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 3, "ride_id": ' + raw_id + "}]}"
    # When it is posted
    response = client.post("/predict", data=body, content_type="application/json")
    # Then the request is refused, naming the record and the id field, instead of dropping the id from a 200
    assert response.status_code == 422
    (problem,) = error_of(response)["problems"]
    assert problem["index"] == 1 and "id" not in problem
    assert "ride_id" in problem["reason"]


def test_rejections_never_echo_the_record(client):
    secret = "card-4111-1111-1111-1111"
    records = [{**TUTORIAL_RIDE, "trip_distance": secret, "comment": secret, "ride_id": {"nested": secret}}]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 422
    assert secret not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"PULocationID": 10,', "application/json", 400, "invalid_json"),
        ("{'PULocationID': 10}", "application/json", 400, "invalid_json"),
        (b"\xff\xfe{}", "application/json", 400, "invalid_json"),
        ("[" * 50_000 + "]" * 50_000, "application/json", 400, "invalid_json"),
        ("", "application/json", 400, "invalid_json"),
        ("[1, 2]", "application/json", 400, "invalid_body"),
        ('"a string"', "application/json", 400, "invalid_body"),
        ('{"records": {"PULocationID": 1}}', "application/json", 400, "invalid_body"),
        (json.dumps(TUTORIAL_RIDE), "text/plain", 415, "unsupported_media_type"),
        (json.dumps(TUTORIAL_RIDE), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (json.dumps(TUTORIAL_RIDE), None, 415, "unsupported_media_type"),
    ],
    ids=[
        "truncated",
        "single-quotes",
        "not-utf8",
        "nested-too-deep",
        "empty",
        "array",
        "string",
        "records-not-array",
        "text-plain",
        "form",
        "no-content-type",
    ],
)
def test_malformed_bodies_get_a_4xx_naming_the_problem(client, body, content_type, status, code):
    response = client.post("/predict", data=body, content_type=content_type)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code and error["message"]


def test_too_many_records_names_the_limit(make_app):
    client = make_app(max_request_records=5).test_client()
    assert client.post("/predict", json={"records": [TUTORIAL_RIDE] * 5}).status_code == 200
    response = client.post("/predict", json={"records": [TUTORIAL_RIDE] * 6})
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "too_many_records",
        "message": "6 records in one request; the limit is 5",
    }


def test_a_body_over_the_byte_limit_is_refused_before_parsing(make_app):
    # (a chunked body without Content-Length is covered over real HTTP in test_gunicorn.py)
    client = make_app(max_request_bytes=300).test_client()
    body = json.dumps({"records": [TUTORIAL_RIDE] * 10}).encode()
    assert len(body) > 300
    response = client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_the_byte_limit_is_inclusive(make_app):
    body = json.dumps(TUTORIAL_RIDE).encode()
    at_limit = make_app(max_request_bytes=len(body)).test_client()
    one_short = make_app(max_request_bytes=len(body) - 1).test_client()
    assert at_limit.post("/predict", data=body, content_type="application/json").status_code == 200
    assert one_short.post("/predict", data=body, content_type="application/json").status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/predict", 405, "method_not_allowed"),
        ("post", "/health", 405, "method_not_allowed"),
        ("get", "/nowhere", 404, "not_found"),
    ],
)
def test_routing_errors_are_json_too(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    if status == 405:
        assert "Allow" in response.headers


def test_an_unexpected_failure_is_an_opaque_500_logged_with_its_traceback(app, client, monkeypatch, caplog):
    # Given a scoring call that fails in a way nobody anticipated
    def explode(model, records):
        raise RuntimeError("disk /srv/secret/models is gone")

    monkeypatch.setattr(LoadedModel, "score", explode)
    # When a request arrives
    response = client.post("/predict", json=TUTORIAL_RIDE)
    # Then the client learns nothing internal, and the log has the whole story
    assert response.status_code == 500
    assert error_of(response) == {"code": "internal_error", "message": "internal server error"}
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    assert any(record.exc_info and "secret" in str(record.exc_info[1]) for record in caplog.records)


def test_without_a_model_predict_is_503_and_health_still_answers(make_app, tmp_path):
    client = make_app(bundle=None, model_uri=str(tmp_path / "no-such-bundle")).test_client()
    response = client.post("/predict", json=TUTORIAL_RIDE)
    assert response.status_code == 503
    assert error_of(response)["code"] == "model_unavailable"
    assert str(tmp_path) not in response.get_data(as_text=True)
    assert client.get("/model").status_code == 503
    assert client.get("/health").status_code == 200


class BrokenEstimator:
    """Unpickles fine, fails on every prediction."""

    def predict(self, matrix):
        raise ValueError("estimator cannot predict")


def test_a_model_that_cannot_predict_never_becomes_ready(make_app, demo_bundle):
    client = make_app(bundle=replace(demo_bundle, model=BrokenEstimator())).test_client()
    assert client.get("/ready").status_code == 503
    response = client.post("/predict", json=TUTORIAL_RIDE)
    assert (response.status_code, error_of(response)["code"]) == (503, "model_unavailable")
