"""The one place where errors become HTTP: every failure leaves as `{"error": {...}}` JSON, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from scoring.errors import BundleUnreachable, InvalidInput, ModelLoadError, ScoringError

log = logging.getLogger(__name__)

# Werkzeug's own errors keep their status; these give them stable machine-readable codes.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
# Clearer than werkzeug's generic wording for the errors a client of this API can cause.
HTTP_MESSAGES = {
    413: "the request body is larger than this service accepts (GET /model shows the limits)",
    404: "no such endpoint (GET /openapi.json lists them)",
}
# Headers of a werkzeug error worth keeping: its HTML Content-Type is replaced by JSON.
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


@dataclass
class ApiError(Exception):
    """An error the client should see: HTTP status, a stable code, a message, and optional details."""

    status: int
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


def to_api_error(exc: BaseException) -> ApiError:
    """Map any exception to the ApiError the client sees; unknown ones become an opaque 500."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidInput):
        problems = [
            {"index": index, **({"id": record_id} if record_id is not None else {}), "reason": reason}
            for index, record_id, reason in exc.problems
        ]
        message = f"{len(problems)} record(s) failed validation" if problems else str(exc)
        return ApiError(422, "invalid_input", message, {"problems": problems})
    if isinstance(exc, (ModelLoadError, BundleUnreachable)):
        # The reason can name paths and buckets; it is logged, not sent.
        return ApiError(503, "model_unavailable", "the model is not loaded; see the service log", {})
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        headers = {name: value for name, value in exc.get_headers() if name in KEPT_HEADERS}
        message = HTTP_MESSAGES.get(status) or exc.description or exc.name
        return ApiError(status, HTTP_CODES.get(status, "http_error"), message, {}, headers)
    if isinstance(exc, ScoringError):
        return ApiError(500, "scoring_error", "the request could not be scored", {})
    return ApiError(500, "internal_error", "internal server error", {})


def register_error_handler(app: Flask, count_error: Callable[[int, str], None]) -> None:
    """One handler for everything (Flask also routes werkzeug's HTTPExceptions here); `count_error` sees each one."""

    def handle_error(exc: Exception) -> tuple[Response, int]:
        error = to_api_error(exc)
        if error.status >= 500:
            # Logged once, here, with the traceback only when the failure was not anticipated.
            unexpected = error.code == "internal_error"
            log.error("%s %s: %s", error.status, error.code, exc, exc_info=exc if unexpected else None)
        count_error(error.status, error.code)
        response = jsonify(error.body())
        response.headers.update(error.headers)
        return response, error.status

    app.register_error_handler(Exception, handle_error)
