"""Hostile inputs from the red-team review: each test is a probe that once got through.

Duplicate classes by value, an output named like the id or "probabilities", an id field named like a
payload wrapper, two different ids in one payload, an infinite drift threshold, a malformed reference
profile, and text no PostgreSQL column can hold in a logged record.
"""

from __future__ import annotations

import json
import pickle

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression

from scoring.errors import ConfigError, ModelLoadError
from scoring.model.importing import ImportRequest, import_source
from scoring.model.manifest import Manifest, class_key
from scoring.model.reference import ReferenceProfile
from scoring.model.storable import clean_text
from scoring.monitoring.copy_text import inputs_json
from scoring.monitoring.prediction_log import PredictionLog
from scoring.settings import Settings, checked_drift_threshold
from scoring.stream.decode import parse_payload
from tests.support.prediction_log import Outcome

INPUTS = [{"name": "amount", "type": "number", "required": True}, {"name": "country", "type": "string"}]
FEATURES = [{"name": "amount", "kind": "number", "inputs": ["amount"]}]


def _manifest(**changes: object) -> dict:
    raw = {
        "name": "m",
        "version": "1",
        "sha256": "0" * 64,
        "format": "pipeline",
        "inputs": INPUTS,
        "features": FEATURES,
        "id_field": "id",
        "output": "risk",
        "task": "multiclass",
        "classes": [0, 1, 2],
        "returns": "probabilities",
    }
    raw.update(changes)
    return raw


# --- finding 3: classes equal by value -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "classes",
    [[0, 1, 1.0], [1, True, 2], [1, "1", 2], [0.0, 0, 3], [0, float("nan"), 2]],
    ids=["int-and-float", "int-and-bool", "number-and-its-text", "zeros", "nan"],
)
def test_classes_equal_by_value_or_by_their_probability_key_are_refused(classes):
    # Given a manifest whose classes are distinct as JSON text but not as labels or probability keys
    raw = _manifest(classes=classes)
    # When it is read, Then one line refuses it
    with pytest.raises(ModelLoadError, match="distinct class labels"):
        Manifest.from_json(raw, "model.json")


def test_distinct_classes_still_load_and_keep_their_keys():
    manifest = Manifest.from_json(_manifest(classes=[0, 1, "two"]), "model.json")
    assert manifest.classes == (0, 1, "two")
    assert [class_key(c) for c in manifest.classes] == ["0", "1", "two"]


# --- finding 4: an output named like the id or "probabilities" ------------------------------------------------


@pytest.mark.parametrize(
    ("id_field", "output"),
    [("id", "id"), ("ride_id", "ride_id"), (None, "id"), ("id", "probabilities")],
    ids=["id-field", "legacy-id-field", "generic-id", "probabilities"],
)
def test_a_manifest_whose_output_would_be_overwritten_in_the_answer_is_refused(id_field, output):
    # Given an output name the answer also uses for the id or the class probabilities
    raw = _manifest(id_field=id_field, output=output)
    # When it is read, Then one line names the clash
    with pytest.raises(ModelLoadError, match=f"output '{output}'") as caught:
        Manifest.from_json(raw, "model.json")
    assert "\n" not in str(caught.value)


def _pickled_regressor(tmp_path) -> str:
    rows = [{"PU_DO": f"{a}_{b}", "trip_distance": float(a + b)} for a in range(1, 6) for b in range(1, 6)]
    dv = DictVectorizer()
    model = LinearRegression().fit(dv.fit_transform(rows), [r["trip_distance"] for r in rows])
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps((dv, model)))
    return str(path)


@pytest.mark.parametrize("output", ["ride_id", "probabilities"])
def test_import_refuses_an_output_that_collides_with_the_answer(tmp_path, output):
    # Given a model imported with --output equal to its id field or to "probabilities"
    source = _pickled_regressor(tmp_path)
    # When it is imported, Then the import stops with one line and writes no bundle
    with pytest.raises(ConfigError, match=f"output '{output}'"):
        import_source(
            ImportRequest(source, name="m", version="1", features="ride_pu_do", output=output), str(tmp_path / "b")
        )
    assert not (tmp_path / "b" / "model.json").exists()


# --- finding 5: an id field named like a wrapper, and two different ids ---------------------------------------


@pytest.mark.parametrize("id_field", ["record", "ride"])
def test_an_id_field_named_like_a_wrapper_reads_flat_records(id_field):
    # Given a bundle whose id field is "record" (or "ride") and a flat payload carrying it
    text = json.dumps({id_field: "r-1", "amount": 95.0, "country": "US"})
    # When it is parsed, Then it is a flat record with its id, not a wrapper
    payload = parse_payload(text, id_field, frozenset({"amount", "country"}))
    assert payload.error is None
    assert (payload.record, payload.record_id) == ({id_field: "r-1", "amount": 95.0, "country": "US"}, "r-1")


def test_an_id_field_named_record_still_takes_the_ride_wrapper():
    text = json.dumps({"ride": {"amount": 1.0}, "record": "r-2"})
    payload = parse_payload(text, "record", frozenset({"amount"}))
    assert (payload.record, payload.record_id, payload.error) == ({"amount": 1.0, "record": "r-2"}, "r-2", None)


def test_a_payload_with_different_ids_inside_and_beside_its_wrapper_is_refused():
    # Given a wrapped record whose own id differs from the one beside the wrapper
    text = json.dumps({"ride": {"ride_id": "A", "amount": 1.0}, "id": "B"})
    # When it is parsed, Then it fails alone with one line, neither id silently winning
    payload = parse_payload(text, "ride_id", frozenset({"amount"}))
    assert payload.record is None
    assert payload.error is not None and "two different ids" in payload.error and "\n" not in payload.error
    assert "A" not in payload.error.replace("ride_id", "")


def test_the_same_id_inside_and_beside_a_wrapper_is_accepted():
    text = json.dumps({"ride": {"ride_id": 256, "amount": 1.0}, "ride_id": "256"})
    payload = parse_payload(text, "ride_id", frozenset({"amount"}))
    assert payload.error is None and payload.record_id == "256"


# --- finding 6: the drift threshold -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "0", "-1"])
def test_a_drift_threshold_that_is_not_finite_and_positive_is_refused(raw):
    with pytest.raises(ConfigError, match="SCORING_DRIFT_THRESHOLD must be a finite positive number"):
        Settings.from_env({"SCORING_DRIFT_THRESHOLD": raw})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -0.5, True, "0.2"])
def test_the_traffic_dags_threshold_param_goes_through_the_same_rule(value):
    with pytest.raises(ConfigError, match="drift threshold must be a finite positive number"):
        checked_drift_threshold(value)


def test_a_finite_positive_threshold_passes_and_none_means_the_default():
    assert checked_drift_threshold(0.25) == 0.25 and checked_drift_threshold(None) is None
    assert checked_drift_threshold(2) == 2.0


# --- notes: reference.json edges and counts -----------------------------------------------------------------


def _reference(**column: object) -> dict:
    number = {
        "kind": "number",
        "count": 3,
        "missing": 0,
        "mean": 1.0,
        "std": 0.5,
        "min": 0.0,
        "max": 2.0,
        "quantiles": {},
        "edges": [0.0, 1.0],
        "counts": [0, 1, 2],
        "positions": [None, 0.5, 1.5],
    }
    number.update(column)
    return {"version": 1, "rows": 3, "output": "risk", "columns": {"amount": number}}


@pytest.mark.parametrize(
    "column",
    [
        {"edges": [1.0, 0.0]},
        {"edges": [0.0, 0.0]},
        {"edges": [0.0, float("inf")]},
        {"edges": [float("nan"), 1.0]},
        {"counts": [0, -1, 2]},
        {"counts": [0, 1.5, 2]},
        {"counts": [0, 2**63, 2]},
        {"counts": [0, True, 2]},
        {"count": -3},
        {"missing": 2**70},
    ],
    ids=["descending", "repeated", "infinite", "nan", "negative", "fraction", "past-int64", "bool", "count", "missing"],
)
def test_a_reference_with_unsorted_or_non_finite_edges_or_bad_counts_is_refused(column):
    with pytest.raises(ModelLoadError, match="reference profile is malformed"):
        ReferenceProfile.from_json(_reference(**column))


def test_a_text_reference_with_a_negative_count_is_refused():
    raw = {
        "version": 1,
        "rows": 1,
        "output": "risk",
        "columns": {"country": {"kind": "text", "count": 1, "missing": 0, "counts": {"US": -1}}},
    }
    with pytest.raises(ModelLoadError, match="reference profile is malformed"):
        ReferenceProfile.from_json(raw)


def test_a_well_formed_reference_still_loads():
    profile = ReferenceProfile.from_json(_reference())
    assert profile.columns["amount"].counts == (0, 1, 2)


# --- finding 1: text no column can hold, and the declared fields only ----------------------------------------


def test_clean_text_replaces_nul_and_lone_surrogates():
    assert clean_text("a\x00b\ud800c\udfffd") == "a\ufffdb\ufffdc\ufffdd"
    assert clean_text("ok ü 🙂") == "ok ü 🙂"


def test_inputs_json_is_storable_whatever_the_record_holds():
    # Given a record with a lone surrogate and NUL in keys and values, at depth, and a NaN
    record = {"country": "\ud800", "k\x00": ["x\udc00", {"\udfff": float("nan")}], "n": float("inf")}
    # When it becomes the log's JSON
    text = inputs_json(record)
    # Then UTF-8 can encode it, it has no NUL escape, and non-finite numbers are null
    text.encode("utf-8")
    assert "\\u0000" not in text and "\\ud" not in text.lower()
    assert json.loads(text) == {"country": "\ufffd", "k\ufffd": ["x\ufffd", {"\ufffd": None}], "n": None}


def test_a_queued_row_keeps_only_the_declared_fields():
    # Given a log keeping only "amount", and a record carrying a megabyte of extra keys
    log = PredictionLog(lambda: None, "stream", background=False, fields=["amount"])
    record = {"amount": 1.0, "junk": "x" * 1_000_000}
    # When it is recorded
    log.record([Outcome("a", 1.0)], [record], "m", "1")
    # Then the queued entry holds only the declared field's value (bounded memory per row)
    [row] = list(log._queue)
    assert row[4] == [(1.0,)]
