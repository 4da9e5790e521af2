"""Artifacts: skops loads only the types its manifest trusts; a pickle this scikit-learn cannot load names its version."""

from __future__ import annotations

import builtins
import json
import operator
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest
import sklearn
import skops.io
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import make_pipeline

from scoring.errors import ModelLoadError
from scoring.model.artifacts import dump_artifact, load_artifact, pickled_sklearn_version, skops_types_of
from scoring.model.bundle import load_bundle, sha256_of
from scoring.model.declaration import preset
from scoring.model.importing import write_bundle
from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust

RIDES = [
    {"PULocationID": a, "DOLocationID": b, "trip_distance": float(a + b) / 3} for a in range(1, 9) for b in range(1, 9)
]


def course_pipeline():
    """The course's model: DictVectorizer + RandomForestRegressor on PU_DO and trip_distance."""
    dicts = [{"PU_DO": f"{r['PULocationID']}_{r['DOLocationID']}", "trip_distance": r["trip_distance"]} for r in RIDES]
    target = [r["trip_distance"] * 2 + r["PULocationID"] for r in RIDES]
    return make_pipeline(DictVectorizer(), RandomForestRegressor(n_estimators=5, random_state=0)).fit(
        dicts, target
    ), dicts


def skops_bundle(directory, pipeline, trusted: list[str]) -> None:
    artifact = dump_artifact(pipeline, "skops")
    declaration = preset("ride_pu_do")
    manifest = Manifest(
        name="course",
        version="1",
        sha256=sha256_of(artifact),
        format="pipeline",
        features=declaration.features,
        inputs=declaration.inputs,
        preset="ride_pu_do",
        serialization="skops",
        skops_trusted_types=tuple(trusted),
    )
    write_bundle(str(directory), artifact, manifest)


def test_skops_bundle_round_trips_and_predicts_like_the_pipeline(tmp_path):
    # Given the course's pipeline saved as skops, its manifest trusting exactly the types skops reports
    pipeline, dicts = course_pipeline()
    trusted = skops_types_of(dump_artifact(pipeline, "skops"))
    skops_bundle(tmp_path / "b", pipeline, trusted)
    # When the bundle is loaded
    bundle = load_bundle(str(tmp_path / "b"), BundleTrust.of_bundle(str(tmp_path / "b")))
    # Then the manifest kept its serialization and trusted types
    raw = json.loads((tmp_path / "b" / "model.json").read_text())
    assert raw["serialization"] == "skops" and raw["skops_trusted_types"] == trusted
    # And it predicts what the pipeline predicts
    predictor = Predictor(bundle)
    valid = predictor.schema.validate_records(RIDES).valid
    assert np.array_equal(predictor.predict(valid), pipeline.predict(dicts))


def test_skops_type_the_manifest_does_not_trust_is_refused_by_name(tmp_path):
    # Given a skops bundle whose manifest leaves out one of the types the file needs
    pipeline, _ = course_pipeline()
    trusted = skops_types_of(dump_artifact(pipeline, "skops"))
    assert trusted, "the course pipeline needs types beyond skops' defaults"
    left_out = trusted[-1]
    skops_bundle(tmp_path / "b", pipeline, trusted[:-1])
    # When it is loaded, Then it is refused, naming the type, and nothing is trusted wholesale
    with pytest.raises(ModelLoadError, match=f"does not trust: {left_out}; refusing to load it"):
        load_bundle(str(tmp_path / "b"), BundleTrust.of_bundle(str(tmp_path / "b")))


@pytest.mark.parametrize("function", [os.system, builtins.eval, builtins.getattr, subprocess.call])
def test_a_skops_file_asking_for_a_code_running_type_is_refused_even_when_its_manifest_trusts_it(function):
    # Given a skops file that smuggles a function which runs code, and a manifest (or an MLflow MLmodel's
    # skops_trusted_types) that lists it as trusted
    data = skops.io.dumps({"model": function})
    asked = skops.io.get_untrusted_types(data=data)
    # When it is loaded, Then it is refused by the type's name, before skops builds anything
    with pytest.raises(ModelLoadError, match=f"asks for types that run code: {asked[0]}; refusing to load it"):
        load_artifact(data, "skops", tuple(asked), "model.skops", "unknown")


def test_a_skops_file_that_is_not_one_is_refused_in_one_line():
    with pytest.raises(ModelLoadError, match="not a readable skops artifact"):
        load_artifact(b"not a zip", "skops", (), "model.bin", "unknown")


class _Refuses:
    """Unpickling this raises, as a Cython tree from an older scikit-learn raises in a newer one."""

    def __reduce__(self):
        return (operator.truediv, (1, 0))


def test_pickle_this_scikit_learn_cannot_load_names_the_version_that_wrote_it():
    # Given a pickle that records scikit-learn 1.0.2 and fails to load here
    data = pickle.dumps({"_sklearn_version": "1.0.2", "tree_": _Refuses()})
    # When it is loaded, Then the error names 1.0.2, the running version, and what to do
    with pytest.raises(ModelLoadError) as refused:
        load_artifact(data, "pickle", (), "model.bin", "unknown")
    message = str(refused.value)
    assert "pickled by scikit-learn 1.0.2" in message and sklearn.__version__ in message
    assert "re-export" in message and "\n" not in message


def test_a_forest_whose_trees_this_scikit_learn_refuses_names_the_version_it_needs():
    # Given a random forest pickle as 1.0.2 wrote it: that version recorded, and tree nodes of another layout
    if len(sklearn.__version__) != len("1.0.2"):
        pytest.skip("patches the version in place, which needs a five-character scikit-learn version")
    forest = RandomForestRegressor(n_estimators=2, random_state=0).fit([[0], [1], [2]], [0, 1, 2])
    data = pickle.dumps(forest).replace(sklearn.__version__.encode(), b"1.0.2")
    data = data.replace(b"missing_go_to_left", b"missing_go_to_lefx")
    # When it is loaded, Then it is refused in one line naming 1.0.2, never with a traceback of the tree
    with pytest.raises(ModelLoadError, match=r"model\.bin was pickled by scikit-learn 1\.0\.2, which .* cannot load"):
        load_artifact(data, "pickle", (), "model.bin", "unknown")


def test_version_is_read_from_a_real_estimator_pickle_without_loading_it():
    forest, _ = course_pipeline()
    assert pickled_sklearn_version(pickle.dumps(forest)) == sklearn.__version__
    assert pickled_sklearn_version(b"garbage") is None


def test_an_older_pickle_that_still_loads_reports_its_version(caplog):
    # Given an estimator pickle whose recorded version was changed to an older one of the same length
    forest, _ = course_pipeline()
    older = "0.0.1" if len(sklearn.__version__) == 5 else None
    if older is None:
        pytest.skip("needs a five-character scikit-learn version to patch in place")
    data = pickle.dumps(forest).replace(sklearn.__version__.encode(), older.encode())
    # When it is loaded, Then it loads, and the version that wrote it is returned and logged
    loaded, original = load_artifact(data, "pickle", (), "model.bin", "unknown")
    assert original == older and type(loaded).__name__ == "Pipeline"
    assert older in caplog.text


def test_legacy_bundle_without_serialization_loads_as_pickle(tmp_path, demo_bundle_dir):
    # Given a demo bundle whose manifest is in the old shape (a preset name, no serialization)
    bundle = tmp_path / "old"
    shutil.copytree(demo_bundle_dir, bundle)
    raw = json.loads((bundle / "model.json").read_text())
    old = {key: raw[key] for key in ("name", "version", "artifact", "sha256", "format", "inputs", "output")}
    (bundle / "model.json").write_text(json.dumps({**old, "features": "ride_pu_do"}))
    # When it is loaded, Then it is a pickle regression bundle with the preset's declaration and ride_id
    manifest = load_bundle(str(bundle), BundleTrust.of_bundle(str(bundle))).manifest
    assert (manifest.serialization, manifest.task, manifest.returns) == ("pickle", "regression", "value")
    assert manifest.features == preset("ride_pu_do").features and manifest.preset == "ride_pu_do"
    assert manifest.id_field == "ride_id"
