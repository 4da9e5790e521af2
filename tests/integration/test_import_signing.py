"""With SCORING_BUNDLE_KEY set, `scoring model import` and `scoring demo` sign what they write, through the CLI."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression

from scoring.cli import main
from scoring.errors import UntrustedBundle
from scoring.model.bundle import load_bundle
from scoring.model.trust import BundleTrust

KEY = "the-deployments-signing-key"


def _pickled_model(path: Path) -> Path:
    """A (DictVectorizer, LinearRegression) a team already has, pickled."""
    rows = [{"PU_DO": f"{a}_{b}", "trip_distance": float(a + b)} for a in range(1, 6) for b in range(1, 6)]
    dv = DictVectorizer()
    model = LinearRegression().fit(dv.fit_transform(rows), [float(i % 7) for i in range(len(rows))])
    path.write_bytes(pickle.dumps((dv, model)))
    return path


def _import(tmp_path: Path, dest: Path) -> None:
    source = _pickled_model(tmp_path / "model.bin")
    argv = ["model", "import", str(source), "--name", "rides", "--version", "1", "--features", "ride_pu_do"]
    assert main([*argv, "--dest", str(dest)]) == 0


def _demo(tmp_path: Path, dest: Path) -> None:
    argv = ["demo", "--rows-per-hour", "10", "--input", str(tmp_path / "input"), "--model", str(dest)]
    assert main(argv) == 0


def _assert_signed_with_the_key(dest: Path) -> None:
    # Loads under the key it was imported with
    load_bundle(str(dest), BundleTrust.of_bundle(str(dest), key=KEY.encode()))
    # And is refused by a deployment holding another key
    with pytest.raises(UntrustedBundle, match="does not verify"):
        load_bundle(str(dest), BundleTrust.of_bundle(str(dest), key=b"another-key"))


@pytest.mark.parametrize("write", [_import, _demo], ids=["model import", "demo"])
def test_a_bundle_written_with_the_key_set_is_signed_with_it(monkeypatch, tmp_path, write):
    # Given a deployment with a signing key
    monkeypatch.setenv("SCORING_BUNDLE_KEY", KEY)
    dest = tmp_path / "models" / "rides" / "1"
    # When a bundle is written through the CLI
    write(tmp_path, dest)
    # Then it carries that key's signature and no other
    _assert_signed_with_the_key(dest)


@pytest.mark.parametrize("write", [_import, _demo], ids=["model import", "demo"])
def test_a_bundle_written_without_the_key_is_refused_where_a_key_is_required(monkeypatch, tmp_path, write):
    # Given a bundle written where no key was set
    monkeypatch.delenv("SCORING_BUNDLE_KEY", raising=False)
    dest = tmp_path / "models" / "rides" / "1"
    write(tmp_path, dest)
    # Then a deployment that requires a signature refuses it, and one without a key loads it
    with pytest.raises(UntrustedBundle, match="is not signed"):
        load_bundle(str(dest), BundleTrust.of_bundle(str(dest), key=KEY.encode()))
    load_bundle(str(dest), BundleTrust.of_bundle(str(dest)))
