"""score_records: the online/streaming entry into the core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.model.predict import NON_FINITE_PREDICTION, finite_mask, split_finite
from scoring.model.records import RecordOutcome, outcomes_of, score_records
from scoring.model.small import Scored
from tests.conftest import predict_valid

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.5}


def test_each_record_gets_its_own_outcome_in_order(predictor):
    records = [{**RIDE, "ride_id": 256}, {**RIDE, "trip_distance": True, "ride_id": "bad-1"}, "junk", RIDE]
    outcomes = score_records(predictor, records)
    assert [o.position for o in outcomes] == [0, 1, 2, 3]
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[0].record_id == "256" and outcomes[1].record_id == "bad-1" and outcomes[3].record_id is None
    assert outcomes[1].error == "field 'trip_distance': expected a number, got a boolean"
    expected = predict_valid(predictor, [RIDE])[0]
    assert outcomes[0].prediction == pytest.approx(expected) and outcomes[3].prediction == outcomes[0].prediction


def test_no_records_no_outcomes(predictor):
    assert score_records(predictor, []) == []


def test_a_prediction_that_overflows_is_an_error_not_infinity(predictor):
    outcomes = score_records(predictor, [RIDE, {**RIDE, "trip_distance": 1e308}])
    assert outcomes[0].ok
    assert not outcomes[1].ok and "not finite" in outcomes[1].error


@pytest.mark.parametrize("sent", [256, 256.0, "256", " 256 "])
def test_a_rejected_record_is_named_by_the_same_canonical_id_as_a_scored_one(predictor, sent):
    # Given the same id sent in each form, once on a good ride and once on a bad one
    good, bad = score_records(predictor, [{**RIDE, "ride_id": sent}, {**RIDE, "trip_distance": -1, "ride_id": sent}])
    # Then both outcomes carry the id's canonical text, whatever form it came in
    assert good.ok and not bad.ok
    assert good.record_id == bad.record_id == "256"


def test_split_finite_moves_overflowed_rows_to_the_rejects_in_row_order():
    # Given three validated rows, the middle one predicted as infinity, and an earlier rejection
    valid = pd.DataFrame({"x": [1, 2, 3]}, index=[0, 2, 3])
    rejected = pd.Series(["bad input"], index=[1], dtype=object)
    # When the finite ones are kept
    kept, values, reasons = split_finite(valid, np.array([1.5, np.inf, 2.5]), rejected)
    # Then the overflowed row joins the rejects with the one reason, in input order
    assert kept.index.tolist() == [0, 3] and values.tolist() == [1.5, 2.5]
    assert reasons.to_dict() == {1: "bad input", 2: NON_FINITE_PREDICTION}


@pytest.mark.parametrize("as_array", [False, True], ids=["python floats", "numpy array"])
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.5, 2.5], None),
        ([], None),
        ([1e308, 1e308], None),  # their sum overflows, yet every one is finite
        ([1.5, np.inf, -np.inf], [True, False, False]),
        ([np.inf, -np.inf], [False, False]),  # their sum is NaN
        ([np.nan, 2.0], [False, True]),
    ],
)
def test_finite_mask_is_none_when_all_are_finite_else_flags_each_non_finite_one(values, expected, as_array):
    # Given predictions as the small path (Python floats) or the columnar path (an array) hands them over
    given = np.array(values, dtype=float) if as_array else list(values)
    # When the one rule is asked which may be answered
    mask = finite_mask(given)
    # Then there is no mask when all may, else one flag per prediction
    assert (None if mask is None else mask.tolist()) == expected


def test_outcomes_of_refuses_each_non_finite_prediction_of_a_list_as_an_overflow(predictor):
    # Given what the small path scored for three rides: one value overflowed to infinity, one to NaN
    scored = Scored([0, 1, 2], ["a", "b", "c"], [1.5, np.inf, np.nan], None, {})
    # When the outcomes are made
    outcomes = outcomes_of(predictor, [RIDE, RIDE, RIDE], scored)
    # Then only the finite one is scored; the others carry the overflow reason, as batch's rejects do
    assert [o.prediction for o in outcomes] == [1.5, None, None]
    assert [o.error for o in outcomes] == [None, NON_FINITE_PREDICTION, NON_FINITE_PREDICTION]


def test_a_regressor_answers_its_value_under_the_output_name(predictor):
    # Given a ride scored by the demo regressor
    outcome = score_records(predictor, [RIDE])[0]
    # Then its answer is the prediction under the output name, with no label and no probabilities
    assert outcome.label is None and outcome.probabilities is None
    assert outcome.answer("duration") == {"duration": outcome.prediction}


def test_an_answer_prefers_the_label_and_adds_probabilities_when_there_are_some():
    outcome = RecordOutcome(0, "a", prediction=1.0, label="high", probabilities={"high": 0.75, "low": 0.25})
    assert outcome.answer("risk") == {"risk": "high", "probabilities": {"high": 0.75, "low": 0.25}}
