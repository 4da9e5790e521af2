"""POST /predict: the happy paths, and parity with the batch path of the same scoring core."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from scoring.model.predict import Predictor
from tests.conftest import make_rides, predict_valid
from tests.webservice.conftest import TUTORIAL_RIDE


def test_tutorial_payload_gets_exactly_duration_and_model(client, predictor):
    # Given the classic tutorial record, sent as is
    # When it is posted
    response = client.post("/predict", json=TUTORIAL_RIDE)
    # Then the answer has exactly the three documented keys, and the duration is the core's, to the bit
    assert response.status_code == 200
    expected = predict_valid(predictor, [TUTORIAL_RIDE])[0]
    assert response.get_json() == {"duration": expected, "model_name": "ride_duration", "model_version": "1"}
    assert list(response.get_json()) == ["duration", "model_name", "model_version"]


def test_batch_answers_in_request_order_with_ids_when_given(client, predictor):
    records = [
        {**TUTORIAL_RIDE, "ride_id": 256},
        {"PULocationID": 3, "DOLocationID": 7, "trip_distance": 1.5},
        {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 12.25, "ride_id": "r-9"},
    ]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200
    body = response.get_json()
    expected = predict_valid(predictor, records)
    assert body["predictions"] == [
        {"duration": expected[0], "ride_id": 256},
        {"duration": expected[1]},
        {"duration": expected[2], "ride_id": "r-9"},
    ]
    assert (body["model_name"], body["model_version"]) == ("ride_duration", "1")
    assert len(set(expected)) == 3  # distinct answers, so a reordering could not pass unnoticed


def test_online_answers_equal_the_batch_answers_for_the_same_rides(client, predictor):
    # Given rides as the batch job reads them (typed columns) and as a client sends them (JSON records)
    rides = make_rides(300, seed=23)
    batch = predictor.predict(predictor.schema.validate_frame(rides).valid)
    records = [
        {
            "ride_id": int(r.ride_id),
            "PULocationID": int(r.PULocationID),
            "DOLocationID": int(r.DOLocationID),
            "trip_distance": float(r.trip_distance),
        }
        for r in rides.itertuples(index=False)
    ]
    # When the same rides are posted
    online = client.post("/predict", json={"records": records}).get_json()["predictions"]
    # Then every prediction is identical, not merely close
    assert np.array_equal(np.array([p["duration"] for p in online]), batch)
    assert [p["ride_id"] for p in online] == [int(i) for i in rides["ride_id"]]


def test_extra_fields_are_ignored(client):
    plain = client.post("/predict", json=TUTORIAL_RIDE).get_json()
    decorated = client.post("/predict", json={**TUTORIAL_RIDE, "VendorID": 2, "note": "x" * 50}).get_json()
    assert decorated == plain


def test_empty_batch_gets_an_empty_list(client):
    response = client.post("/predict", json={"records": []})
    assert response.status_code == 200
    assert response.get_json()["predictions"] == []


def test_json_flavoured_content_types_are_accepted(client):
    response = client.post(
        "/predict",
        data='{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 3}',
        content_type="application/vnd.api+json; charset=utf-8",
    )
    assert response.status_code == 200


@pytest.mark.parametrize(("output", "id_field"), [("minutes", "trip_id"), ("eta", "id")])
def test_output_and_id_names_come_from_the_manifest(make_app, demo_bundle, output, id_field):
    # Given a bundle whose manifest names its output and id differently
    manifest = replace(demo_bundle.manifest, output=output, id_field=id_field, version="7")
    client = make_app(bundle=replace(demo_bundle, manifest=manifest)).test_client()
    # When single and batch requests are made
    single = client.post("/predict", json=TUTORIAL_RIDE).get_json()
    batch = client.post("/predict", json={"records": [{**TUTORIAL_RIDE, id_field: 5}]}).get_json()
    # Then the manifest's names are used throughout
    assert list(single) == [output, "model_name", "model_version"] and single["model_version"] == "7"
    assert batch["predictions"] == [{output: single[output], id_field: 5}]


def test_predictions_use_the_bundle_given_to_the_factory(make_app, demo_bundle):
    predictor = Predictor(demo_bundle)
    client = make_app().test_client()
    ride = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 0.0}
    answer = client.post("/predict", json=ride).get_json()["duration"]
    assert answer == predict_valid(predictor, [ride])[0]


@pytest.mark.parametrize(
    "big_id",
    [-(2**63) - 1, 2**64, 10**20, -(10**30), int("9" * 128)],
    ids=["below int64", "past uint64", "1e20", "-1e30", "128 digits"],
)
def test_an_integer_id_past_64_bits_is_echoed_exactly_and_is_the_same_id_as_elsewhere(client, big_id):
    from scoring.model.record_ids import canonical_id

    # Given a batch whose id is an integer orjson would read as a float (another id) and could not write back
    body = (
        '{"records": [' + f'{{"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1.5, "ride_id": {big_id}}}' + "]}"
    )
    # When it is scored
    response = client.post("/predict", data=body, content_type="application/json")
    # Then it is answered (no 500), and the id comes back digit for digit, as the client sent it
    assert response.status_code == 200, response.get_data(as_text=True)
    assert json.loads(response.get_data(as_text=True))["predictions"][0]["ride_id"] == big_id
    # And it is the id batch and stream name it by (their readers are the standard library's)
    assert canonical_id(big_id) == (str(big_id), None)
    # And the body is written as every other answer is: compact
    assert f'"ride_id":{big_id}' in response.get_data(as_text=True) and ", " not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "length", "holds"),
    [
        (b"1234567890123456789", 19, True),
        (b"123456789012345678", 19, False),
        (b'{"a": 12345678901234567, "b": 90}', 19, False),
        (b'{"a": -1234567890123456789}', 19, True),
        (b"1.23456789012345678e5", 19, False),
        (b"\xd9\xa1" * 30, 19, False),
        ("١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩".encode(), 19, False),
        (b"7" * 309, 309, True),
        (b"7" * 308 + b" 7", 309, False),
    ],
)
def test_digit_runs_are_ascii_digits_in_a_row(body, length, holds):
    from webservice.jsonio import has_digit_run

    assert has_digit_run(body, length) is holds
