"""The OpenAPI 3.1 document, built from the loaded bundle's manifest so the schema is the one the validator enforces."""

from __future__ import annotations

from typing import Any

from scoring.model.manifest import DEFAULT_OUTPUT, Manifest
from scoring.model.schema import FieldSpec
from scoring.settings import Settings

OPENAPI_PATH = "/openapi.json"
API_VERSION = "1.0.0"
JSON = "application/json"
STATUS_SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
MODEL_META = {"model_name": {"type": "string"}, "model_version": {"type": "string"}}
SECURITY_SCHEMES = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "BearerAuth": {"type": "http", "scheme": "bearer"},
}


ID_SCHEMA = {"type": ["string", "number"]}
PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    """JSON Schema of one input field: type, bounds, allowed values; an optional field also admits null."""
    schema: dict[str, Any] = {"type": spec.type if spec.required else [spec.type, "null"]}
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    if spec.values is not None:
        schema["enum"] = [*spec.values, *([] if spec.required else [None])]
    return schema


def record_schema(manifest: Manifest | None) -> dict[str, Any]:
    """One flat record: the manifest's inputs plus its id field, if any; other fields are allowed and ignored."""
    if manifest is None:
        return {"type": "object", "description": "the model is not loaded, so its inputs are unknown"}
    properties = {spec.name: field_schema(spec) for spec in manifest.inputs}
    if manifest.id_field is not None:
        properties[manifest.id_field] = {**ID_SCHEMA, "description": "echoed with the prediction"}
    return {
        "type": "object",
        "properties": properties,
        "required": [spec.name for spec in manifest.inputs if spec.required],
        "additionalProperties": True,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error_responses(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "malformed JSON, or a body that is neither a record nor {records: [...]}",
        401: "missing or wrong API key",
        413: "body larger than the byte limit, or more records than the record limit",
        415: "Content-Type is not application/json",
        422: "records that fail the model's input schema; each problem names the record index and field",
        503: "the model is not loaded",
    }
    return {str(status): _json_response(texts[status], _ref("Error")) for status in statuses}


def build_openapi(manifest: Manifest | None, settings: Settings) -> dict[str, Any]:
    """The whole document; `security` appears only when an API key is configured."""
    guarded: dict[str, Any] = {"security": [{"ApiKeyHeader": []}, {"BearerAuth": []}]} if settings.api_key else {}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{manifest.name} prediction service" if manifest else "prediction service",
            "version": API_VERSION,
            "description": "Online predictions from the same scoring core as the batch and streaming modes.",
        },
        "paths": {**_model_paths(guarded), **_operations_paths()},
        "components": {"schemas": _schemas(manifest, settings), "securitySchemes": SECURITY_SCHEMES},
    }


def _schemas(manifest: Manifest | None, settings: Settings) -> dict[str, Any]:
    """Request, response and error bodies, keyed by the manifest's output and id names."""
    answer = answer_properties(manifest)
    return {
        "Record": record_schema(manifest),
        "Batch": _batch_schema(settings.max_request_records),
        "Prediction": {
            "type": "object",
            "properties": {**answer, **MODEL_META},
            "required": [*answer, "model_name", "model_version"],
            "additionalProperties": False,
        },
        "BatchPrediction": _batch_prediction_schema(answer, manifest.id_field if manifest else None),
        "Error": _error_schema(),
    }


def answer_properties(manifest: Manifest | None) -> dict[str, Any]:
    """The answer's fields, as RecordOutcome.answer writes them: the output, plus per-class probabilities on request.

    The output is a number (a regression value, or a probability of the positive class), or in label
    mode one of the class labels; `probabilities` maps each class, as text, to its probability.
    """
    if manifest is None:
        return {DEFAULT_OUTPUT: {"type": "number"}}
    classes = list(manifest.classes or [])
    if manifest.returns in ("label", "probabilities") and classes:
        output: dict[str, Any] = {"type": _json_types(classes), "enum": classes}
    elif manifest.returns == "probability":
        output = {**PROBABILITY, "description": f"the probability of class {manifest.positive_class!r}"}
    else:
        output = {"type": "number"}
    properties = {manifest.output: output}
    if manifest.returns == "probabilities":
        properties["probabilities"] = {
            "type": "object",
            "properties": {str(label): PROBABILITY for label in classes},
            "required": [str(label) for label in classes],
            "additionalProperties": False,
        }
    return properties


def _json_types(values: list[Any]) -> str | list[str]:
    """The JSON Schema type(s) of some JSON values, one name when they share one."""
    names = sorted(
        {
            "boolean"
            if isinstance(v, bool)
            else "integer"
            if isinstance(v, int)
            else "number"
            if isinstance(v, float)
            else "string"
            for v in values
        }
    )
    return names[0] if len(names) == 1 else names


def _batch_schema(max_records: int) -> dict[str, Any]:
    """`{"records": [...]}` with at most `max_records` records."""
    return {
        "type": "object",
        "properties": {"records": {"type": "array", "items": _ref("Record"), "maxItems": max_records}},
        "required": ["records"],
    }


def _batch_prediction_schema(answer: dict[str, Any], id_field: str | None) -> dict[str, Any]:
    """Predictions in request order, each with the record's id when it had one (and the bundle names an id field)."""
    item = {
        "type": "object",
        "properties": {**answer, **({id_field: ID_SCHEMA} if id_field else {})},
        "required": list(answer),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"predictions": {"type": "array", "items": item}, **MODEL_META},
        "required": ["predictions", "model_name", "model_version"],
        "additionalProperties": False,
    }


def _error_schema() -> dict[str, Any]:
    """`{"error": {"code", "message", "problems": [{"index", "id", "reason"}]}}`, as webservice.errors writes it."""
    problem = {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "id": {"type": ["string", "number"]},
            "reason": {"type": "string"},
        },
        "required": ["index", "reason"],
    }
    error = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "problems": {"type": "array", "items": problem},
        },
        "required": ["code", "message"],
    }
    return {"type": "object", "properties": {"error": error}, "required": ["error"]}


def _model_paths(guarded: dict[str, Any]) -> dict[str, Any]:
    """/predict and /model, which need the API key when one is configured."""
    predict = {
        "summary": "Predict for one flat record, or for {records: [...]} in order",
        "operationId": "predict",
        **guarded,
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"anyOf": [_ref("Record"), _ref("Batch")]}}},
        },
        "responses": {
            "200": _json_response(
                "a prediction, or predictions in request order",
                {"anyOf": [_ref("Prediction"), _ref("BatchPrediction")]},
            ),
            **_error_responses(400, 401, 413, 415, 422, 503),
        },
    }
    model = {
        "summary": "The loaded model: name, version, sha256, input schema",
        "operationId": "model",
        **guarded,
        "responses": {
            "200": _json_response("the bundle's manifest and request limits", {"type": "object"}),
            **_error_responses(401, 503),
        },
    }
    return {"/predict": {"post": predict}, "/model": {"get": model}}


def _operations_paths() -> dict[str, Any]:
    """Health, readiness, metrics and this document: open to every caller."""
    return {
        "/health": _get("Liveness: the process answers", "health", {"200": _json_response("alive", STATUS_SCHEMA)}),
        "/ready": _get(
            "Readiness: model loaded and, where configured, database reachable",
            "ready",
            {
                "200": _json_response("ready to serve", STATUS_SCHEMA),
                "503": _json_response("not ready; `checks` says why", STATUS_SCHEMA),
            },
        ),
        "/metrics": _get(
            "Prometheus metrics",
            "metrics",
            {"200": {"description": "text exposition format", "content": {"text/plain": {}}}},
        ),
        OPENAPI_PATH: _get("This document", "openapi", {"200": _json_response("OpenAPI 3.1", {"type": "object"})}),
    }


def _get(summary: str, operation_id: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "operationId": operation_id, "responses": responses}}
