"""The small-request path gives what the columnar path gives: the same valid rows, the same reasons, the same bits.

Over random declarations (categorical, number and concat features over integer, number and string inputs,
with bounds and allowed values), random models (linear regressors evaluated directly, a tree and
classifiers through scikit-learn with its checks skipped), and random records that mix plausible values
with hostile ones: booleans, nulls, NaN, infinities, huge integers, fractions for integers, wrong types,
missing keys, lone surrogates, records that are not objects, and ids no table could hold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from scoring.model.bundle import ModelBundle
from scoring.model.declaration import PRESETS, Declaration
from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.records import RecordOutcome, outcomes_of, score_columnar, score_records
from scoring.model.schema import FieldSpec
from scoring.model.small import SMALL_PATH_MAX_RECORDS, SmallPath
from tests.unit.test_declaration_fast_path import VALUES, declarations, reference_dicts

ID_FIELD = "rid"
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.5, 2.0**53, 2**53, 2**53 + 1, 10**400, -(10**30)]),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["\ud800", "\x00", " 7 ", "", "x" * 200, "DE", "1"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
MODELS = ["linear", "ridge", "tree", "binary", "binary_label", "multiclass"]


@st.composite
def ruled_declarations(draw) -> Declaration:
    """A random declaration whose inputs may also carry bounds and allowed values."""
    declaration = draw(declarations())
    inputs = []
    for spec in declaration.inputs:
        if spec.type == "string" and draw(st.booleans()):
            spec = FieldSpec(spec.name, spec.type, spec.required, values=("a", "b", "DE", "1", "a_b", ""))
        elif spec.type != "string" and draw(st.booleans()):
            low = draw(st.sampled_from([None, 0.0, -5.0]))
            high = draw(st.sampled_from([None, 100.0, 2.0**40]))
            spec = FieldSpec(spec.name, spec.type, spec.required, minimum=low, maximum=high)
        inputs.append(spec)
    return Declaration(inputs=tuple(inputs), features=declaration.features)


def draw_record(data: st.DataObject, declaration: Declaration) -> object:
    """A record: mostly plausible values, some hostile ones, sometimes a missing key, rarely not an object."""
    if data.draw(st.integers(0, 19)) == 0:
        return data.draw(st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=3), st.none(), st.floats()))
    record: dict[str, object] = {}
    for spec in declaration.inputs:
        roll = data.draw(st.integers(0, 9))
        if roll == 0:
            continue  # the key is missing
        record[spec.name] = data.draw(HOSTILE) if roll <= 2 else data.draw(VALUES[spec.type])
    roll = data.draw(st.integers(0, 5))
    if roll:
        record[ID_FIELD] = data.draw(HOSTILE) if roll == 1 else data.draw(st.integers(0, 10**6))
    return record


def fitted_predictor(declaration: Declaration, kind: str, data: st.DataObject) -> Predictor | None:
    """A (DictVectorizer, estimator) bundle of `kind` fitted on plausible records; None when there is no vocabulary."""
    training = [{spec.name: data.draw(VALUES[spec.type]) for spec in declaration.inputs} for _ in range(30)]
    dicts = reference_dicts(declaration, training)
    dv = DictVectorizer().fit(dicts)
    if not dv.vocabulary_:
        return None
    matrix = dv.transform(dicts)
    rng = np.random.default_rng(3)
    task, classes, returns, positive = "regression", None, "", None
    if kind in ("linear", "ridge", "tree"):
        target = rng.normal(size=len(training)) * 10
        estimator = {"linear": LinearRegression(), "ridge": Ridge(alpha=0.5), "tree": DecisionTreeRegressor()}[kind]
    else:
        count = 3 if kind == "multiclass" else 2
        labels = np.array([f"c{i}" for i in range(count)])[np.arange(len(training)) % count]
        target, estimator = labels, LogisticRegression(max_iter=500)
        classes = tuple(labels[:count].tolist())
        task = "multiclass" if kind == "multiclass" else "binary"
        returns = {"binary": "probability", "binary_label": "label", "multiclass": "probabilities"}[kind]
        positive = "c1" if task == "binary" else None
    estimator.fit(matrix, target)
    manifest = Manifest(
        name="m",
        version="1",
        sha256="-",
        format="dv_tuple",
        features=declaration.features,
        inputs=declaration.inputs,
        id_field=ID_FIELD,
        task=task,
        classes=classes,
        positive_class=positive,
        returns=returns,
    )
    return Predictor(ModelBundle(manifest=manifest, model=estimator, vectorizer=dv, uri="memory"))


def bits(outcomes: list[RecordOutcome]) -> list[tuple]:
    """Every field of every outcome, floats as their exact bits (so -0.0 and 0.0, or a last bit, differ)."""

    def exact(value: object) -> object:
        return value.hex() if isinstance(value, float) else value

    return [
        (
            o.position,
            o.record_id,
            exact(o.prediction),
            o.error,
            o.label,
            {k: exact(v) for k, v in o.probabilities.items()} if o.probabilities else o.probabilities,
        )
        for o in outcomes
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declaration=ruled_declarations(), kind=st.sampled_from(MODELS), data=st.data())
def test_small_path_equals_the_columnar_path_for_any_declaration_model_and_hostile_records(declaration, kind, data):
    # Given a fitted bundle of some kind and records mixing plausible and hostile values
    predictor = fitted_predictor(declaration, kind, data)
    if predictor is None:
        return
    records = [draw_record(data, declaration) for _ in range(data.draw(st.integers(1, 40)))]
    # When both paths score them
    small = SmallPath.of(predictor)
    assert small is not None
    scored, small_error = attempt(lambda: small.score(records))
    columnar, columnar_error = attempt(lambda: outcomes_of(predictor, records, score_columnar(predictor, records)))
    if scored is None and small_error is None:
        # (only a null optional number feature sends a batch the columnar way: scikit-learn refuses its NaN there)
        assert columnar_error is not None
        return
    # Then a batch scikit-learn refuses on one path (a value too large for a tree's float32) it refuses on both
    assert small_error == columnar_error
    if columnar_error is None:
        # And otherwise the same records are valid, refused with the same reasons, and predicted to the same bits
        assert bits(outcomes_of(predictor, records, scored)) == bits(columnar)


def attempt(call):
    """(result, None), or (None, the type of the ValueError scikit-learn raised)."""
    try:
        return call(), None
    except ValueError as exc:
        return None, type(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(preset=st.sampled_from(sorted(PRESETS)), kind=st.sampled_from(["linear", "ridge", "tree"]), data=st.data())
def test_small_path_predicts_what_dv_transform_and_predict_give_for_the_ride_presets(preset, kind, data):
    # Given a ride preset's bundle and plausible rides
    declaration = PRESETS[preset]
    predictor = fitted_predictor(declaration, kind, data)
    assert predictor is not None
    records = [{spec.name: data.draw(VALUES[spec.type]) for spec in declaration.inputs} for _ in range(25)]
    records = [{**r, "PULocationID": abs(r["PULocationID"]), "DOLocationID": abs(r["DOLocationID"])} for r in records]
    records = [{**r, "trip_distance": abs(r["trip_distance"])} for r in records]
    # When score_records takes them (the small path: fewer than its limit)
    outcomes = score_records(predictor, records)
    # Then each prediction is, bit for bit, the estimator's on the classic per-row dicts
    expected = predictor.estimator.predict(predictor.vectorizer.transform(reference_dicts(declaration, records)))
    assert [o.prediction.hex() for o in outcomes] == [float(v).hex() for v in expected]


def test_linear_regression_is_evaluated_directly_and_a_subclass_is_not(predictor):
    # Given the demo bundle (LinearRegression), and the same model as a subclass that may predict otherwise
    class Shifted(LinearRegression):
        def predict(self, X):
            return super().predict(X) + 1

    shifted = Shifted()
    shifted.__dict__.update(predictor.estimator.__dict__)
    other = Predictor(ModelBundle(predictor.bundle.manifest, shifted, predictor.vectorizer, "memory"))
    ride = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.0}
    # When both score one ride through the small path
    plain, moved = score_records(predictor, [ride])[0], score_records(other, [ride])[0]
    # Then the subclass's own predict was used (not the direct sum), and the plain one matches sklearn's
    assert moved.prediction == pytest.approx(plain.prediction + 1)
    assert plain.prediction == float(predictor.predict(predictor.schema.validate_records([ride]).valid)[0])


@pytest.mark.parametrize("size", [1, SMALL_PATH_MAX_RECORDS, SMALL_PATH_MAX_RECORDS + 1])
def test_score_records_gives_the_same_outcomes_on_either_side_of_the_size_limit(predictor, size):
    # Given rides, one of them invalid
    rides = [
        {"ride_id": i, "PULocationID": i % 50, "DOLocationID": i % 7, "trip_distance": 1.0 + i} for i in range(size)
    ]
    rides[0] = {"ride_id": 0, "PULocationID": True, "DOLocationID": 1, "trip_distance": 2.0}
    # When scored through score_records, and through the columnar path alone
    outcomes = score_records(predictor, rides)
    columnar = outcomes_of(predictor, rides, score_columnar(predictor, rides))
    # Then they agree to the bit, and the invalid ride is refused by name
    assert bits(outcomes) == bits(columnar)
    assert outcomes[0].error == "field 'PULocationID': expected an integer, got a boolean"


def test_a_null_optional_number_sends_the_batch_to_the_columnar_path():
    # Given a model whose number feature reads an optional input
    inputs = (FieldSpec("x", "number", required=False), FieldSpec("c", "string"))
    declaration = Declaration(
        inputs=inputs, features=(PRESETS["ride_pu_do"].features[1].__class__("x", "number", ("x",)),)
    )
    dv = DictVectorizer().fit([{"x": 1.0}, {"x": 2.0}])
    manifest = Manifest(
        name="m",
        version="1",
        sha256="-",
        format="dv_tuple",
        features=declaration.features,
        inputs=inputs,
        id_field=None,
    )
    model = LinearRegression().fit(dv.transform([{"x": 1.0}, {"x": 2.0}]), [1.0, 2.0])
    predictor = Predictor(ModelBundle(manifest=manifest, model=model, vectorizer=dv, uri="memory"))
    # When a record leaves it null, Then the small path declines (scikit-learn refuses NaN on the columnar path)
    assert SmallPath.of(predictor).score([{"x": None, "c": "a"}]) is None
    assert SmallPath.of(predictor).score([{"x": 3.0, "c": "a"}]) is not None
