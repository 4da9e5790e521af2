"""`scoring model import` from MLflow as teams hand models over: a real local tracking store (SQLite plus local
artifacts), the course's Pipeline registered with an alias, skops, cloudpickle and pickle, runs:/ URIs, local
model folders, and what must be refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mlflow")

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.conftest import predict_valid
from tests.support.mlflow_models import (
    RIDE_DERIVE,
    TREE_TYPES,
    TrackingStore,
    course_dicts,
    fraud_labels,
    fraud_pipeline,
    fraud_records,
    log_sklearn,
    ride_pipeline,
    ride_records,
    save_local,
    tracking_store,
)
from tests.support.model_import import import_bundle, import_fails


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One tracking store for the module: the course's model registered as 'rides' (alias champion), and friends."""
    folder = tmp_path_factory.mktemp("mlflow")
    with tracking_store(folder) as store:
        log_sklearn(store, ride_pipeline(), serialization="skops", registered_name="rides", alias="champion")
        yield store


@pytest.fixture(scope="module")
def cloudpickled_run(store: TrackingStore) -> str:
    """A runs:/ URI of the course's model logged as cloudpickle (MLflow 2's default)."""
    return log_sklearn(store, ride_pipeline(), serialization="cloudpickle")[0]


@pytest.mark.parametrize("uri", ["models:/rides@champion", "models:/rides/1"])
def test_the_course_model_imported_from_the_registry_scores_as_pyfunc_does(store, tmp_path, uri):
    # Given the course's Pipeline registered as 'rides' v1 (skops), alias champion
    # When it is imported by alias or version with PU_DO derived from the two location ids
    predictor, manifest = import_bundle(uri, "--derive", RIDE_DERIVE, dest=tmp_path / "bundle")
    # Then the bundle names itself from the registry and records where it came from
    assert (manifest.name, manifest.version) == ("rides", "1")
    assert manifest.source["uri"] == uri
    assert manifest.source["registered_version"] == "1"
    assert manifest.source["alias"] == ("champion" if "@" in uri else None)
    assert len(manifest.source["run_id"]) == 32
    # skops stays skops, trusting exactly the types MLmodel lists
    assert manifest.serialization == "skops"
    assert list(manifest.skops_trusted_types) == TREE_TYPES
    assert (tmp_path / "bundle" / "model.skops").exists()
    assert {spec.name: spec.type for spec in manifest.inputs} == {
        "PULocationID": "integer",
        "DOLocationID": "integer",
        "trip_distance": "number",
    }
    # And its predictions on raw rides equal what mlflow.pyfunc gives for the course's dicts, exactly
    rides = ride_records(200, seed=99)
    expected = mlflow.pyfunc.load_model(uri).predict(course_dicts(rides))
    np.testing.assert_array_equal(predict_valid(predictor, rides), expected)


def test_a_cloudpickled_run_imports_by_runs_uri_once_named(store, cloudpickled_run, tmp_path, capsys):
    # Given the course's model logged as cloudpickle in a run (not registered)
    # When it is imported without a name, it is refused in one line asking for one
    assert "--name and --version required" in import_fails(capsys, cloudpickled_run, "--derive", RIDE_DERIVE)
    # When it is named
    predictor, manifest = import_bundle(
        cloudpickled_run, "--derive", RIDE_DERIVE, "--name", "rides", "--version", "9", dest=tmp_path
    )
    # Then it is a pickle bundle that records its run, and scores as pyfunc does
    assert manifest.serialization == "pickle"
    assert manifest.source["uri"] == cloudpickled_run
    assert manifest.source["run_id"] == cloudpickled_run.split("/")[1]
    assert manifest.source["registered_version"] is None
    rides = ride_records(100, seed=5)
    expected = mlflow.pyfunc.load_model(cloudpickled_run).predict(course_dicts(rides))
    np.testing.assert_array_equal(predict_valid(predictor, rides), expected)


def test_format_skops_converts_a_cloudpickle_with_exactly_the_types_it_needs(store, cloudpickled_run, tmp_path):
    # Given the cloudpickled course model, When imported with --format skops
    args = (cloudpickled_run, "--derive", RIDE_DERIVE, "--name", "r", "--version", "1", "--format", "skops")
    predictor, manifest = import_bundle(*args, dest=tmp_path)
    # Then the bundle is skops, trusting only the random forest's tree type, and predicts the same
    assert (manifest.serialization, list(manifest.skops_trusted_types)) == ("skops", TREE_TYPES)
    rides = ride_records(50, seed=8)
    expected = mlflow.pyfunc.load_model(cloudpickled_run).predict(course_dicts(rides))
    np.testing.assert_array_equal(predict_valid(predictor, rides), expected)


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle", "skops"])
def test_a_local_mlflow_model_folder_imports(tmp_path, serialization):
    # Given an MLflow model folder saved without any tracking store (today: IsADirectoryError)
    folder = save_local(tmp_path / "model", ride_pipeline(), serialization)
    # When it is imported
    predictor, manifest = import_bundle(
        str(folder), "--derive", RIDE_DERIVE, "--name", "r", "--version", "1", dest=tmp_path / "b"
    )
    # Then it scores as the folder's pyfunc model does
    rides = ride_records(80, seed=1)
    expected = mlflow.pyfunc.load_model(str(folder)).predict(course_dicts(rides))
    np.testing.assert_array_equal(predict_valid(predictor, rides), expected)


def test_a_registered_fraud_classifier_imports_with_no_features_and_returns_fraud_probability(store, tmp_path):
    # Given a binary classifier on amount, merchant and country, registered as 'fraud'
    log_sklearn(store, fraud_pipeline(), serialization="skops", registered_name="fraud")
    # When it is imported with nothing but its URI
    predictor, manifest = import_bundle("models:/fraud/1", dest=tmp_path)
    # Then the declaration is inferred and it is a binary model returning P(fraud)
    assert {spec.name: spec.type for spec in manifest.inputs} == {
        "amount": "number",
        "country": "string",
        "merchant": "string",
    }
    assert (manifest.task, list(manifest.classes), manifest.positive_class) == ("binary", [0, 1], 1)
    assert manifest.returns == "probability"
    payments = fraud_records(120, seed=4)
    expected = mlflow.sklearn.load_model("models:/fraud/1").predict_proba(payments)[:, 1]
    np.testing.assert_array_equal(predict_valid(predictor, payments), expected)


def test_a_frame_pipeline_is_typed_from_its_mlflow_signature(store, tmp_path):
    # Given a ColumnTransformer Pipeline fitted on a DataFrame and logged with a signature (no DictVectorizer)
    payments = pd.DataFrame(fraud_records())
    model = make_pipeline(
        ColumnTransformer(
            [("text", OneHotEncoder(handle_unknown="ignore"), ["merchant", "country"])], remainder="passthrough"
        ),
        LogisticRegression(max_iter=1000),
    ).fit(payments, fraud_labels(fraud_records()))
    run_uri, _ = log_sklearn(store, model, serialization="pickle", signature=infer_signature(payments))
    # When it is imported with no --features and no --sample
    predictor, manifest = import_bundle(run_uri, "--name", "fraud-frame", "--version", "1", dest=tmp_path)
    # Then its inputs are typed by the signature and it is fed a frame of exactly its columns
    assert [(spec.name, spec.type) for spec in manifest.inputs] == [
        ("amount", "number"),
        ("merchant", "string"),
        ("country", "string"),
    ]
    assert [f.kind for f in manifest.features] == ["frame"]
    sample = fraud_records(60, seed=21)
    expected = model.predict_proba(pd.DataFrame(sample))[:, 1]
    np.testing.assert_array_equal(predict_valid(predictor, sample), expected)


def _mlmodel_folder(folder: Path, flavors: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text(f"artifact_path: model\nflavors:\n{flavors}")
    return folder


@pytest.mark.parametrize(
    ("flavors", "message"),
    [
        (
            "  python_function:\n    loader_module: mlflow.pyfunc.model\n",
            "has no sklearn flavor (flavors: python_function)",
        ),
        ("  sklearn:\n    pickled_model: ../../x\n    serialization_format: pickle\n", "must be a plain file name"),
        ("  sklearn:\n    pickled_model: /etc/passwd\n    serialization_format: pickle\n", "must be a plain file name"),
        ("  sklearn:\n    pickled_model: model.pkl\n    serialization_format: joblib\n", "is not one of"),
        ("  sklearn:\n    pickled_model: model.pkl\n    serialization_format: pickle\n", "which is not in"),
    ],
)
def test_a_hostile_or_foreign_mlmodel_is_refused_in_one_line(tmp_path, capsys, flavors, message):
    # Given an MLflow folder whose MLmodel is not a scikit-learn model, or points outside the folder
    folder = _mlmodel_folder(tmp_path / "m", flavors)
    (tmp_path / "x").write_bytes(b"not read")
    # When it is imported, Then it is refused naming the problem
    assert message in import_fails(capsys, str(folder), "--name", "m", "--version", "1", "--dest", str(tmp_path / "b"))
    assert not (tmp_path / "b").exists()


def test_a_skops_model_needing_a_type_its_mlmodel_does_not_trust_is_refused(tmp_path, capsys):
    # Given a skops model folder whose MLmodel trusts nothing beyond skops' defaults
    folder = save_local(tmp_path / "model", ride_pipeline(), "skops")
    mlmodel = (folder / "MLmodel").read_text()
    (folder / "MLmodel").write_text(mlmodel.replace("- sklearn.tree._tree.Tree", "- sklearn.linear_model.Ridge"))
    # When it is imported, Then loading is refused, naming the untrusted type (never "trust everything")
    err = import_fails(capsys, str(folder), "--derive", RIDE_DERIVE, "--name", "m", "--version", "1")
    assert "sklearn.tree._tree.Tree" in err


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/no-such-model@champion", "cannot resolve models:/no-such-model@champion"),
        ("models:/rides@no-such-alias", "cannot resolve models:/rides@no-such-alias"),
        ("models:/rides/42", "cannot resolve models:/rides/42"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "runs:/0123456789abcdef0123456789abcdef/model"),
    ],
)
def test_a_model_the_tracking_store_does_not_have_is_refused_in_one_line(store, capsys, uri, message):
    assert message in import_fails(capsys, uri, "--derive", RIDE_DERIVE, "--name", "m", "--version", "1")


def test_derive_naming_an_input_the_preset_does_not_declare_is_refused(store, capsys):
    err = import_fails(
        capsys, "models:/rides@champion", "--features", "ride_pu_do", "--derive", 'PU_DO=PULocationID+"_"+Nope'
    )
    assert "--derive PU_DO reads ['Nope'], which preset 'ride_pu_do' does not declare" in err
