"""A bundle's reference profile: written beside the artifact, named with its sha256 in the manifest (so the
signature covers it), verified at load, and added to existing bundles by `scoring model profile`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scoring.cli import main
from scoring.errors import BundleIntegrityError, UntrustedBundle
from scoring.model.bundle import load_bundle, sha256_of
from scoring.model.manifest import REFERENCE_NAME
from scoring.model.predict import Predictor
from scoring.model.reference import NumberProfile, TextProfile
from scoring.model.trust import BundleTrust, sign_manifest
from scoring.monitoring.profile import ReferenceProfile, input_kinds
from tests.conftest import make_rides

KEY = "a-test-bundle-key-of-enough-length"


@pytest.fixture(autouse=True)
def _trusted_tmp(tmp_path, monkeypatch):
    """Bundles under the test's folder are trusted; no key unless a test sets one."""
    monkeypatch.setenv("SCORING_MODEL_ROOTS", str(tmp_path))
    monkeypatch.delenv("SCORING_BUNDLE_KEY", raising=False)


def _copy(demo_bundle_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(demo_bundle_dir, target)
    return target


def _without_reference(bundle: Path) -> Path:
    """The bundle as it was before profiles existed: no reference.json, no entry in the manifest."""
    manifest = json.loads((bundle / "model.json").read_text())
    del manifest["reference"]
    (bundle / "model.json").write_text(json.dumps(manifest))
    (bundle / REFERENCE_NAME).unlink()
    return bundle


def test_the_demo_bundle_carries_the_profile_of_its_training_rides(demo_bundle_dir, demo_bundle):
    # Given the demo bundle
    manifest = json.loads((demo_bundle_dir / "model.json").read_text())
    # Then its manifest names reference.json with that file's sha256
    assert manifest["reference"] == {
        "file": "reference.json",
        "sha256": sha256_of((demo_bundle_dir / REFERENCE_NAME).read_bytes()),
    }
    # And the loaded bundle exposes the profile: locations as text (they feed PU_DO), distance and duration as numbers
    profile = demo_bundle.reference
    assert isinstance(profile, ReferenceProfile)
    assert profile.kinds == {
        "PULocationID": "text",
        "DOLocationID": "text",
        "trip_distance": "number",
        "duration": "number",
    }
    assert profile.output == "duration" and profile.rows > 15_000
    assert isinstance(profile.columns["trip_distance"], NumberProfile)
    assert isinstance(profile.columns["PULocationID"], TextProfile)
    # And the prediction's profile is the model's predictions on the training rides (mean within a minute of 1-60 min)
    assert 1 < profile.columns["duration"].mean < 60


def test_input_kinds_follow_the_declaration(demo_bundle):
    # Given the ride preset (PU_DO concat of two integer locations, trip_distance a number feature)
    # Then inputs feeding a concat are text and the rest numbers
    assert input_kinds(demo_bundle.manifest) == {
        "PULocationID": "text",
        "DOLocationID": "text",
        "trip_distance": "number",
    }


def test_a_tampered_profile_is_refused_like_a_tampered_artifact(demo_bundle_dir, tmp_path):
    # Given a copy of the demo bundle whose reference.json was edited after import
    bundle = _copy(demo_bundle_dir, tmp_path)
    raw = json.loads((bundle / REFERENCE_NAME).read_text())
    raw["columns"]["trip_distance"]["mean"] = 1000.0
    (bundle / REFERENCE_NAME).write_text(json.dumps(raw))
    # When it is loaded
    with pytest.raises(BundleIntegrityError) as refused:
        load_bundle(str(bundle), BundleTrust.of_bundle(str(bundle)))
    # Then it is refused, naming the profile and its sha256
    message = str(refused.value)
    assert "reference.json has sha256" in message and "\n" not in message


def test_a_missing_profile_file_is_refused(demo_bundle_dir, tmp_path):
    # Given a bundle whose manifest names a profile that is not there
    bundle = _copy(demo_bundle_dir, tmp_path)
    (bundle / REFERENCE_NAME).unlink()
    # Then loading it fails naming the file
    with pytest.raises(BundleIntegrityError, match="reference.json, which does not exist"):
        load_bundle(str(bundle), BundleTrust.of_bundle(str(bundle)))


def test_a_bundle_without_a_profile_loads_with_none_and_keeps_its_manifest(demo_bundle_dir, tmp_path):
    # Given a bundle made before profiles (no entry, no file)
    bundle = _without_reference(_copy(demo_bundle_dir, tmp_path))
    # When it is loaded
    loaded = load_bundle(str(bundle), BundleTrust.of_bundle(str(bundle)))
    # Then it has no profile, and its manifest writes back without a reference key (an old signature still holds)
    assert loaded.reference is None
    assert "reference" not in loaded.manifest.to_json()


def test_the_signature_covers_the_profile(demo_bundle_dir, tmp_path, monkeypatch):
    # Given a bundle signed with the key, to which `scoring model profile` adds a profile (re-signing it)
    bundle = _without_reference(_copy(demo_bundle_dir, tmp_path))
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["signature"] = sign_manifest(manifest, KEY.encode())
    (bundle / "model.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("SCORING_BUNDLE_KEY", KEY)
    sample = tmp_path / "sample.parquet"
    make_rides(3000, seed=5).to_parquet(sample)
    assert main(["model", "profile", str(bundle), "--reference", str(sample)]) == 0
    trust = BundleTrust(roots=(str(tmp_path),), key=KEY.encode())
    assert load_bundle(str(bundle), trust).reference is not None
    # When someone swaps in another profile and puts its sha256 in the manifest (without the key)
    (bundle / REFERENCE_NAME).write_text((bundle / REFERENCE_NAME).read_text().replace('"rows":', '"rows": 1, "x":'))
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["reference"]["sha256"] = sha256_of((bundle / REFERENCE_NAME).read_bytes())
    (bundle / "model.json").write_text(json.dumps(manifest))
    # Then the bundle is refused: its signature no longer holds
    with pytest.raises(UntrustedBundle):
        load_bundle(str(bundle), trust)


def test_model_profile_adds_a_profile_of_the_sample_and_the_bundles_predictions(demo_bundle_dir, tmp_path, capsys):
    # Given an unsigned bundle without a profile and a CSV sample of training inputs
    bundle = _without_reference(_copy(demo_bundle_dir, tmp_path))
    rides = make_rides(2000, seed=3)
    sample = tmp_path / "sample.csv"
    rides.to_csv(sample, index=False)
    # When `scoring model profile` adds one
    assert main(["model", "profile", str(bundle), "--reference", str(sample)]) == 0
    assert "added a reference profile to ride_duration v1" in capsys.readouterr().out
    # Then the bundle loads with a profile of the sample's rows
    loaded = load_bundle(str(bundle), BundleTrust.of_bundle(str(bundle)))
    profile = loaded.reference
    assert profile is not None and profile.rows == 2000
    distance = profile.columns["trip_distance"]
    assert isinstance(distance, NumberProfile)
    assert distance.mean == pytest.approx(rides["trip_distance"].mean())
    # And the prediction's profile is the bundle's predictions on those rows
    records = rides[["PULocationID", "DOLocationID", "trip_distance"]]
    valid = loaded.schema.validate_frame(records).valid
    expected = Predictor(loaded).predict(valid)
    duration = profile.columns["duration"]
    assert isinstance(duration, NumberProfile)
    assert duration.mean == pytest.approx(float(np.mean(expected)))


def test_a_signed_bundle_is_not_profiled_without_the_key(demo_bundle_dir, tmp_path, monkeypatch, capsys):
    # Given a bundle signed with a key, and no key in the environment
    bundle = _copy(demo_bundle_dir, tmp_path)
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["signature"] = "0" * 64
    (bundle / "model.json").write_text(json.dumps(manifest))
    sample = tmp_path / "sample.parquet"
    make_rides(100).to_parquet(sample)
    # When a profile is added
    assert main(["model", "profile", str(bundle), "--reference", str(sample)]) == 1
    # Then it is refused in one line saying how to re-sign it, and the manifest is unchanged
    err = capsys.readouterr().err.strip()
    assert err.endswith("is signed: set SCORING_BUNDLE_KEY to re-sign it with its reference profile")
    assert json.loads((bundle / "model.json").read_text()) == manifest


def test_a_sample_without_the_inputs_is_refused_in_one_line(demo_bundle_dir, tmp_path, capsys):
    # Given a sample that lacks the model's inputs
    bundle = _copy(demo_bundle_dir, tmp_path)
    sample = tmp_path / "sample.csv"
    sample.write_text("a,b\n1,2\n")
    # Then profiling with it fails naming what is missing
    assert main(["model", "profile", str(bundle), "--reference", str(sample)]) == 1
    err = capsys.readouterr().err.strip()
    assert "lacks the inputs ['PULocationID', 'DOLocationID', 'trip_distance']" in err and "\n" not in err
