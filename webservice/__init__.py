"""The online adapter: a Flask app around an already-loaded scoring Predictor.

app = create_app()                           # settings from SCORING_* variables, bundle from SCORING_MODEL_URI
app = create_app(settings, bundle=bundle)    # tests and embedders pass their own

Importing this package imports nothing else: `python -m webservice.serve` must set prometheus_client's
multiprocess directory before prometheus_client (which the app's metrics use) is first imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from flask import Flask

    from scoring.model import ModelBundle
    from scoring.settings import Settings


def create_app(
    settings: Settings | None = None,
    bundle: ModelBundle | None = None,
    retry_delays: Callable[[], Iterable[float]] | None = None,
) -> Flask:
    """Build the app: read settings, load the model once, wire endpoints, errors and metrics (webservice.app).

    `retry_delays` replaces the backoff between attempts while the bundle store is unreachable (tests).
    """
    from webservice.app import create_app as build_app

    return build_app(settings, bundle, retry_delays)
