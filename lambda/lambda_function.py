"""AWS Lambda entry point for Kinesis and SQS events: every record of a batch is scored in one predict.

Everything expensive happens once per container, at import (the cold start): settings, the verified
model bundle (a path baked into the image, or s3:// via SCORING_MODEL_URI) and the output clients,
composed by scoring.stream.handler.build_handler. The event source mapping must set
FunctionResponseTypes=["ReportBatchItemFailures"]; without it Lambda ignores `batchItemFailures` and
retries or drops the whole batch for one bad record.
"""

from __future__ import annotations

import logging
from typing import Any

from scoring.errors import MalformedEvent
from scoring.settings import Settings
from scoring.stream.handler import build_handler

HANDLER = build_handler(Settings.from_env())

log = logging.getLogger(__name__)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Score a Kinesis or SQS batch: bad records dead-lettered, what a retry may fix in batchItemFailures."""
    try:
        return HANDLER(event, context)
    except MalformedEvent as exc:
        # Not a stream event (a list, a string, records without ids): nothing can be reported alone, so the
        # invocation fails as a whole, named in one line; the runtime answers errorType MalformedEvent.
        log.error("event refused: %s", exc)
        raise
