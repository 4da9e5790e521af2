"""Inferring a declaration from a fitted model: vocabularies, --derive expressions, sample files, frames."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from scoring.errors import ConfigError, ModelLoadError
from scoring.model.declaration import FeatureSpec
from scoring.model.inference import ModelFeatures, infer_declaration, parse_derive, sample_types


def _vocabulary(*rows: dict[str, object]) -> ModelFeatures:
    return ModelFeatures(vectorizer=DictVectorizer().fit(list(rows)), frame_columns=None)


def _types(declaration) -> dict[str, str]:
    return {spec.name: spec.type for spec in declaration.inputs}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('PU_DO=PULocationID+"_"+DOLocationID', FeatureSpec("PU_DO", "concat", ("PULocationID", "DOLocationID"), "_")),
        ("route = a + '->' + b", FeatureSpec("route", "concat", ("a", "b"), "->")),
        ('k=a+"+"+b+"+"+c', FeatureSpec("k", "concat", ("a", "b", "c"), "+")),
        ("ab=a+b", FeatureSpec("ab", "concat", ("a", "b"), "")),
    ],
)
def test_a_derive_expression_is_a_concat_feature(text, expected):
    assert parse_derive(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PU_DO", "must look like NAME="),
        ("PU_DO=PULocationID", "join two or more inputs"),
        ('PU_DO=PULocationID+"_"', "join two or more inputs"),
        ('PU_DO="_"+a+"_"+b', "join two or more inputs"),
        ('PU_DO=a+"_"+b+"-"+c', "same separator"),
        ('PU_DO=a+"_"+a', "named twice"),
        ("PU_DO=a+b()", "input name or a quoted separator"),
    ],
)
def test_a_malformed_derive_expression_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_derive(text)


def test_vocabulary_names_become_categoricals_and_bare_names_numbers():
    # Given a vectorizer fitted on an integer-valued id, a text merchant, a code with leading zeros, and a number
    model = _vocabulary(
        {"PULocationID": "132", "merchant": "acme", "zip": "01234", "amount": 3.5},
        {"PULocationID": "7", "merchant": "globex", "zip": "10115", "amount": 1.0},
    )
    # When its declaration is inferred
    declaration = infer_declaration(model)
    # Then all-int text is an integer input (TLC ids), other text a string, a bare name a number
    assert _types(declaration) == {"PULocationID": "integer", "merchant": "string", "zip": "string", "amount": "number"}
    assert {f.name: f.kind for f in declaration.features} == {
        "PULocationID": "categorical",
        "merchant": "categorical",
        "zip": "categorical",
        "amount": "number",
    }
    assert all(spec.required for spec in declaration.inputs)


def test_a_derived_concat_types_each_input_from_its_part_of_the_values():
    # Given PU_DO values joining an int and a text code
    model = _vocabulary({"PU_DO": "132_A", "trip_distance": 1.0}, {"PU_DO": "7_B", "trip_distance": 2.0})
    # When it is derived from two inputs
    declaration = infer_declaration(model, derived=[parse_derive('PU_DO=PULocationID+"_"+zone')])
    # Then the parts type the inputs, and PU_DO itself is not an input
    assert _types(declaration) == {"PULocationID": "integer", "zone": "string", "trip_distance": "number"}
    assert declaration.features[0] == FeatureSpec("PU_DO", "concat", ("PULocationID", "zone"), "_")


@pytest.mark.parametrize(
    ("derive", "message"),
    [
        ('PU_DO=a+"-"+b', "do not split into 2 parts by '-'"),
        ('PU_DO=a+"_"+b+"_"+c', "do not split into 3 parts"),
        ('DO_PU=a+"_"+b', "the model has no feature 'DO_PU'"),
        ('trip_distance=a+"_"+b', "is a number, not joined text"),
        ('PU_DO=trip_distance+"_"+b', "read as integer by one feature and as number"),
    ],
)
def test_a_derive_the_vocabulary_contradicts_is_refused(derive, message):
    model = _vocabulary({"PU_DO": "1_2", "trip_distance": 1.0})
    with pytest.raises(ConfigError, match=message):
        infer_declaration(model, derived=[parse_derive(derive)])


def test_a_sample_types_the_inputs_and_must_have_the_derived_inputs(tmp_path):
    # Given a sample whose location ids are floats (older TLC files) and an extra column the model never uses
    sample = tmp_path / "sample.parquet"
    pd.DataFrame({"PULocationID": [1.0], "DOLocationID": [2.0], "trip_distance": [3], "fare": [9.5]}).to_parquet(sample)
    model = _vocabulary({"PU_DO": "1_2", "trip_distance": 1.0})
    types = sample_types(str(sample))
    # When inferred with PU_DO derived
    declaration = infer_declaration(
        model, derived=[parse_derive('PU_DO=PULocationID+"_"+DOLocationID')], column_types=types, types_from="s"
    )
    # Then whole-number ids stay integers (the model saw "1", not "1.0"), the sample types the rest,
    # and the unused column is not declared
    assert _types(declaration) == {"PULocationID": "integer", "DOLocationID": "integer", "trip_distance": "integer"}
    # And a derive reading a column the sample lacks is refused by name
    with pytest.raises(ConfigError, match="--derive PU_DO reads input 'PULocatonID', which s has no column"):
        infer_declaration(
            model, derived=[parse_derive('PU_DO=PULocatonID+"_"+DOLocationID')], column_types=types, types_from="s"
        )


def test_a_joined_feature_missing_from_the_sample_asks_for_derive():
    model = _vocabulary({"PU_DO": "1_2", "trip_distance": 1.0})
    with pytest.raises(ConfigError, match="'PU_DO' is not a column of --sample x; .* give it with --derive"):
        infer_declaration(model, column_types={"trip_distance": "number"}, types_from="--sample x")


def _frame_model() -> ModelFeatures:
    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0], "merchant": ["a", "b", "a"], "count": [1, 2, 3]})
    pipeline = make_pipeline(
        ColumnTransformer([("m", OneHotEncoder(), ["merchant"])], remainder="passthrough"), LinearRegression()
    ).fit(frame, [1.0, 2.0, 3.0])
    return ModelFeatures(vectorizer=None, frame_columns=tuple(pipeline.feature_names_in_))


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_a_frame_pipeline_is_typed_from_a_parquet_or_csv_sample(tmp_path, suffix):
    # Given a sample with the model's columns in another order, plus one the model never reads
    sample = tmp_path / f"sample.{suffix}"
    frame = pd.DataFrame({"count": [4], "other": ["x"], "merchant": ["b"], "amount": [2.5]})
    frame.to_parquet(sample) if suffix == "parquet" else frame.to_csv(sample, index=False)
    # When inferred
    declaration = infer_declaration(_frame_model(), column_types=sample_types(str(sample)), types_from="s")
    # Then one frame feature of exactly the model's columns in its order, typed int/float/text
    assert [(s.name, s.type) for s in declaration.inputs] == [
        ("amount", "number"),
        ("merchant", "string"),
        ("count", "integer"),
    ]
    assert declaration.features == (FeatureSpec("frame", "frame", ("amount", "merchant", "count")),)


def test_a_frame_pipeline_without_sample_or_signature_asks_for_a_sample():
    with pytest.raises(ConfigError, match="give --sample FILE"):
        infer_declaration(_frame_model())


def test_a_frame_pipeline_whose_sample_lacks_a_column_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"reads columns \['count'\] that s does not have"):
        infer_declaration(_frame_model(), column_types={"amount": "number", "merchant": "string"}, types_from="s")


def test_derive_is_refused_for_a_frame_pipeline():
    with pytest.raises(ConfigError, match="--derive is for a model with a DictVectorizer"):
        infer_declaration(_frame_model(), derived=[parse_derive("x=a+b")], column_types={})


def test_a_feature_that_is_both_number_and_text_cannot_be_inferred():
    model = _vocabulary({"x": 1.0}, {"x": "a"})
    with pytest.raises(ModelLoadError, match="'x' is both a number and text"):
        infer_declaration(model)


def test_an_unreadable_sample_is_one_clear_error(tmp_path):
    (tmp_path / "s.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="cannot read it as Parquet or CSV"):
        sample_types(str(tmp_path / "s.parquet"))
    with pytest.raises(ConfigError, match="no such file"):
        sample_types(str(tmp_path / "missing.csv"))
