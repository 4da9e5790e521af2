"""The stream handler, composed once from Settings: the verified bundle, the output sink and the dead letters.

The Lambda function builds it at its cold start and `scoring stream run` builds it in-process by
default, so both run the same composition; neither loads code from a path. With SCORING_PREDICTION_LOG_URL
set, each invocation's published predictions are written to prediction_log before it returns: a Lambda
is frozen between invocations, so no background thread could write them later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scoring.model.bundle import load_bundle
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust
from scoring.monitoring.prediction_log import PredictionLog
from scoring.settings import Settings
from scoring.stream.dead_letters import make_dead_letters
from scoring.stream.events import handle_event
from scoring.stream.sinks import Sink, make_sink


@dataclass(frozen=True)
class StreamHandler:
    """A Lambda-style handler around a loaded model: call it with a Kinesis or SQS event and a context."""

    predictor: Predictor
    sink: Sink | None
    dead_letters: Sink | None
    prediction_log: PredictionLog | None = None

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Score the event's records, publish and dead-letter them; the partial-batch response (wire.py).

        The prediction log is written before returning; a database failure there is counted and logged
        by the log itself and never fails a record."""
        try:
            return handle_event(self.predictor, event, self.sink, self.dead_letters, self.prediction_log)
        finally:
            if self.prediction_log is not None:
                self.prediction_log.flush()


def build_handler(settings: Settings) -> StreamHandler:
    """Load and verify the bundle SCORING_MODEL_URI names, and make the sink and dead-letter queue settings name."""
    predictor = Predictor(load_bundle(settings.model_uri, BundleTrust.from_settings(settings)))
    return StreamHandler(
        predictor, make_sink(settings), make_dead_letters(settings), make_prediction_log(settings, predictor)
    )


def make_prediction_log(settings: Settings, predictor: Predictor) -> PredictionLog | None:
    """The stream's prediction log, written synchronously at the end of each invocation; None when not configured."""
    if not settings.prediction_log_url:
        return None
    inputs = [spec.name for spec in predictor.bundle.manifest.inputs]
    return PredictionLog.from_url(settings.prediction_log_url, "stream", background=False, fields=inputs)
