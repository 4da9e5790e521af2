"""The HTTP endpoints; each one translates, calls the scoring core once, and translates back."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from webservice.auth import requires_api_key
from webservice.errors import ApiError
from webservice.openapi import OPENAPI_PATH, record_schema
from webservice.payload import parse_predict_body, render_batch, render_single, require_json, require_scored
from webservice.service import current_service, require_model

api = Blueprint("api", __name__)


@api.post("/predict")
@requires_api_key
def predict() -> dict[str, Any]:
    """Score one flat record, or `{"records": [...]}` in order, with one vectorised predict."""
    service = current_service()
    state = service.current()
    model = require_model(state)
    manifest = model.manifest
    require_json(request.mimetype)
    body = parse_predict_body(read_body(service.settings.max_request_bytes), service.settings.max_request_records)
    outcomes = model.score(body.records)
    require_scored(outcomes, body.records, manifest.id_field)
    service.metrics.count_predictions(len(outcomes), manifest.name, manifest.version)
    if state.prediction_log is not None:
        state.prediction_log.record(outcomes, body.records, manifest.name, manifest.version)
    if body.batch:
        return render_batch(outcomes, body.records, manifest)
    return render_single(outcomes[0], manifest)


def read_body(max_bytes: int) -> bytes:
    """The request body, or 413 when it is longer than `max_bytes`.

    Werkzeug refuses a Content-Length over the limit up front, but a chunked body is only cut off
    at the limit, silently. The app's limit is one byte more than ours (see create_app), so an
    oversized chunked body shows itself here by that extra byte.
    """
    body = request.get_data(cache=False)
    if len(body) > max_bytes:
        raise ApiError(413, "payload_too_large", f"the request body is larger than {max_bytes} bytes")
    return body


@api.get("/model")
@requires_api_key
def model() -> dict[str, Any]:
    """The loaded bundle's manifest (name, version, sha256, inputs...), a record's JSON Schema, and the request limits."""
    service = current_service()
    manifest = require_model(service.current()).manifest
    limits = {"max_records": service.settings.max_request_records, "max_bytes": service.settings.max_request_bytes}
    return {**manifest.to_json(), "input_schema": record_schema(manifest), "limits": limits}


@api.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process is up and answering; nothing else is checked."""
    return {"status": "ok"}


@api.get("/ready")
def ready() -> tuple[Response, int]:
    """Readiness: the model is loaded and, when one is configured, the database answers."""
    service = current_service()
    checks = {"model": "ok" if service.model is not None else "not loaded"}
    if service.database is not None:
        checks["database"] = service.database.check().detail
    is_ready = all(detail == "ok" for detail in checks.values())
    body = {"status": "ready" if is_ready else "not ready", "checks": checks}
    return jsonify(body), 200 if is_ready else 503


@api.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition of this service's metrics."""
    return current_service().metrics.exposition()


@api.get(OPENAPI_PATH)
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this service, with the loaded model's input schema."""
    return current_service().openapi
