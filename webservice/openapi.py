"""The OpenAPI 3.1 document, built from the loaded bundle's manifest so the schema is the one the validator enforces."""

from __future__ import annotations

from typing import Any

from scoring.model.bundle import Manifest
from scoring.model.schema import FieldSpec
from scoring.settings import Settings

OPENAPI_PATH = "/openapi.json"
API_VERSION = "1.0.0"
JSON = "application/json"


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    """JSON Schema of one input field; an optional field also admits null."""
    schema: dict[str, Any] = {"type": spec.type if spec.required else [spec.type, "null"]}
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    return schema


def record_schema(manifest: Manifest | None) -> dict[str, Any]:
    """One flat record: the manifest's inputs plus the optional id; other fields are allowed and ignored."""
    if manifest is None:
        return {"type": "object", "description": "the model is not loaded, so its inputs are unknown"}
    properties = {spec.name: field_schema(spec) for spec in manifest.inputs}
    properties[manifest.id_field] = {"type": ["string", "number"], "description": "echoed with the prediction"}
    return {
        "type": "object",
        "properties": properties,
        "required": [spec.name for spec in manifest.inputs if spec.required],
        "additionalProperties": True,
    }


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
    return {str(status): _json_response(texts[status], {"$ref": "#/components/schemas/Error"}) for status in statuses}


def build_openapi(manifest: Manifest | None, settings: Settings) -> dict[str, Any]:
    """The whole document; `security` appears only when an API key is configured."""
    output = manifest.output if manifest else "duration"
    id_field = manifest.id_field if manifest else "ride_id"
    secured = [{"ApiKeyHeader": []}, {"BearerAuth": []}] if settings.api_key else []
    guarded = {"security": secured} if secured else {}
    model_meta = {"model_name": {"type": "string"}, "model_version": {"type": "string"}}
    schemas = {
        "Record": record_schema(manifest),
        "Batch": {
            "type": "object",
            "properties": {
                "records": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Record"},
                    "maxItems": settings.max_request_records,
                }
            },
            "required": ["records"],
        },
        "Prediction": {
            "type": "object",
            "properties": {output: {"type": "number"}, **model_meta},
            "required": [output, "model_name", "model_version"],
            "additionalProperties": False,
        },
        "BatchPrediction": {
            "type": "object",
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {output: {"type": "number"}, id_field: {"type": ["string", "number"]}},
                        "required": [output],
                        "additionalProperties": False,
                    },
                },
                **model_meta,
            },
            "required": ["predictions", "model_name", "model_version"],
            "additionalProperties": False,
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "index": {"type": "integer"},
                                    "id": {"type": ["string", "number"]},
                                    "reason": {"type": "string"},
                                },
                                "required": ["index", "reason"],
                            },
                        },
                    },
                    "required": ["code", "message"],
                }
            },
            "required": ["error"],
        },
    }
    status_schema = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ride-scoring prediction service",
            "version": API_VERSION,
            "description": "Online predictions from the same scoring core as the batch and streaming modes.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict for one flat record, or for {records: [...]} in order",
                    "operationId": "predict",
                    **guarded,
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {
                                    "anyOf": [
                                        {"$ref": "#/components/schemas/Record"},
                                        {"$ref": "#/components/schemas/Batch"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json_response(
                            "a prediction, or predictions in request order",
                            {
                                "anyOf": [
                                    {"$ref": "#/components/schemas/Prediction"},
                                    {"$ref": "#/components/schemas/BatchPrediction"},
                                ]
                            },
                        ),
                        **_error_responses(400, 401, 413, 415, 422, 503),
                    },
                }
            },
            "/model": {
                "get": {
                    "summary": "The loaded model: name, version, sha256, input schema",
                    "operationId": "model",
                    **guarded,
                    "responses": {
                        "200": _json_response("the bundle's manifest and request limits", {"type": "object"}),
                        **_error_responses(401, 503),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: the process answers",
                    "operationId": "health",
                    "responses": {"200": _json_response("alive", status_schema)},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: model loaded and, where configured, database reachable",
                    "operationId": "ready",
                    "responses": {
                        "200": _json_response("ready to serve", status_schema),
                        "503": _json_response("not ready; `checks` says why", status_schema),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}},
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _json_response("OpenAPI 3.1", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }
