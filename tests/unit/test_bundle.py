"""Model bundles: integrity before unpickling, import of existing pickles, old scikit-learn pickles."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import pytest
import sklearn.base
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from scoring.cli import main
from scoring.errors import BundleIntegrityError, ModelLoadError
from scoring.model.bundle import load_bundle, sha256_of
from scoring.model.importing import ImportRequest, import_source
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust
from tests.conftest import predict_valid

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


class _Tripwire:
    """Unpickling this writes a marker file: proof that a pickle ran code when loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pickle code ran",))


def _fitted_tuple() -> tuple[DictVectorizer, LinearRegression]:
    rows = [{"PU_DO": f"{a}_{b}", "trip_distance": float(a + b)} for a in range(1, 6) for b in range(1, 6)]
    dv = DictVectorizer()
    X = dv.fit_transform(rows)
    model = LinearRegression().fit(X, [float(i % 7) + r["trip_distance"] for i, r in enumerate(rows)])
    return dv, model


def test_bundle_round_trip_predicts_like_the_objects_it_holds(demo_bundle_dir, predictor):
    # Given a bundle written by the demo trainer
    manifest = json.loads((demo_bundle_dir / "model.json").read_text())
    # Then the manifest carries the agreed fields and the sha256 of the artifact
    assert manifest["sha256"] == sha256_of((demo_bundle_dir / "model.bin").read_bytes())
    assert manifest["format"] == "dv_tuple" and manifest["preset"] == "ride_pu_do"
    assert manifest["features"] == [
        {"name": "PU_DO", "kind": "concat", "inputs": ["PULocationID", "DOLocationID"], "separator": "_"},
        {"name": "trip_distance", "kind": "number", "inputs": ["trip_distance"]},
    ]
    assert [f["name"] for f in manifest["inputs"]] == ["PULocationID", "DOLocationID", "trip_distance"]
    # And the loaded predictor gives what the raw objects give
    dv, model = pickle.loads((demo_bundle_dir / "model.bin").read_bytes())
    expected = model.predict(dv.transform([{"PU_DO": "10_50", "trip_distance": 40.0}]))[0]
    assert predict_valid(predictor, [RIDE])[0] == pytest.approx(expected, rel=1e-12)


def test_tampered_artifact_is_refused_before_unpickling(tmp_path, demo_bundle_dir):
    # Given a bundle whose model.bin was swapped for a pickle that runs code
    bundle = tmp_path / "bundle"
    shutil.copytree(demo_bundle_dir, bundle)
    marker = tmp_path / "pwned"
    (bundle / "model.bin").write_bytes(pickle.dumps(_Tripwire(str(marker))))
    # When it is loaded, Then it is refused by name, and the pickle never ran
    with pytest.raises(BundleIntegrityError, match=r"model\.bin has sha256 .* refusing to unpickle"):
        load_bundle(str(bundle), BundleTrust.of_bundle(str(bundle)))
    assert not marker.exists()


def test_missing_bundle_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nowhere")):
        load_bundle(str(tmp_path / "nowhere"), BundleTrust.of_bundle(str(tmp_path / "nowhere")))


@pytest.mark.parametrize("as_pipeline", [False, True], ids=["dv_tuple", "pipeline"])
def test_import_existing_model_bin(tmp_path, as_pipeline):
    # Given a model.bin the team already has
    dv, model = _fitted_tuple()
    obj = make_pipeline(dv, model) if as_pipeline else (dv, model)
    (tmp_path / "model.bin").write_bytes(pickle.dumps(obj))
    # When it is imported through the CLI
    dest = tmp_path / "models" / "rides" / "7"
    code = main(
        [
            "model",
            "import",
            str(tmp_path / "model.bin"),
            "--name",
            "rides",
            "--version",
            "7",
            "--features",
            "ride_pu_do",
            "--dest",
            str(dest),
        ]
    )
    # Then it becomes a verified bundle predicting what the original objects predict
    assert code == 0
    bundle = load_bundle(str(dest), BundleTrust.of_bundle(str(dest)))
    assert bundle.manifest.format == ("pipeline" if as_pipeline else "dv_tuple")
    assert bundle.manifest.version == "7"
    predicted = predict_valid(Predictor(bundle), [{"PULocationID": 2, "DOLocationID": 3, "trip_distance": 5.0}])
    assert predicted[0] == pytest.approx(model.predict(dv.transform([{"PU_DO": "2_3", "trip_distance": 5.0}]))[0])


def test_import_refuses_a_recipe_the_vectorizer_never_saw(tmp_path):
    dv, model = _fitted_tuple()
    (tmp_path / "model.bin").write_bytes(pickle.dumps((dv, model)))
    with pytest.raises(
        ModelLoadError, match=r"expects features \[.PU_DO.\] that recipe .ride_categorical. never produces"
    ):
        import_source(
            ImportRequest(str(tmp_path / "model.bin"), name="m", version="1", features="ride_categorical"),
            str(tmp_path / "b"),
        )


def test_import_refuses_something_that_is_not_a_model(tmp_path):
    (tmp_path / "model.bin").write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelLoadError, match="got dict"):
        import_source(
            ImportRequest(str(tmp_path / "model.bin"), name="m", version="1", features="ride_pu_do"),
            str(tmp_path / "b"),
        )


def test_pickle_from_an_older_scikit_learn_loads_with_a_warning(tmp_path, monkeypatch, caplog):
    # Given a model.bin pickled by scikit-learn 1.0.2 (estimators record the version that pickled them)
    dv, model = _fitted_tuple()
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.2")
    (tmp_path / "model.bin").write_bytes(pickle.dumps((dv, model)))
    monkeypatch.undo()
    # When it is imported and loaded
    with caplog.at_level(logging.WARNING, logger="scoring.model.artifacts"):
        manifest = import_source(
            ImportRequest(str(tmp_path / "model.bin"), name="m", version="1", features="ride_pu_do"),
            str(tmp_path / "b"),
        )[0]
        bundle = load_bundle(str(tmp_path / "b"), BundleTrust.of_bundle(str(tmp_path / "b")))
    # Then it works, the manifest records the old version, and the difference is logged
    assert manifest.sklearn_version == "1.0.2"
    assert bundle.vectorizer is not None
    assert any("1.0.2" in r.getMessage() and r.name == "scoring.model.artifacts" for r in caplog.records)
