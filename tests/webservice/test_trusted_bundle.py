"""The web service loads its bundle only from a trusted root: anything else leaves it unready, its pickle unrun."""

from __future__ import annotations

from scoring.settings import Settings
from tests.unit.test_trust import _evil_bundle
from webservice import create_app


def test_a_bundle_outside_the_roots_is_not_loaded_and_the_service_is_not_ready(tmp_path, demo_bundle_dir):
    marker = tmp_path / "pwned"
    evil = _evil_bundle(tmp_path / "attacker" / "1", marker, demo_bundle_dir)
    app = create_app(Settings(model_uri=str(evil), model_roots=str(tmp_path / "models")))
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and response.get_json()["checks"]["model"] == "not loaded"
    assert not marker.exists()
