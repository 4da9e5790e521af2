"""Bundles load only from trusted roots, with a plain artifact name, and signed when a key is set.

Each test builds the attack a trigger-form user or a careless operator could mount and shows that
the pickle inside never runs: the tripwire's marker file stays absent.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest

from scoring.cli import main
from scoring.demo.training import train_demo_bundle
from scoring.errors import ConfigError, ModelLoadError, UntrustedBundle
from scoring.model.bundle import load_bundle, read_manifest, sha256_of
from scoring.model.trust import BundleTrust, sign_manifest
from scoring.settings import Settings

KEY = b"k" * 32


class _Tripwire:
    """Unpickling this writes a marker file: proof that a pickle ran code when loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pickle code ran",))


def _evil_bundle(directory: Path, marker: Path, demo_bundle_dir: Path, artifact: str = "model.bin") -> Path:
    """A bundle whose manifest names a code-running pickle by its true sha256: the check it 'passes' is its own."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(_Tripwire(marker))
    target = directory / artifact if not Path(artifact).is_absolute() else Path(artifact)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    manifest = json.loads((demo_bundle_dir / "model.json").read_text())
    manifest.update(sha256=sha256_of(payload), artifact=artifact)
    (directory / "model.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """A trusted models folder and an attacker's folder beside it."""
    trusted, outside = tmp_path / "models", tmp_path / "elsewhere"
    trusted.mkdir()
    outside.mkdir()
    return trusted, outside


def test_a_bundle_outside_the_roots_is_refused_before_its_pickle_runs(tmp_path, roots, demo_bundle_dir):
    trusted, outside = roots
    marker = tmp_path / "pwned"
    evil = _evil_bundle(outside / "evil" / "1", marker, demo_bundle_dir)
    with pytest.raises(UntrustedBundle, match="outside the trusted model roots"):
        load_bundle(str(evil), BundleTrust(roots=(str(trusted),)))
    assert not marker.exists()


@pytest.mark.parametrize("artifact", ["../x.bin", "/ABSOLUTE/x.bin", "sub/x.bin", ".hidden", "..", ""])
def test_the_artifact_must_be_a_plain_file_name_in_the_bundle_folder(tmp_path, roots, demo_bundle_dir, artifact):
    trusted, _ = roots
    marker = tmp_path / "pwned"
    artifact = artifact.replace("/ABSOLUTE", str(tmp_path / "abs"))
    bundle = trusted / "m" / "1"
    bundle.mkdir(parents=True)
    manifest = json.loads((demo_bundle_dir / "model.json").read_text())
    payload = pickle.dumps(_Tripwire(marker))
    (tmp_path / "x.bin").write_bytes(payload)
    manifest.update(sha256=sha256_of(payload), artifact=artifact)
    (bundle / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="'artifact' must be a plain file name inside the bundle folder"):
        load_bundle(str(bundle), BundleTrust(roots=(str(trusted),)))
    assert not marker.exists()


def test_dot_dot_and_symlinks_do_not_lead_out_of_a_root(tmp_path, roots, demo_bundle_dir):
    trusted, outside = roots
    marker = tmp_path / "pwned"
    _evil_bundle(outside / "evil", marker, demo_bundle_dir)
    (trusted / "link").symlink_to(outside / "evil")
    trust = BundleTrust(roots=(str(trusted),))
    for uri in (trusted / ".." / "elsewhere" / "evil", trusted / "link"):
        with pytest.raises(UntrustedBundle):
            load_bundle(str(uri), trust)
    assert not marker.exists()


def test_a_symlinked_artifact_inside_a_trusted_bundle_is_refused(tmp_path, roots, demo_bundle_dir):
    trusted, outside = roots
    bundle = trusted / "m" / "1"
    shutil.copytree(demo_bundle_dir, bundle)
    shutil.move(bundle / "model.bin", outside / "model.bin")
    (bundle / "model.bin").symlink_to(outside / "model.bin")
    with pytest.raises(UntrustedBundle):
        load_bundle(str(bundle), BundleTrust(roots=(str(trusted),)))


@pytest.mark.parametrize(
    ("uri", "trusted"),
    [
        ("s3://models/ride/1/", True),
        ("s3://models/ride/1", True),
        ("s3://models-evil/ride/1", False),
        ("s3://other/models/ride/1", False),
        ("s3://models/ride/../../x", False),
        ("s3://models/ride//1", False),
        ("/local/models/ride/1", False),
    ],
)
def test_s3_roots_are_prefixes_on_segment_boundaries(uri, trusted):
    trust = BundleTrust(roots=("s3://models/ride/",))
    if trusted:
        trust.locate(uri)
    else:
        with pytest.raises(UntrustedBundle):
            trust.locate(uri)


def test_with_a_key_an_unsigned_or_foreign_signed_bundle_is_refused(tmp_path, roots, demo_bundle_dir):
    trusted, _ = roots
    signed = trusted / "m" / "1"
    train_demo_bundle(str(signed), rows=2_000, key=KEY)
    trust = BundleTrust(roots=(str(trusted),), key=KEY)
    # A bundle signed at import with the key loads
    assert load_bundle(str(signed), trust).manifest.signature.startswith("hmac-sha256:")
    # One written into the root without the key does not
    unsigned = trusted / "m" / "2"
    shutil.copytree(demo_bundle_dir, unsigned)
    with pytest.raises(UntrustedBundle, match="is not signed"):
        read_manifest(str(unsigned), trust)
    # Nor does a signed manifest edited afterwards, nor one re-signed with another key
    manifest = json.loads((signed / "model.json").read_text())
    for edited in (
        {**manifest, "sha256": "0" * 64},
        {**manifest, "signature": sign_manifest(manifest, b"another key")},
    ):
        (signed / "model.json").write_text(json.dumps(edited))
        with pytest.raises(UntrustedBundle, match="does not verify"):
            load_bundle(str(signed), trust)


def test_the_trusted_root_does_not_follow_an_overridden_model_uri(tmp_path):
    # Given a deployment naming its model, and a trigger form overriding the model URI
    settings = Settings.from_env({"SCORING_MODEL_URI": str(tmp_path / "models" / "ride" / "1")})
    overridden = settings.with_overrides(model_uri=str(tmp_path / "attacker" / "1"))
    # Then the trusted root is still the deployment's
    assert BundleTrust.from_settings(overridden).roots == (str(tmp_path / "models" / "ride"),)
    with pytest.raises(UntrustedBundle):
        BundleTrust.from_settings(overridden).locate(overridden.model_uri)


def test_model_roots_lists_several_places():
    settings = Settings.from_env({"SCORING_MODEL_ROOTS": "/srv/models, s3://bucket/models/"})
    assert settings.trusted_model_roots == ("/srv/models", "s3://bucket/models/")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: [m], "the manifest must be a JSON object"),
        (lambda m: {**m, "inputs": "PULocationID"}, "'inputs' must be a non-empty list of objects"),
        (lambda m: {**m, "inputs": [1, 2]}, "'inputs' must be a non-empty list of objects"),
        (lambda m: {**m, "inputs": []}, "'inputs' must be a non-empty list of objects"),
        (
            lambda m: {**m, "inputs": m["inputs"] + m["inputs"][:1]},
            r"inputs \['PULocationID'\] are declared more than once",
        ),
        (lambda m: {**m, "id_field": "trip_distance"}, "the id field 'trip_distance' is also declared as an input"),
    ],
)
def test_malformed_manifests_get_one_error_line_from_the_cli(
    tmp_path, demo_bundle_dir, capsys, monkeypatch, edit, message
):
    bundle = tmp_path / "b"
    shutil.copytree(demo_bundle_dir, bundle)
    manifest = json.loads((bundle / "model.json").read_text())
    (bundle / "model.json").write_text(json.dumps(edit(manifest)))
    with pytest.raises(ModelLoadError, match=message):
        read_manifest(str(bundle), BundleTrust.of_bundle(str(bundle)))
    # Through the CLI: exit 1 and a single error line naming the problem, no traceback
    monkeypatch.setenv("SCORING_MODEL_ROOTS", str(tmp_path))
    assert main(["model", "show", str(bundle)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert re.search(message, err[0])


def test_the_cli_refuses_a_bundle_outside_the_roots_in_one_line(tmp_path, demo_bundle_dir, capsys, monkeypatch):
    monkeypatch.setenv("SCORING_MODEL_ROOTS", str(tmp_path / "models"))
    assert main(["model", "show", str(demo_bundle_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outside the trusted model roots" in err[0]


def test_a_symlink_swapped_after_the_check_is_not_followed(tmp_path, roots, demo_bundle_dir, monkeypatch):
    # Given a link the attacker controls, pointing at a trusted bundle when the location is checked
    trusted, outside = roots
    marker = tmp_path / "pwned"
    good = trusted / "m" / "1"
    shutil.copytree(demo_bundle_dir, good)
    evil = _evil_bundle(outside / "evil", marker, demo_bundle_dir)
    link = outside / "link"
    link.symlink_to(good)
    locate = BundleTrust.locate

    def locate_then_swap(self, uri):
        location = locate(self, uri)
        link.unlink()
        link.symlink_to(evil)  # the race: swapped between the check and the reads
        return location

    monkeypatch.setattr(BundleTrust, "locate", locate_then_swap)
    # When the bundle is loaded through the link, Then what was checked is what is read
    bundle = load_bundle(str(link), BundleTrust(roots=(str(trusted),)))
    assert bundle.manifest.name == "ride_duration" and not marker.exists()


@pytest.mark.parametrize(
    ("env", "roots"),
    [
        ({"SCORING_MODEL_URI": "/bundle"}, ("/bundle",)),
        ({"SCORING_MODEL_URI": "s3://bucket/m"}, ("s3://bucket/m/",)),
        ({"SCORING_MODEL_URI": "s3://bucket/models/m/1"}, ("s3://bucket/models/m/",)),
    ],
)
def test_a_default_root_never_trusts_a_whole_filesystem_or_bucket(env, roots):
    assert Settings.from_env(env).trusted_model_roots == roots


def test_roots_are_pinned_when_settings_are_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"SCORING_MODEL_ROOTS": "models"})
    direct = Settings(model_uri=str(tmp_path / "models" / "m" / "1")).with_overrides(model_uri="/tmp/evil/b")
    monkeypatch.chdir("/")
    assert settings.trusted_model_roots == (str(tmp_path / "models"),)
    assert direct.trusted_model_roots == (str(tmp_path / "models" / "m"),)


def test_the_filesystem_root_is_refused_as_a_model_root():
    with pytest.raises(ConfigError, match="must not include the filesystem root"):
        Settings.from_env({"SCORING_MODEL_ROOTS": "/srv/models,/"})
