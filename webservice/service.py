"""What one running app holds: settings, the predictor loaded once, probes and metrics."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app

from scoring.bundle import ModelBundle, load_bundle
from scoring.errors import ModelLoadError
from scoring.predict import Predictor
from scoring.records import RecordOutcome, score_records
from scoring.settings import Settings
from webservice.batching import RequestCoalescer
from webservice.metrics import Metrics
from webservice.readiness import DatabaseProbe

log = logging.getLogger(__name__)

EXTENSION_KEY = "scoring"


@dataclass
class Service:
    """The composition root's products, kept on the app (never in module globals)."""

    settings: Settings
    predictor: Predictor | None
    load_error: str | None
    database: DatabaseProbe | None
    metrics: Metrics
    openapi: dict[str, Any]
    coalescer: RequestCoalescer | None

    def require_predictor(self) -> Predictor:
        """The predictor, or ModelLoadError when the bundle could not be loaded at startup."""
        if self.predictor is None:
            raise ModelLoadError(self.load_error or "no model bundle loaded")
        return self.predictor

    def score(self, records: Sequence[Any]) -> list[RecordOutcome]:
        """One outcome per record, scored together with whatever other requests of this process are waiting."""
        self.require_predictor()
        assert self.coalescer is not None  # built whenever the predictor is
        return self.coalescer.score(records)


def load_predictor(settings: Settings, bundle: ModelBundle | None) -> tuple[Predictor | None, str | None]:
    """A predictor for `bundle`, or for the bundle at settings.model_uri; on failure, None and the reason.

    A service without its model still starts: /health answers, /ready says 503 and why, and an
    orchestrator keeps traffic on the previous version instead of watching a crash loop.
    """
    try:
        predictor = Predictor(bundle if bundle is not None else load_bundle(settings.model_uri))
    except ModelLoadError as exc:
        log.error("model bundle not loaded: %s", exc)
        return None, str(exc)
    warm_up(predictor)
    return predictor, None


def warm_up(predictor: Predictor) -> None:
    """Score one made-up record, so lazy imports and caches fill before the fork, not on a client's request."""
    record: dict[str, Any] = {}
    for spec in predictor.schema.fields:
        if spec.type == "string":
            record[spec.name] = "warm-up"
        else:
            lowest = spec.minimum if spec.minimum is not None else 0
            record[spec.name] = math.ceil(lowest) if spec.type == "integer" else float(lowest)
    score_records(predictor, [record])


def coalescer_for(predictor: Predictor | None, settings: Settings) -> RequestCoalescer | None:
    """A coalescer scoring with `predictor`, capped at one maximal request's worth of records per call."""
    if predictor is None:
        return None
    return RequestCoalescer(lambda records: score_records(predictor, records), settings.max_request_records)


def current_service() -> Service:
    """The Service of the app handling this request."""
    return current_app.extensions[EXTENSION_KEY]
