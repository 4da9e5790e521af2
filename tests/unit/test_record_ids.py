"""Record ids follow one rule in every mode: canonical text, and refusal of what no store could hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.model.features import get_recipe
from scoring.model.record_ids import MAX_ID_LENGTH, canonical_id, canonical_ids
from scoring.model.schema import InputSchema

SCHEMA = InputSchema(fields=get_recipe("ride_pu_do").inputs, id_field="ride_id")
GOOD = {"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1.5}


@pytest.mark.parametrize(("raw", "text"), [(256, "256"), (256.0, "256"), ("256", "256"), (" 7 ", "7"), ("r-9", "r-9")])
def test_the_same_id_has_the_same_text_however_it_was_sent(raw, text):
    assert canonical_id(raw) == (text, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (True, "expected an integer or a string, got a boolean"),
        (float("nan"), "expected an integer or a string, got NaN"),
        (float("inf"), "expected an integer or a string, got infinity"),
        ({"a": 1}, "expected an integer or a string, got an object"),
        ([1], "expected an integer or a string, got an array"),
        ("a\x00b", "contains a control character"),
        ("\ud800", "is not valid Unicode text (a lone surrogate)"),
        ("x" * (MAX_ID_LENGTH + 1), f"is longer than {MAX_ID_LENGTH} characters"),
        (10**MAX_ID_LENGTH, f"is longer than {MAX_ID_LENGTH} characters"),
        (1e300, f"is longer than {MAX_ID_LENGTH} characters"),
    ],
)
def test_ids_no_store_could_hold_are_refused_by_name(raw, reason):
    assert canonical_id(raw) == (None, reason)


def test_a_batch_frame_quarantines_unstorable_ids_row_by_row():
    # Given a Parquet-like frame of text ids, two of which PostgreSQL could not index or COPY
    frame = pd.DataFrame(
        {
            "ride_id": ["ok-1", "bad\x00nul", "y" * 5000, " 7 ", None],
            "PULocationID": [1] * 5,
            "DOLocationID": [2] * 5,
            "trip_distance": [1.0] * 5,
        }
    )
    # When validated as batch input (ids required)
    result = SCHEMA.validate_frame(frame, require_id=True)
    # Then the good rows keep canonical ids and each bad row has its own reason, without echoing the id
    assert result.valid["ride_id"].tolist() == ["ok-1", "7"]
    assert result.rejected.to_dict() == {
        1: "id field 'ride_id': contains a control character",
        2: f"id field 'ride_id': is longer than {MAX_ID_LENGTH} characters",
        4: "id field 'ride_id': is null",
    }


def test_online_ids_that_are_not_ids_are_refused_not_dropped():
    result = SCHEMA.validate_records([{**GOOD, "ride_id": float("nan")}, {**GOOD, "ride_id": False}, {**GOOD}])
    assert result.rejected.to_dict() == {
        0: "id field 'ride_id': expected an integer or a string, got NaN",
        1: "id field 'ride_id': expected an integer or a string, got a boolean",
    }
    assert result.valid.index.tolist() == [2]


def test_a_nan_id_beside_string_ids_is_refused_too():
    # A column of strings with one NaN looks like text with a null to pandas; in JSON the NaN was sent on purpose
    result = SCHEMA.validate_records([{**GOOD, "ride_id": "a"}, {**GOOD, "ride_id": float("nan")}])
    assert result.rejected.to_dict() == {1: "id field 'ride_id': expected an integer or a string, got NaN"}


def test_a_float_column_reads_nan_as_a_missing_id():
    ids, reasons = canonical_ids(pd.Series([1.0, np.nan, 3.5]), nan_is_null=True)
    assert ids.tolist() == ["1", None, "3.5"]
    assert reasons.tolist() == [None, None, None]
