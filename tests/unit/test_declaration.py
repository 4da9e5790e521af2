"""Declarations and the manifest that holds them: round trips, legacy shapes, and one clear line per mistake."""

from __future__ import annotations

import pytest

from scoring.errors import ModelLoadError, UnknownRecipe
from scoring.model.declaration import PRESETS, Declaration, preset
from scoring.model.manifest import Manifest
from scoring.model.schema import FieldSpec, InputSchema

INPUTS = [
    {"name": "amount", "type": "number", "required": True, "minimum": 0},
    {"name": "merchant", "type": "string", "required": True},
    {"name": "country", "type": "string", "required": False, "values": ["DE", "FR"]},
]
FEATURES = [
    {"name": "amount", "kind": "number", "inputs": ["amount"]},
    {"name": "where", "kind": "concat", "inputs": ["merchant", "country"], "separator": "@"},
]
BASE = {"name": "fraud", "version": "3", "sha256": "ab", "format": "dv_tuple", "inputs": INPUTS, "features": FEATURES}
BINARY = {**BASE, "task": "binary", "classes": [0, 1], "positive_class": 1, "id_field": None}


def test_manifest_round_trips_every_new_field():
    # Given a manifest with a declaration, a classifier task, skops trust and a source
    raw = {
        **BINARY,
        "serialization": "skops",
        "skops_trusted_types": ["sklearn.linear_model._logistic.LogisticRegression"],
        "returns": "label",
        "source": {"uri": "models:/fraud@champion", "run_id": "r1", "registered_version": "3", "alias": "champion"},
    }
    manifest = Manifest.from_json(raw, "model.json")
    # When it is written and read again, Then nothing changed
    assert Manifest.from_json(manifest.to_json(), "again") == manifest
    assert manifest.declaration.feature_names() == ["amount", "where"]
    assert [feature.inputs for feature in manifest.declaration.features] == [("amount",), ("merchant", "country")]
    assert manifest.inputs[2].values == ("DE", "FR")
    assert (manifest.id_field, manifest.task, manifest.returns, manifest.positive_class) == (None, "binary", "label", 1)


def test_legacy_manifest_keeps_ride_id_regression_and_the_preset():
    legacy = {**BASE, "inputs": [f.to_dict() for f in PRESETS["ride_pu_do"].inputs], "features": "ride_pu_do"}
    manifest = Manifest.from_json(legacy, "model.json")
    assert manifest.id_field == "ride_id" and manifest.preset == "ride_pu_do"
    assert (manifest.task, manifest.returns, manifest.serialization) == ("regression", "value", "pickle")
    assert manifest.to_json()["features"][0] == {
        "name": "PU_DO",
        "kind": "concat",
        "inputs": ["PULocationID", "DOLocationID"],
        "separator": "_",
    }


def test_manifest_built_by_keyword_with_a_preset_name_expands_it():
    declaration = preset("ride_categorical")
    manifest = Manifest(
        name="m", version="1", sha256="-", format="dv_tuple", features="ride_categorical", inputs=declaration.inputs
    )
    assert manifest.features == declaration.features and manifest.preset == "ride_categorical"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": "nope"}, "unknown feature preset 'nope'; known presets: ride_categorical, ride_pu_do"),
        ({"features": [{"name": "x", "kind": "cubed", "inputs": ["amount"]}]}, "feature 'x' has kind 'cubed'"),
        ({"features": [{"name": "x", "kind": "concat", "inputs": ["amount"]}]}, "reads two or more inputs"),
        ({"features": [{"name": "x", "kind": "number", "inputs": ["ghost"]}]}, r"reads undeclared inputs \['ghost'\]"),
        ({"features": [{"name": "x", "kind": "number", "inputs": ["merchant"]}]}, "is a number but its input"),
        ({"features": [*FEATURES, {"name": "f", "kind": "frame", "inputs": ["amount"]}]}, "must be the only feature"),
        ({"features": [FEATURES[0], FEATURES[0]]}, r"features \['amount'\] are declared more than once"),
        ({"features": []}, "'features' must be a non-empty list"),
        ({"inputs": [{**INPUTS[0], "values": ["1"]}]}, "'values' is allowed only for a string input"),
        ({"id_field": "amount"}, "the id field 'amount' is also declared as an input"),
        ({"id_field": None, "id_required": True}, "'id_required' is true but there is no 'id_field'"),
        ({"task": "ranking"}, "'task' must be one of regression, binary, multiclass"),
        ({"returns": "label"}, "'returns' for a regression model must be one of value"),
        ({"task": "binary", "classes": [0, 1], "positive_class": 2}, "'positive_class' must be one of"),
        ({"task": "binary", "classes": [0, 1, 2], "positive_class": 1}, "exactly two 'classes', not 3"),
        ({"task": "multiclass", "classes": ["a", "a"]}, "two or more distinct class labels"),
        ({"serialization": "joblib"}, "'serialization' must be one of pickle, skops"),
        ({"skops_trusted_types": ["x.Y"]}, "'skops_trusted_types' is for skops artifacts only"),
        ({"source": "mlflow"}, "'source' must be an object or null"),
    ],
)
def test_a_bad_manifest_is_refused_in_one_line_naming_the_problem(change, message):
    with pytest.raises(ModelLoadError, match=message) as refused:
        Manifest.from_json({**BASE, "id_field": None, **change}, "model.json")
    assert str(refused.value).startswith("model.json: ") and "\n" not in str(refused.value)


def test_unknown_preset_is_named_with_the_known_ones():
    with pytest.raises(UnknownRecipe, match="known presets: ride_categorical, ride_pu_do"):
        preset("ride_everything")


def test_declaration_json_round_trip():
    declaration = Declaration.from_json(INPUTS, FEATURES, "here")
    inputs, features = declaration.to_json()
    assert Declaration.from_json(inputs, features, "again") == declaration
    assert features[1]["separator"] == "@" and "separator" not in features[0]


def test_text_outside_the_allowed_values_is_rejected_without_echoing_it():
    # Given a string input with allowed values, and an optional one
    schema = InputSchema(
        fields=(FieldSpec("country", "string", values=("DE", "FR")), FieldSpec("tier", "string", False, values=("a",)))
    )
    secret = "X" * 200
    # When records with values outside them (and a null optional one) are validated
    result = schema.validate_records([{"country": "DE", "tier": None}, {"country": secret}, {"country": "FR"}])
    # Then only the outsider is rejected, naming the field, with no more than a short prefix of the value
    assert result.valid["country"].tolist() == ["DE", "FR"]
    reason = result.rejected[1]
    assert reason.startswith("field 'country': ") and "not one of its 2 allowed values" in reason
    assert secret not in reason and len(reason) < 100
