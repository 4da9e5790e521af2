"""validate_records accounts for every record, whatever shape its values take.

Values where numpy and pandas change length or shape (arrays nested in arrays, Series, 2-d arrays, dicts,
tuples), values pandas treats oddly (pd.NA, NaT, NaN of any bits, Decimal NaNs, np.bool_, huge integers,
bytes), records of mixed shape and records that are not objects: each is either valid or rejected with one
reason, and no exception escapes the validator.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.demo.training import train_demo_bundle
from scoring.model.bundle import load_bundle
from scoring.model.schema import FieldSpec, InputSchema
from scoring.model.trust import BundleTrust

# A string schema with allowed values, an optional string, and an id field.
TEXT_SCHEMA = InputSchema(
    fields=(
        FieldSpec("country", "string", values=("DE", "FR", "1", "")),
        FieldSpec("tier", "string", required=False),
        FieldSpec("amount", "number", required=False, minimum=0.0),
    ),
    id_field="rid",
)

# Every field optional, so an empty record is valid and rejections fall wherever the hostile values are.
OPTIONAL_SCHEMA = InputSchema(
    fields=(FieldSpec("in0", "integer", required=False), FieldSpec("in1", "integer", required=False)), id_field="rid"
)


def _nan_with_bits(payload: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000000 | (payload & 0xFFFFFFFFFFFFF or 1)))[0]


ODD_SCALARS = st.one_of(
    st.sampled_from(
        [
            pd.NA,
            pd.NaT,
            np.nan,
            -math.nan,
            np.float32("nan"),
            np.bool_(True),
            np.bool_(False),
            np.int64(7),
            np.float64(2.5),
            Decimal("1.5"),
            Decimal("NaN"),
            Decimal("-sNaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            10**400,
            -(10**400),
            2**53 + 1,
            b"DE",
            bytearray(b"x"),
            complex(1, 2),
            "\ud800",
            "\x00",
            " 7 ",
            "DE",
            "1",
            "",
            "x" * 200,
            np.str_("DE"),
        ]
    ),
    st.integers(0, 2**52).map(_nan_with_bits),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
LEAVES = st.one_of(JSON_SCALARS, ODD_SCALARS)


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
        st.lists(st.integers(-5, 5), max_size=4).map(np.array),
        st.lists(st.lists(st.integers(-5, 5), min_size=2, max_size=2), max_size=3).map(np.array),
        st.lists(st.floats(allow_nan=True), max_size=4).map(pd.Series),
        st.just(np.array(3)),
        st.just(np.array([], dtype=object)),
    )


# Scalars drawn as often as containers: st.recursive alone mostly draws containers.
VALUES = st.one_of(JSON_SCALARS, ODD_SCALARS, st.recursive(LEAVES, _containers, max_leaves=8))
# Non-string keys, and keys that read as a field's name only once turned into text.
ODD_KEYS = st.sampled_from([1, 1.0, True, None, (1, 2), b"country", "PULocationID ", "Country"])


def records_for(schema: InputSchema) -> st.SearchStrategy:
    """Lists of records of mixed shape: some keys present, some not, some values hostile, some not objects."""
    names = [*schema.field_names, *([schema.id_field] if schema.id_field else [])]
    keys = st.one_of(st.sampled_from(names), ODD_KEYS, st.text(max_size=3))
    record = st.dictionaries(keys, VALUES, max_size=len(names) + 2)
    # Records sharing one value in one field: the shape where an array per row could nest into a 2-d column.
    shared = st.tuples(st.sampled_from(names), VALUES, st.integers(1, 5)).map(lambda t: [{t[0]: t[1]}] * t[2])
    not_object = VALUES.filter(lambda v: not isinstance(v, dict))
    items = st.lists(st.integers(0, 5).flatmap(lambda roll: not_object if roll == 0 else record), max_size=8)
    return st.one_of(items, st.tuples(items, shared, items).map(lambda t: t[0] + t[1] + t[2]))


@pytest.fixture(scope="module")
def demo_schema(tmp_path_factory: pytest.TempPathFactory) -> InputSchema:
    directory: Path = tmp_path_factory.mktemp("shapes") / "bundle"
    train_demo_bundle(str(directory), rows=2_000)
    return load_bundle(str(directory), BundleTrust.of_bundle(str(directory))).schema


def assert_every_record_accounted_for(schema: InputSchema, records: list[object]) -> None:
    result = schema.validate_records(records)
    valid = list(result.valid.index)
    rejected = list(result.rejected.index)
    assert len(valid) + len(rejected) == len(records)
    assert sorted(valid + rejected) == list(range(len(records)))
    assert all(isinstance(reason, str) and reason for reason in result.rejected)
    # And the small path (check_record) refuses the same records with the same reasons
    small = {i: schema.check_record(record)[2] for i, record in enumerate(records)}
    assert {i: reason for i, reason in small.items() if reason is not None} == result.rejected.to_dict()
    wanted = [*schema.field_names, *([schema.id_field] if schema.id_field else [])]
    assert list(result.valid.columns) == list(dict.fromkeys(wanted))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_demo_schema_accounts_for_every_hostile_record(demo_schema, data):
    # Given records of mixed shape with hostile values of every kind, for the demo bundle's schema
    records = data.draw(records_for(demo_schema))
    # When validated column by column, Then each record is valid or rejected, exactly once
    assert_every_record_accounted_for(demo_schema, records)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records=records_for(TEXT_SCHEMA))
def test_text_schema_accounts_for_every_hostile_record(records):
    # Given records for string inputs with allowed values, holding hostile values of every kind
    # When validated, Then each record is valid or rejected, exactly once
    assert_every_record_accounted_for(TEXT_SCHEMA, records)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records=records_for(OPTIONAL_SCHEMA))
def test_optional_schema_accounts_for_every_hostile_record(records):
    # Given optional fields only: valid and rejected records interleave in any pattern
    # When validated, Then each record is valid or rejected, exactly once
    assert_every_record_accounted_for(OPTIONAL_SCHEMA, records)


def test_non_objects_between_evenly_spaced_rejections_are_each_rejected_once():
    # Given rejected records at 0 and 4 (pandas keeps that index as RangeIndex(0, 8, 4)) and non-objects at 2 and 3:
    # the shape the small-path property test once failed on with "Length of values (3) does not match length of
    # index (4)", when the non-objects' reasons were appended to the rejected Series by label
    records = [{"in0": False}, {}, [], [], {"in1": False}]
    # When validated
    result = OPTIONAL_SCHEMA.validate_records(records)
    # Then the empty record alone is valid, and each other record has its own reason, in order
    assert list(result.valid.index) == [1]
    assert result.rejected.to_dict() == {
        0: "field 'in0': expected an integer, got a boolean",
        2: "record is an array, not an object",
        3: "record is an array, not an object",
        4: "field 'in1': expected an integer, got a boolean",
    }
    assert result.rejected.dtype == object
