"""Classifiers: a binary one answers P(positive class), label mode the label, multiclass per-class probabilities."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.errors import ModelLoadError
from scoring.model.bundle import ModelBundle
from scoring.model.declaration import Declaration, FeatureSpec
from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.records import score_records
from scoring.model.schema import FieldSpec

DECLARATION = Declaration(
    inputs=(FieldSpec("amount", "number", minimum=0), FieldSpec("country", "string")),
    features=(FeatureSpec("amount", "number", ("amount",)), FeatureSpec("country", "categorical", ("country",))),
)
COUNTRIES = ["DE", "FR", "NG", "US"]


def transactions(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"amount": round(float(rng.exponential(100)), 2), "country": COUNTRIES[int(rng.integers(4))]} for _ in range(n)
    ]


def fitted(labels_of, as_pipeline: bool):
    records = transactions(300, seed=1)
    labels = [labels_of(r) for r in records]
    if as_pipeline:
        pipeline = make_pipeline(DictVectorizer(), LogisticRegression(max_iter=2000)).fit(records, labels)
        return pipeline, None, pipeline
    dv = DictVectorizer()
    estimator = LogisticRegression(max_iter=2000).fit(dv.fit_transform(records), labels)
    return estimator, dv, make_pipeline(dv, estimator)


def predictor_for(model, vectorizer, **task) -> Predictor:
    manifest = Manifest(
        name="m",
        version="1",
        sha256="-",
        format="pipeline" if vectorizer is None else "dv_tuple",
        features=DECLARATION.features,
        inputs=DECLARATION.inputs,
        id_field="id",
        output="answer",
        **task,
    )
    return Predictor(ModelBundle(manifest=manifest, model=model, vectorizer=vectorizer, uri="memory"))


def is_fraud(record: dict) -> int:
    return int(record["amount"] > 150 or record["country"] == "NG")


def risk(record: dict) -> str:
    return "high" if record["amount"] > 200 else ("medium" if record["country"] in ("NG", "US") else "low")


@pytest.mark.parametrize("as_pipeline", [False, True], ids=["dv_tuple", "pipeline"])
def test_binary_classifier_predicts_the_probability_of_the_positive_class(as_pipeline):
    # Given a fraud classifier with classes [0, 1] and 1 the positive class
    model, dv, reference = fitted(is_fraud, as_pipeline)
    predictor = predictor_for(model, dv, task="binary", classes=(0, 1), positive_class=1, returns="probability")
    records = transactions(120, seed=2)
    valid = predictor.schema.validate_records(records).valid
    # When it predicts, Then it gives predict_proba[:, 1] bit for bit, and no label
    assert np.array_equal(predictor.predict(valid), reference.predict_proba(records)[:, 1])
    assert predictor.label_of(0.7) is None


def test_binary_positive_class_picks_its_own_column_whatever_its_position():
    # Given string classes where the positive class "fraud" is the FIRST column of predict_proba
    model, dv, reference = fitted(lambda r: "fraud" if is_fraud(r) else "ok", False)
    assert list(model.classes_) == ["fraud", "ok"]
    predictor = predictor_for(model, dv, task="binary", classes=("fraud", "ok"), positive_class="fraud")
    records = transactions(50, seed=3)
    valid = predictor.schema.validate_records(records).valid
    # Then the prediction is P(fraud), column 0, not column 1
    assert np.array_equal(predictor.predict(valid), reference.predict_proba(records)[:, 0])


def test_binary_label_mode_answers_the_predicted_label():
    # Given the same classifier in label mode
    model, dv, reference = fitted(lambda r: "fraud" if is_fraud(r) else "ok", False)
    predictor = predictor_for(
        model, dv, task="binary", classes=("fraud", "ok"), positive_class="fraud", returns="label"
    )
    records = transactions(80, seed=4)
    # When records are scored, Then each answer is the label model.predict gives
    outcomes = score_records(predictor, records)
    assert [o.answer("answer")["answer"] for o in outcomes] == reference.predict(records).tolist()
    assert {o.prediction for o in outcomes} <= {0.0, 1.0}
    assert all(o.probabilities is None for o in outcomes)


@pytest.mark.parametrize("as_pipeline", [False, True], ids=["dv_tuple", "pipeline"])
def test_multiclass_gives_labels_and_on_request_the_probabilities_of_every_class(as_pipeline):
    # Given a three-class risk model whose manifest lists its classes in another order than classes_
    model, dv, reference = fitted(risk, as_pipeline)
    classes = ("medium", "high", "low")
    predictor = predictor_for(model, dv, task="multiclass", classes=classes, returns="probabilities")
    records = transactions(90, seed=5)
    valid = predictor.schema.validate_records(records).valid
    # When it predicts with probabilities
    indexes, probabilities = predictor.predict_with_probabilities(valid)
    # Then each index names model.predict's label, and each probability column is that class's predict_proba
    assert [predictor.label_of(i) for i in indexes] == reference.predict(records).tolist()
    order = [list(reference.classes_).index(c) for c in classes]
    assert np.array_equal(probabilities, reference.predict_proba(records)[:, order])
    # And an online answer carries the label and the probabilities keyed by class
    answer = score_records(predictor, records[:1])[0].answer("risk")
    expected = dict(zip(classes, reference.predict_proba(records[:1])[0, order].tolist(), strict=True))
    assert answer == {"risk": reference.predict(records[:1])[0], "probabilities": expected}


def test_multiclass_label_mode_has_no_probabilities():
    model, dv, reference = fitted(risk, False)
    predictor = predictor_for(model, dv, task="multiclass", classes=("high", "low", "medium"), returns="label")
    valid = predictor.schema.validate_records(transactions(10, seed=6)).valid
    indexes, probabilities = predictor.predict_with_probabilities(valid)
    assert probabilities is None and set(indexes.tolist()) <= {0.0, 1.0, 2.0}


def test_manifest_classes_that_differ_from_the_model_are_refused():
    model, dv, _ = fitted(is_fraud, False)
    with pytest.raises(ModelLoadError, match="classes differ from the model's classes_"):
        predictor_for(model, dv, task="binary", classes=(0, 2), positive_class=2)


def test_a_regressor_declared_as_a_classifier_is_refused():
    _, dv, _ = fitted(is_fraud, False)
    from sklearn.linear_model import LinearRegression

    regressor = LinearRegression().fit(dv.transform(transactions(20, seed=7)), np.arange(20.0))
    with pytest.raises(ModelLoadError, match="is not a classifier"):
        predictor_for(regressor, dv, task="binary", classes=(0, 1), positive_class=1)


def test_regression_answer_is_the_value_alone():
    model, dv, _ = fitted(is_fraud, False)
    predictor = predictor_for(model, dv, task="binary", classes=(0, 1), positive_class=1)
    regression_like = replace(score_records(predictor, transactions(1, seed=8))[0], label=None)
    assert regression_like.answer("answer") == {"answer": regression_like.prediction}
