"""A Lambda container refuses, at its cold start, a bundle outside SCORING_MODEL_ROOTS or unsigned under a key."""

from __future__ import annotations

import pytest

from scoring.errors import UntrustedBundle
from tests.unit.test_trust import _evil_bundle


def test_cold_start_refuses_a_bundle_outside_the_roots(cold_start, tmp_path, demo_bundle_dir):
    marker = tmp_path / "pwned"
    evil = _evil_bundle(tmp_path / "attacker" / "1", marker, demo_bundle_dir)
    with pytest.raises(UntrustedBundle, match="outside the trusted model roots"):
        cold_start(SCORING_MODEL_URI=str(evil), SCORING_MODEL_ROOTS=str(tmp_path / "models"))
    assert not marker.exists()


def test_cold_start_refuses_an_unsigned_bundle_when_a_key_is_set(cold_start, demo_bundle_dir):
    with pytest.raises(UntrustedBundle, match="is not signed"):
        cold_start(SCORING_BUNDLE_KEY="a-deployment-secret")
