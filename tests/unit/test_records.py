"""score_records: the online/streaming entry into the core."""

from __future__ import annotations

import pytest

from scoring.model.records import score_records

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.5}


def test_each_record_gets_its_own_outcome_in_order(predictor):
    records = [{**RIDE, "ride_id": 256}, {**RIDE, "trip_distance": True, "ride_id": "bad-1"}, "junk", RIDE]
    outcomes = score_records(predictor, records)
    assert [o.position for o in outcomes] == [0, 1, 2, 3]
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[0].record_id == "256" and outcomes[1].record_id == "bad-1" and outcomes[3].record_id is None
    assert outcomes[1].error == "field 'trip_distance': expected a number, got a boolean"
    expected = predictor.predict(predictor.schema.require_valid([RIDE]))[0]
    assert outcomes[0].prediction == pytest.approx(expected) and outcomes[3].prediction == outcomes[0].prediction


def test_no_records_no_outcomes(predictor):
    assert score_records(predictor, []) == []


def test_a_prediction_that_overflows_is_an_error_not_infinity(predictor):
    outcomes = score_records(predictor, [RIDE, {**RIDE, "trip_distance": 1e308}])
    assert outcomes[0].ok
    assert not outcomes[1].ok and "not finite" in outcomes[1].error
