"""`scoring model import` of pickles with no Python written: inferred declarations, classifiers, skops conversion,
presets cut to what the model reads, and one-line refusals."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn.base
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.model.artifacts import skops_types_of
from scoring.model.bundle import load_bundle
from scoring.model.trust import BundleTrust
from tests.conftest import predict_valid
from tests.support.mlflow_models import fraud_labels, fraud_pipeline, fraud_records, ride_pipeline, ride_records
from tests.support.model_import import import_bundle, import_fails


def _pickled(tmp_path: Path, model: object) -> str:
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps(model))
    return str(path)


def test_a_fraud_classifier_pickle_imports_with_no_features_and_returns_the_fraud_probability(tmp_path):
    # Given a pickled DictVectorizer + LogisticRegression on amount, merchant and country
    model = fraud_pipeline()
    # When imported with only a name and version
    predictor, manifest = import_bundle(
        _pickled(tmp_path, model), "--name", "fraud", "--version", "3", dest=tmp_path / "b"
    )
    # Then it is a binary model whose prediction is P(class 1), named 'probability'
    assert (manifest.task, list(manifest.classes), manifest.positive_class) == ("binary", [0, 1], 1)
    assert (manifest.returns, manifest.output) == ("probability", "probability")
    assert {s.name: s.type for s in manifest.inputs} == {"amount": "number", "country": "string", "merchant": "string"}
    # And its records are named by the generic "id", not a ride's name
    assert manifest.id_field == "id"
    payments = fraud_records(100, seed=2)
    np.testing.assert_array_equal(predict_valid(predictor, payments), model.predict_proba(payments)[:, 1])


def test_a_binary_classifier_can_return_the_other_class_probability_or_the_label(tmp_path):
    model = fraud_pipeline()
    source = _pickled(tmp_path, model)
    payments = fraud_records(60, seed=9)
    # When the positive class is 0, Then the prediction is P(0)
    predictor, manifest = import_bundle(
        source, "--name", "f", "--version", "1", "--positive-class", "0", dest=tmp_path / "a"
    )
    assert manifest.positive_class == 0
    np.testing.assert_array_equal(predict_valid(predictor, payments), model.predict_proba(payments)[:, 0])
    # When the label is asked for, Then each prediction stands for the class the model predicts
    predictor, manifest = import_bundle(
        source, "--name", "f", "--version", "1", "--returns", "label", dest=tmp_path / "b"
    )
    assert (manifest.returns, manifest.output) == ("label", "label")
    labels = [predictor.label_of(value) for value in predict_valid(predictor, payments)]
    assert labels == model.predict(payments).tolist()


def test_a_multiclass_classifier_returns_its_label_or_its_probabilities(tmp_path):
    # Given a three-class risk model
    payments = fraud_records()
    risk = ["low" if p["amount"] < 500 else "mid" if p["amount"] < 1500 else "high" for p in payments]
    model = make_pipeline(DictVectorizer(), LogisticRegression(max_iter=2000)).fit(payments, risk)
    source = _pickled(tmp_path, model)
    sample = fraud_records(50, seed=13)
    # When imported by default, Then it returns the label
    predictor, manifest = import_bundle(source, "--name", "risk", "--version", "1", dest=tmp_path / "a")
    assert (manifest.task, manifest.returns, list(manifest.classes)) == ("multiclass", "label", ["high", "low", "mid"])
    assert [predictor.label_of(v) for v in predict_valid(predictor, sample)] == model.predict(sample).tolist()
    # When probabilities are asked for, Then they are predict_proba's, per class
    predictor, manifest = import_bundle(
        source, "--name", "risk", "--version", "1", "--returns", "probabilities", dest=tmp_path / "b"
    )
    valid = predictor.schema.validate_records(sample).valid
    _, probabilities = predictor.predict_with_probabilities(valid)
    np.testing.assert_array_equal(probabilities, model.predict_proba(sample))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--returns", "probability"), "--returns probability: the model is a regressor"),
        (("--positive-class", "1"), "--positive-class is for binary classifiers"),
    ],
)
def test_classifier_options_on_a_regressor_are_refused(tmp_path, capsys, args, message):
    source = _pickled(tmp_path, ride_pipeline())
    err = import_fails(
        capsys, source, "--name", "r", "--version", "1", "--derive", 'PU_DO=PULocationID+"_"+DOLocationID', *args
    )
    assert message in err


def test_a_positive_class_the_model_does_not_have_is_refused(tmp_path, capsys):
    err = import_fails(
        capsys, _pickled(tmp_path, fraud_pipeline()), "--name", "f", "--version", "1", "--positive-class", "yes"
    )
    assert "--positive-class must be one of the model's classes [0, 1]" in err


def test_format_skops_converts_a_pickle_trusting_what_skops_reports(tmp_path):
    # Given the course's random forest pickled
    model = ride_pipeline()
    source = _pickled(tmp_path, model)
    derive = 'PU_DO=PULocationID+"_"+DOLocationID'
    # When imported as skops
    predictor, manifest = import_bundle(
        source, "--name", "r", "--version", "1", "--derive", derive, "--format", "skops", dest=tmp_path / "b"
    )
    # Then the bundle holds skops bytes trusting exactly what skops reports for them, and predicts the same
    artifact = (tmp_path / "b" / manifest.artifact).read_bytes()
    assert manifest.serialization == "skops" and artifact.startswith(b"PK")
    assert list(manifest.skops_trusted_types) == skops_types_of(artifact) == ["sklearn.tree._tree.Tree"]
    rides = ride_records(40, seed=3)
    dicts = [{"PU_DO": f"{r['PULocationID']}_{r['DOLocationID']}", "trip_distance": r["trip_distance"]} for r in rides]
    np.testing.assert_array_equal(predict_valid(predictor, rides), model.predict(dicts))


def test_a_preset_is_cut_to_the_inputs_the_model_reads(tmp_path):
    # Given a model trained only on the two location ids, as categoricals
    rows = [{"PULocationID": str(a), "DOLocationID": str(b)} for a in range(1, 6) for b in range(1, 6)]
    dv = DictVectorizer().fit(rows)
    model = LinearRegression().fit(dv.transform(rows), [float(i) for i in range(len(rows))])
    # When imported with the ride_categorical preset (which also produces trip_distance)
    predictor, manifest = import_bundle(
        _pickled(tmp_path, (dv, model)),
        "--name",
        "m",
        "--version",
        "1",
        "--features",
        "ride_categorical",
        dest=tmp_path / "b",
    )
    # Then trip_distance is neither a feature nor a required input, and rides without it score
    assert [s.name for s in manifest.inputs] == ["PULocationID", "DOLocationID"]
    assert manifest.id_field == "ride_id"  # a ride preset keeps the rides' id
    assert "trip_distance" not in [f.name for f in manifest.features]
    predicted = predict_valid(predictor, [{"PULocationID": 2, "DOLocationID": 3}])
    assert predicted[0] == model.predict(dv.transform([{"PULocationID": "2", "DOLocationID": "3"}]))[0]


def test_a_pickle_this_scikit_learn_cannot_load_names_the_version_it_needs(tmp_path, capsys, monkeypatch):
    # Given a model pickled by "scikit-learn 1.0.2" whose class this scikit-learn no longer has
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.2")
    data = pickle.dumps(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))
    monkeypatch.undo()
    assert b"sklearn.linear_model._base" in data
    (tmp_path / "old.bin").write_bytes(data.replace(b"sklearn.linear_model._base", b"sklearn.linear_model._gone"))
    # When imported, Then one line names the version that wrote it
    err = import_fails(capsys, str(tmp_path / "old.bin"), "--name", "m", "--version", "1", "--features", "ride_pu_do")
    assert "pickled by scikit-learn 1.0.2" in err


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda p: p.mkdir(), (), "is a folder without an MLmodel file: not an MLflow model"),
        (lambda p: None, (), "no such file or folder"),
        (lambda p: p.write_bytes(b"PK\x03\x04rest"), (), "is a skops file without its MLflow model folder"),
        (lambda p: p.write_bytes(pickle.dumps(fraud_pipeline())), ("--name", "f"), "--version required"),
        (lambda p: p.write_bytes(pickle.dumps(fraud_pipeline())), ("--version", "1"), "--name required"),
        (lambda p: p.write_bytes(pickle.dumps({"a": 1})), ("--name", "f", "--version", "1"), "got dict"),
        (
            lambda p: p.write_bytes(pickle.dumps(fraud_pipeline())),
            ("--name", "f", "--version", "1", "--require-id", "--id-field", "amount"),
            "the id field 'amount' is also an input the model reads",
        ),
    ],
)
def test_a_bad_source_or_option_is_refused_in_one_line(tmp_path, capsys, make, args, message):
    make(tmp_path / "source")
    assert message in import_fails(capsys, str(tmp_path / "source"), *args, "--dest", str(tmp_path / "b"))
    assert not (tmp_path / "b").exists()


def test_a_preset_the_model_was_not_trained_with_names_the_features_it_misses(tmp_path, capsys):
    err = import_fails(
        capsys, _pickled(tmp_path, fraud_pipeline()), "--name", "f", "--version", "1", "--features", "ride_pu_do"
    )
    assert "expects features ['amount', 'country', 'merchant'] that recipe 'ride_pu_do' never produces" in err


def test_fraud_labels_are_learnt():
    # The fixture's classifier must see both classes, or "binary" above would be vacuous.
    assert set(fraud_labels(fraud_records())) == {0, 1}


def test_importing_and_serving_modules_never_load_mlflow():
    # MLflow is an import-time extra: the bundle, predictor and import code load without it.
    code = (
        "import sys, scoring.cli, scoring.model.importing, scoring.model.predict; "
        "print(sorted(m for m in ('mlflow', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_with_a_reference_sample_profiles_its_inputs_and_the_models_predictions(tmp_path):
    # Given the fraud classifier and a Parquet sample of its training inputs
    import pandas as pd

    from scoring.monitoring.profile import NumberProfile, TextProfile

    model = fraud_pipeline()
    payments = fraud_records(300, seed=21)
    sample = tmp_path / "training.parquet"
    pd.DataFrame(payments).to_parquet(sample)
    # When imported with --reference
    dest = tmp_path / "b"
    _, manifest = import_bundle(
        _pickled(tmp_path, model), "--name", "fraud", "--version", "1", "--reference", str(sample), dest=dest
    )
    # Then the manifest names the profile, and the loaded bundle carries it
    assert manifest.reference is not None and manifest.reference["file"] == "reference.json"
    profile = load_bundle(str(dest), BundleTrust.of_bundle(str(dest))).reference
    assert profile is not None and profile.rows == 300
    # And text inputs are profiled by category, numbers by value, and the prediction is P(fraud) on the sample
    assert profile.kinds == {"amount": "number", "country": "text", "merchant": "text", "probability": "number"}
    country = profile.columns["country"]
    assert isinstance(country, TextProfile) and sum(country.counts.values()) == 300
    probability = profile.columns["probability"]
    assert isinstance(probability, NumberProfile)
    assert probability.mean == pytest.approx(float(model.predict_proba(payments)[:, 1].mean()))
