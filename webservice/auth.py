"""Optional API key: when SCORING_API_KEY is set, guarded views answer 401 to requests without it."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any

from flask import request

from webservice.errors import ApiError
from webservice.service import current_service

API_KEY_HEADER = "X-API-Key"
BEARER = "Bearer "


def presented_key(headers: Any) -> str | None:
    """The key sent as `X-API-Key: k` or `Authorization: Bearer k`, if any."""
    key = headers.get(API_KEY_HEADER)
    if key:
        return key
    authorization = headers.get("Authorization", "")
    return authorization[len(BEARER) :] if authorization.startswith(BEARER) else None


def requires_api_key(view: Callable[..., Any]) -> Callable[..., Any]:
    """Guard a view with the configured key; without one configured, the view is open."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        expected = current_service().settings.api_key
        if expected:
            key = presented_key(request.headers)
            # compare_digest: the time taken must not reveal how much of a guess was right.
            if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
                raise ApiError(
                    401,
                    "unauthorized",
                    f"a valid API key is required ({API_KEY_HEADER} header or Authorization: Bearer)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return view(*args, **kwargs)

    return guarded
