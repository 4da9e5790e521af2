"""The composition root of the online adapter: create_app builds the Flask app around a loaded model."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask

from scoring.model import ModelBundle
from scoring.settings import Settings
from webservice.api import api
from webservice.errors import register_error_handler
from webservice.jsonio import use_fast_json
from webservice.metrics import Metrics, time_requests
from webservice.model_slot import ModelSlot, ModelState, backoff_delays
from webservice.openapi import build_openapi
from webservice.prediction_log import OnlinePredictionLog
from webservice.readiness import DatabaseProbe, database_to_check
from webservice.service import EXTENSION_KEY, LoadedModel, Service, load_model


def create_app(
    settings: Settings | None = None,
    bundle: ModelBundle | None = None,
    retry_delays: Callable[[], Iterable[float]] | None = None,
    retry_now: bool = True,
) -> Flask:
    """Build the app: read settings, load the model once, wire endpoints, errors and metrics.

    If the bundle store cannot be reached now, the model is loaded again in the background, waiting
    `retry_delays()` seconds before each attempt (default: backoff_delays), until it loads or fails for good
    (webservice.model_slot).
    That loop starts here unless `retry_now` is False: the app is built in a process that forks the ones
    serving it (gunicorn's preload_app), and each of those starts its own (start_retrying).
    """
    settings = settings if settings is not None else Settings.from_env()
    app = Flask(__name__)
    # Werkzeug refuses a longer Content-Length and stops reading a chunked body here; the extra
    # byte lets /predict tell a chunked body that was cut off from one that fitted (api.read_body).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes + 1
    # Keep keys in the order written: {<output>, "model_name", "model_version"}, predictions first; orjson writes.
    use_fast_json(app)

    database_url = database_to_check(settings)
    metrics = Metrics(settings.prometheus_multiproc_dir)

    def serving(model: LoadedModel | None) -> ModelState:
        openapi = build_openapi(model.manifest if model else None, settings)
        return ModelState(model, openapi, prediction_log_of(settings, model, metrics))

    slot = ModelSlot(lambda: serving(load_model(settings, bundle)), serving(None), retry_delays or backoff_delays)
    app.extensions[EXTENSION_KEY] = Service(
        settings=settings,
        slot=slot,
        database=DatabaseProbe(database_url) if database_url else None,
        metrics=metrics,
    )
    if retry_now:
        slot.keep_retrying()
    # A fallback: any request, a /health probe too, starts the loop in a worker whose server did not.
    app.before_request(slot.keep_retrying)
    register_error_handler(app, metrics.count_error)
    time_requests(app, metrics)
    app.register_blueprint(api)
    return app


def prediction_log_of(settings: Settings, model: LoadedModel | None, metrics: Metrics) -> OnlinePredictionLog | None:
    """The prediction log when SCORING_PREDICTION_LOG_URL is set and a model is loaded (its inputs are logged)."""
    if not settings.prediction_log_url or model is None:
        return None
    inputs = [spec.name for spec in model.manifest.inputs]
    return OnlinePredictionLog.from_url(
        settings.prediction_log_url, inputs, metrics.prediction_log_dropped, settings.prediction_log_sample
    )
