"""Any declaration through the columnar fast path predicts exactly what scikit-learn does on the classic per-row dicts.

The reference is written here from the contract, without project code: per row, a dict with a categorical
feature's value as text (str(int), the string, str(float)), a number feature's float, a concat's texts
joined by its separator, and no entry for a text feature whose input is null.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeRegressor

from scoring.model.bundle import ModelBundle
from scoring.model.declaration import Declaration, FeatureSpec
from scoring.model.features import build_features
from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.schema import FieldSpec
from scoring.model.vectorize import transform_columns

# Values chosen to collide when printed carelessly: separators inside strings, -0.0 and 0.0, 1 and 1.0.
INTEGERS = st.sampled_from([0, 1, 2, 7, 12, 23, 132, -5, 2**40])
STRINGS = st.sampled_from(["", "a", "a_b", "b", "_", "1", "DE", "x-y", "ü", "a|b", "None"])
NUMBERS = st.sampled_from([0.0, -0.0, 1.0, 1.5, 2.25, 1e-300, 1e16, -3.5, 0.1])
VALUES = {"integer": INTEGERS, "string": STRINGS, "number": NUMBERS}


def text(value: object) -> str:
    """A value as the classic per-row dict writes it into a text feature."""
    return str(value)


def reference_dicts(declaration: Declaration, records: list[dict]) -> list[dict]:
    """The classic per-row dicts for these records, written from the contract."""
    rows = []
    for record in records:
        row: dict[str, object] = {}
        for feature in declaration.features:
            values = [record.get(name) for name in feature.inputs]
            if feature.kind == "number":
                row[feature.name] = math.nan if values[0] is None else float(values[0])
            elif all(v is not None for v in values):
                row[feature.name] = feature.separator.join(text(v) for v in values)
        rows.append(row)
    return rows


@st.composite
def declarations(draw) -> Declaration:
    """Two to four inputs of random types, some optional, and random features over them."""
    count = draw(st.integers(min_value=2, max_value=4))
    inputs = tuple(
        FieldSpec(f"in{i}", draw(st.sampled_from(["integer", "string", "number"])), required=draw(st.booleans()))
        for i in range(count)
    )
    features: list[FeatureSpec] = []
    for spec in inputs:
        kinds = ["categorical", "number", None] if spec.type != "string" else ["categorical", None]
        kind = draw(st.sampled_from(kinds))
        if kind is not None:
            features.append(FeatureSpec(f"f_{spec.name}", kind, (spec.name,)))
    for position in range(draw(st.integers(min_value=0, max_value=2))):
        names = draw(st.lists(st.sampled_from([s.name for s in inputs]), min_size=2, max_size=3, unique=True))
        separator = draw(st.sampled_from(["_", "-", "|", "", "=", "::"]))
        features.append(FeatureSpec(f"cat{position}", "concat", tuple(names), separator))
    if not features:
        features.append(FeatureSpec("only", "categorical", (inputs[0].name,)))
    return Declaration(inputs=inputs, features=tuple(features))


def draw_records(data: st.DataObject, declaration: Declaration, size: int, nulls: bool = True) -> list[dict]:
    records = []
    for _ in range(size):
        record = {}
        for spec in declaration.inputs:
            value = data.draw(VALUES[spec.type])
            if nulls and not spec.required and data.draw(st.integers(0, 4)) == 0:
                value = None
            record[spec.name] = value
        records.append(record)
    return records


def predictor_for(declaration: Declaration, model, fmt: str, vectorizer=None) -> Predictor:
    manifest = Manifest(
        name="m",
        version="1",
        sha256="-",
        format=fmt,
        features=declaration.features,
        inputs=declaration.inputs,
        id_field=None,
    )
    return Predictor(ModelBundle(manifest=manifest, model=model, vectorizer=vectorizer, uri="memory"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declaration=declarations(), data=st.data())
def test_fast_path_equals_dv_transform_and_pipeline_predict_for_any_declaration(declaration, data):
    # Given a model fitted on the classic dicts of some records
    training = draw_records(data, declaration, data.draw(st.integers(min_value=1, max_value=30)), nulls=False)
    train_dicts = reference_dicts(declaration, training)
    target = np.random.default_rng(len(training)).normal(size=len(training))
    dv = DictVectorizer().fit(train_dicts)
    estimator = LinearRegression().fit(dv.transform(train_dicts), target) if dv.vocabulary_ else None
    # And other records, with values the model never saw (and nulls in optional inputs)
    records = draw_records(data, declaration, data.draw(st.integers(min_value=1, max_value=40)))
    dicts = reference_dicts(declaration, records)
    predictor = predictor_for(declaration, estimator, "dv_tuple", dv)
    valid = predictor.schema.validate_records(records).valid
    assert len(valid) == len(records)
    # When the fast path builds the matrix, Then it equals dv.transform of the classic dicts, entry for entry
    fast = transform_columns(dv, build_features(declaration, valid))
    classic = dv.transform(dicts)
    assert fast.shape == classic.shape
    # (the same layout, too: the order of a row's entries decides the last bit of a linear model's sum)
    assert np.array_equal(fast.indptr, classic.indptr) and np.array_equal(fast.indices, classic.indices)
    assert np.array_equal(fast.data, classic.data, equal_nan=True)
    if estimator is None or np.isnan(classic.data).any():
        return  # nothing to predict with, or a null number, which these models refuse on either path
    # And the predictions equal the estimator's on dv.transform, bit for bit
    assert np.array_equal(predictor.predict(valid), estimator.predict(classic))
    # And a Pipeline with the DictVectorizer in front predicts what pipeline.predict(dicts) does
    pipeline = make_pipeline(DictVectorizer().fit(train_dicts), DecisionTreeRegressor(random_state=0))
    pipeline[-1].fit(pipeline[0].transform(train_dicts), target)
    as_pipeline = predictor_for(declaration, pipeline, "pipeline")
    assert np.array_equal(as_pipeline.predict(valid), pipeline.predict(dicts))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), order=st.permutations(["amount", "merchant", "age"]))
def test_frame_feature_gives_a_column_transformer_pipeline_what_it_gets_from_a_dataframe(data, order):
    # Given a ColumnTransformer pipeline trained on a DataFrame of three inputs
    inputs = (
        FieldSpec("amount", "number", minimum=0),
        FieldSpec("merchant", "string"),
        FieldSpec("age", "integer"),
    )
    declaration = Declaration(inputs=inputs, features=(FeatureSpec("frame", "frame", tuple(order)),))
    draw = {"amount": st.floats(0, 1e4), "merchant": STRINGS, "age": st.integers(18, 99)}
    training = pd.DataFrame(
        [{name: data.draw(draw[name]) for name in order} for _ in range(data.draw(st.integers(3, 20)))]
    )
    encoder = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), ["merchant"])], remainder="passthrough"
    )
    pipeline = make_pipeline(encoder, LinearRegression()).fit(training, np.arange(len(training), dtype=float))
    # When records (some with merchants it never saw) are predicted through the frame feature
    records = [{name: data.draw(draw[name]) for name in order} for _ in range(data.draw(st.integers(1, 20)))]
    predictor = predictor_for(declaration, pipeline, "pipeline")
    valid = predictor.schema.validate_records(records).valid
    # Then the predictions equal the pipeline's on a DataFrame of those records
    assert np.array_equal(predictor.predict(valid), pipeline.predict(pd.DataFrame(records)))


def test_concat_of_texts_that_print_alike_is_one_feature():
    # Given a concat whose parts contain the separator, so that ("a_b", "c") and ("a", "b_c") print alike
    inputs = (FieldSpec("x", "string"), FieldSpec("y", "string"))
    declaration = Declaration(inputs=inputs, features=(FeatureSpec("xy", "concat", ("x", "y")),))
    frame = pd.DataFrame({"x": ["a_b", "a", "a"], "y": ["c", "b_c", "c"]}, dtype=object)
    # When its features are built, Then both rows carry the one text "a_b_c", the third its own
    features = build_features(declaration, frame)
    assert features["xy"].astype(str).tolist() == ["a_b_c", "a_b_c", "a_c"]
    assert list(features["xy"].cat.categories) == ["a_b_c", "a_c"]


def test_negative_zero_and_zero_are_different_texts_as_the_per_row_dict_writes_them():
    inputs = (FieldSpec("v", "number"),)
    declaration = Declaration(inputs=inputs, features=(FeatureSpec("v", "categorical", ("v",)),))
    features = build_features(declaration, pd.DataFrame({"v": [0.0, -0.0, 1.0]}))
    assert features["v"].astype(str).tolist() == ["0.0", "-0.0", "1.0"]
