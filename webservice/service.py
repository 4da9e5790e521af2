"""What one running app holds: settings, the model loaded once, probes and metrics."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app

from scoring.errors import BundleUnreachable, ModelLoadError
from scoring.model import BundleTrust, Manifest, ModelBundle, Predictor, RecordOutcome, load_bundle, score_records
from scoring.settings import Settings
from webservice.batching import RequestCoalescer
from webservice.metrics import Metrics
from webservice.model_slot import ModelSlot, ModelState
from webservice.prediction_log import OnlinePredictionLog
from webservice.readiness import DatabaseProbe

log = logging.getLogger(__name__)

EXTENSION_KEY = "scoring"


@dataclass(frozen=True)
class LoadedModel:
    """A predictor and the coalescer feeding it: everything /predict needs from the model."""

    predictor: Predictor
    coalescer: RequestCoalescer

    @property
    def manifest(self) -> Manifest:
        return self.predictor.bundle.manifest

    def score(self, records: Sequence[Any]) -> list[RecordOutcome]:
        """One outcome per record, scored together with whatever other requests of this process are waiting."""
        return self.coalescer.score(records)


@dataclass(frozen=True)
class Service:
    """The composition root's products, kept on the app (never in module globals)."""

    settings: Settings
    # The model, its OpenAPI document and the prediction log: replaced together when a retried load succeeds.
    slot: ModelSlot
    database: DatabaseProbe | None
    metrics: Metrics

    def current(self) -> ModelState:
        """What this request is served from: read once, so one request never mixes two states."""
        return self.slot.current()

    @property
    def model(self) -> LoadedModel | None:
        return self.current().model

    @property
    def openapi(self) -> dict[str, Any]:
        return self.current().openapi

    @property
    def prediction_log(self) -> OnlinePredictionLog | None:
        """Set when SCORING_PREDICTION_LOG_URL is and a model is loaded: each scored record is queued for the table."""
        return self.current().prediction_log


def require_model(state: ModelState) -> LoadedModel:
    """The state's model, or ModelLoadError while none is loaded (the log says why)."""
    if state.model is None:
        raise ModelLoadError("no model loaded")
    return state.model


def load_model(settings: Settings, bundle: ModelBundle | None) -> LoadedModel | None:
    """The model from `bundle`, or from settings.model_uri, warmed up; None (and one log line) if that fails.

    A service without its model still starts: /health answers, /ready says 503, and an orchestrator
    keeps traffic on the previous version instead of watching a crash loop. BundleUnreachable (the store
    cannot be reached now) is raised instead, for the caller to try again (webservice.model_slot).
    """
    try:
        if bundle is None:
            bundle = load_bundle(settings.model_uri, BundleTrust.from_settings(settings))
        predictor = Predictor(bundle)
        warm_up(predictor)
    except BundleUnreachable:
        raise
    except ModelLoadError as exc:
        log.error("model bundle not loaded: %s", exc)
        return None
    except Exception:
        # A model that cannot score one plausible record must not take traffic either.
        log.exception("model bundle loaded but its warm-up prediction failed")
        return None
    coalescer = RequestCoalescer(lambda records: score_records(predictor, records), settings.max_request_records)
    return LoadedModel(predictor, coalescer)


def warm_up(predictor: Predictor) -> None:
    """Score one made-up record, so lazy imports and caches fill before the fork, not on a client's request."""
    record: dict[str, Any] = {}
    for spec in predictor.schema.fields:
        if spec.type == "string":
            # A declared value, so the record passes validation and the model itself is exercised.
            record[spec.name] = spec.values[0] if spec.values else "warm-up"
        else:
            lowest = spec.minimum if spec.minimum is not None else 0
            record[spec.name] = math.ceil(lowest) if spec.type == "integer" else float(lowest)
    score_records(predictor, [record])


def start_retrying(app: Any) -> None:
    """Start this process's retry of an unreachable bundle store now, if `app` is this service (else nothing)."""
    service = getattr(app, "extensions", {}).get(EXTENSION_KEY)
    if isinstance(service, Service):
        service.slot.keep_retrying()


def current_service() -> Service:
    """The Service of the app handling this request."""
    return current_app.extensions[EXTENSION_KEY]
