"""Fixtures for the web service tests: an app and a test client built fresh for each test (flaskr style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scoring.model.bundle import ModelBundle
from scoring.settings import Settings
from webservice import create_app

# The classic tutorial payload: it must work exactly as written.
TUTORIAL_RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


@pytest.fixture
def make_app(demo_bundle: ModelBundle) -> Callable[..., Flask]:
    """Build an app around the demo bundle; keyword arguments override Settings fields."""

    def build(bundle: ModelBundle | None = demo_bundle, **overrides: Any) -> Flask:
        # TESTING stays off: errors must be handled exactly as in production, not propagated to pytest.
        return create_app(Settings(**overrides), bundle=bundle)

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
