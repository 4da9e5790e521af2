"""Optional API key: with SCORING_API_KEY set, guarded endpoints answer 401 without it; probes stay open."""

from __future__ import annotations

import pytest

from tests.webservice.conftest import TUTORIAL_RIDE

KEY = "s3cret-key"


@pytest.fixture
def guarded_client(make_app):
    return make_app(api_key=KEY).test_client()


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
    ids=["none", "wrong-header", "empty-header", "wrong-bearer", "not-bearer-scheme"],
)
@pytest.mark.parametrize(("method", "path"), [("post", "/predict"), ("get", "/model")])
def test_requests_without_the_right_key_get_401(guarded_client, headers, method, path):
    response = getattr(guarded_client, method)(path, json=TUTORIAL_RIDE, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert KEY not in response.get_data(as_text=True)


@pytest.mark.parametrize("headers", [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}], ids=["header", "bearer"])
def test_the_right_key_is_let_through_either_way(guarded_client, headers):
    response = guarded_client.post("/predict", json=TUTORIAL_RIDE, headers=headers)
    assert response.status_code == 200
    assert "duration" in response.get_json()


def test_the_key_is_checked_before_the_body_is_read(guarded_client):
    response = guarded_client.post("/predict", data="{not json", content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json"])
def test_probes_metrics_and_the_api_document_stay_open(guarded_client, path):
    assert guarded_client.get(path).status_code == 200


def test_without_a_configured_key_everything_is_open(client):
    assert client.post("/predict", json=TUTORIAL_RIDE).status_code == 200
    assert client.get("/model").status_code == 200
