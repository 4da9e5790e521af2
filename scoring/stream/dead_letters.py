"""Dead letters: a record that can never succeed goes to an SQS queue with its reason, replayable.

A dead letter keeps the whole event record when it fits, so `{"Records": [letter["record"]]}` replays
it; a payload too large for SQS (Kinesis takes 1 MiB) is dropped and named, and the record's source
ARN and sequence number (or message id) say where to read it again. The body's shape is in wire.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from scoring.settings import Settings
from scoring.stream.sinks import OutputMessage, Sink, SqsSink
from scoring.stream.wire import dead_letter_body

log = logging.getLogger(__name__)

# A dead letter keeps its reason whole up to this many characters.
MAX_REASON_CHARS = 2000


def dead_letter(item_id: str, key: str, raw: Any, reason: str) -> OutputMessage:
    """The dead-letter message of an item that can never succeed, within SQS's limit; never raises."""
    reason = reason[:MAX_REASON_CHARS]
    for record, dropped in _records_to_keep(raw):
        try:
            return OutputMessage.of(item_id, key, key, dead_letter_body(key, item_id, reason, record, dropped))
        except (TypeError, ValueError):
            continue
    body = dead_letter_body(key, item_id[:MAX_REASON_CHARS], reason, None, "the event record")
    return OutputMessage.of(item_id, key, key, body)


def _records_to_keep(raw: Any) -> Iterator[tuple[Any, str | None]]:
    """The event record whole, then without its payload (naming what was dropped)."""
    yield raw, None
    if isinstance(raw, Mapping) and isinstance(raw.get("kinesis"), Mapping):
        data = raw["kinesis"].get("data")
        size = len(data) if isinstance(data, str) else 0
        yield {**raw, "kinesis": {**raw["kinesis"], "data": None}}, f"kinesis.data ({size} characters)"
    elif isinstance(raw, Mapping) and "body" in raw:
        body = raw.get("body")
        size = len(body) if isinstance(body, str) else 0
        yield {**raw, "body": None}, f"body ({size} characters)"


def make_dead_letters(settings: Settings) -> Sink | None:
    """The dead-letter queue SCORING_DEAD_LETTER_QUEUE_URL names; without one, say once what that costs."""
    if settings.dead_letter_queue_url:
        return SqsSink(settings.dead_letter_queue_url)
    # Called once per container (the cold start), so this is said once, not for every bad record.
    log.warning(
        "SCORING_DEAD_LETTER_QUEUE_URL is not set: records that can never succeed are reported in "
        "batchItemFailures and retried until the event source gives up (on Kinesis, every later record "
        "of their batch is read and published again)"
    )
    return None
