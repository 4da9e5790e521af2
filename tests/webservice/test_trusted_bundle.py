"""The web service loads its bundle only from a trusted root: anything else leaves it unready, its pickle unrun."""

from __future__ import annotations

from scoring.settings import Settings
from tests.unit.test_trust import _evil_bundle
from webservice import create_app
from webservice.service import EXTENSION_KEY


def test_a_bundle_outside_the_roots_is_not_loaded_and_the_service_is_not_ready(tmp_path, demo_bundle_dir):
    marker = tmp_path / "pwned"
    evil = _evil_bundle(tmp_path / "attacker" / "1", marker, demo_bundle_dir)
    app = create_app(Settings(model_uri=str(evil), model_roots=str(tmp_path / "models")))
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and response.get_json()["checks"]["model"] == "not loaded"
    assert not marker.exists()


def test_a_bundle_store_that_cannot_be_reached_leaves_the_service_unready_with_one_log_line(monkeypatch, caplog):
    # Given an S3 bundle whose endpoint refuses connections (a real socket, nothing listening)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # When the service starts
    app = create_app(Settings(model_uri="s3://models/ride_duration/1", model_roots="s3://models"))
    # (its background retries are webservice/model_slot's and tests/webservice/test_bundle_retry.py's; stop them)
    app.extensions[EXTENSION_KEY].slot.stop()
    # Then it is unready, and says why in one line, not as a failed warm-up with a traceback
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and response.get_json()["checks"]["model"] == "not loaded"
    records = [r for r in caplog.records if r.name.startswith("webservice")]
    assert [r.getMessage().split(":")[0] for r in records] == ["model bundle not loaded"]
    assert "cannot reach s3://models/ride_duration/1/model.json now" in records[0].getMessage()
    assert records[0].exc_info is None
