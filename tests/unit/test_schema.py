"""The one strict validator: what it accepts, what it refuses, and how it says so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scoring.model.declaration import preset
from scoring.model.schema import InputSchema

SCHEMA = InputSchema(fields=preset("ride_pu_do").inputs, id_field="ride_id")
GOOD = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"PULocationID": True}, "field 'PULocationID': expected an integer, got a boolean"),
        ({"PULocationID": 10.7}, "field 'PULocationID': 10.7 is not an integer"),
        ({"trip_distance": "40"}, "field 'trip_distance': expected a number, got a string"),
        ({"trip_distance": None}, "field 'trip_distance': is null or NaN"),
        ({"trip_distance": math.nan}, "field 'trip_distance': is null or NaN"),
        ({"trip_distance": math.inf}, "field 'trip_distance': is not finite"),
        ({"trip_distance": -0.5}, "field 'trip_distance': -0.5 is below the minimum 0"),
        ({"DOLocationID": [50]}, "field 'DOLocationID': expected an integer, got an array"),
    ],
)
def test_json_record_with_a_bad_field_is_rejected_naming_it(change, reason):
    # Given one good record and one with a single bad field
    records = [GOOD, {**GOOD, **change}]
    # When validated
    result = SCHEMA.validate_records(records)
    # Then only the bad one is rejected, with the reason naming the field
    assert list(result.valid.index) == [0]
    assert result.rejected.to_dict() == {1: reason}


def test_missing_field_and_non_object_records_are_rejected_alone():
    records = [GOOD, {"PULocationID": 1, "DOLocationID": 2}, "not a record", {**GOOD, "extra": "ignored"}]
    result = SCHEMA.validate_records(records)
    assert list(result.valid.index) == [0, 3]
    assert result.rejected.to_dict() == {
        1: "missing required field 'trip_distance'",
        2: "record is a string, not an object",
    }


def test_integral_float_is_an_integer_and_values_come_back_typed():
    result = SCHEMA.validate_records([{**GOOD, "PULocationID": 10.0}])
    assert result.rejected_count == 0
    assert result.valid["PULocationID"].dtype == np.int64
    assert result.valid["PULocationID"].tolist() == [10]


def test_every_bad_record_gets_its_own_reason_and_none_echoes_the_record():
    # Given one good record and two bad ones
    result = SCHEMA.validate_records(
        [GOOD, {**GOOD, "PULocationID": True, "ride_id": 9}, {**GOOD, "trip_distance": "x"}]
    )
    # Then each bad record is rejected alone, naming its field, never quoting the record or its other fields
    assert result.rejected.to_dict() == {
        1: "field 'PULocationID': expected an integer, got a boolean",
        2: "field 'trip_distance': expected a number, got a string",
    }
    assert result.valid.index.tolist() == [0]


def test_several_bad_fields_in_one_row_are_all_named():
    result = SCHEMA.validate_records([{"PULocationID": "a", "DOLocationID": False, "trip_distance": 1}])
    assert result.rejected[0] == (
        "field 'PULocationID': expected an integer, got a string; field 'DOLocationID': expected an integer, got a boolean"
    )


def test_typed_frame_is_checked_without_walking_rows():
    # Given a Parquet-like frame with typed columns, a NaN and a negative distance
    frame = pd.DataFrame(
        {
            "ride_id": [1, 2, 3],
            "PULocationID": [1, 2, 3],
            "DOLocationID": [4, 5, 6],
            "trip_distance": [1.0, np.nan, -2.0],
        }
    )
    result = SCHEMA.validate_frame(frame, require_id=True)
    assert result.valid["ride_id"].tolist() == ["1"]
    assert result.rejected.to_dict() == {
        1: "field 'trip_distance': is null or NaN",
        2: "field 'trip_distance': -2 is below the minimum 0",
    }


def test_boolean_column_is_not_a_number():
    frame = pd.DataFrame({"ride_id": [1], "PULocationID": [True], "DOLocationID": [4], "trip_distance": [1.0]})
    result = SCHEMA.validate_frame(frame)
    assert result.rejected.to_dict() == {0: "field 'PULocationID': expected an integer, got a boolean"}


def test_csv_text_is_parsed_and_unparsable_cells_are_named():
    # Given CSV cells, which are text by nature
    frame = pd.DataFrame(
        {
            "ride_id": ["7", "8", "9", ""],
            "PULocationID": ["1", "2", "x1", "4"],
            "DOLocationID": ["4", "5", "6", "7"],
            "trip_distance": ["1.5", "", "2", "3"],
        },
    )
    result = SCHEMA.validate_frame(frame, require_id=True, text_input=True)
    assert result.valid["ride_id"].tolist() == ["7"]
    assert result.valid["trip_distance"].tolist() == [1.5]
    assert result.rejected.to_dict() == {
        1: "field 'trip_distance': is null or NaN",
        2: "field 'PULocationID': 'x1' is not an integer",
        3: "id field 'ride_id': is null",
    }


@pytest.mark.parametrize(
    ("raw", "expected"), [(256, "256"), (256.0, "256"), ("256", "256"), ("2021/01_5", "2021/01_5")]
)
def test_record_ids_are_normalised_to_text(raw, expected):
    result = SCHEMA.validate_records([{**GOOD, "ride_id": raw}])
    assert result.valid["ride_id"].tolist() == [expected]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (10**400, "field 'PULocationID': is not finite"),
        (2**60, "field 'PULocationID': is too large for an integer (it must be below 2**53)"),
        (2**53 + 1, "field 'PULocationID': is too large for an integer (it must be below 2**53)"),
    ],
)
def test_integers_that_a_float_cannot_hold_exactly_are_refused(value, reason):
    result = SCHEMA.validate_records([{**GOOD, "PULocationID": value}])
    assert result.rejected.to_dict() == {0: reason}


def test_a_record_id_does_not_depend_on_its_neighbours():
    # An int column with a null beside it must not turn 2**53 + 1 into a float.
    result = SCHEMA.validate_records([{**GOOD, "ride_id": 2**53 + 1}, {**GOOD, "ride_id": None}])
    assert result.valid["ride_id"].tolist() == [str(2**53 + 1), None]


@pytest.mark.parametrize("field", ["country", "tier"])
def test_a_signalling_decimal_nan_in_a_string_field_is_a_null_on_both_paths(field):
    # Given string fields (one required, one optional) and a Decimal sNaN, which pandas' isna raises on
    from decimal import Decimal

    from scoring.model.schema import FieldSpec

    schema = InputSchema(fields=(FieldSpec("country", "string"), FieldSpec("tier", "string", required=False)))
    record = {"country": "DE", "tier": "gold", field: Decimal("sNaN")}
    # When the columnar validator and the small path check it
    result = schema.validate_records([record])
    _, _, reason = schema.check_record(record)
    # Then both call it null, as they do a quiet NaN: refused when required, accepted as None when optional
    expected = "field 'country': is null" if field == "country" else None
    assert result.rejected.to_dict() == ({0: expected} if expected else {})
    assert reason == expected
