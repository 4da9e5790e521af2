"""Stream events in, prediction messages out: the transport-agnostic half of the Lambda handler.

A Kinesis record carries its payload base64-encoded in `kinesis.data` and is named by its sequence
number; an SQS record carries it as text in `body` and is named by its message id. Whatever one
record holds, it fails alone while the rest of the batch is scored in one vectorised predict. Decoding
the records is decode.py; those shapes, the answer's and the published message's are defined in wire.py.

A record that can never succeed (undecodable, invalid, unencodable) goes to the dead-letter queue
with its reason and counts as handled; only what a retry can fix (a write) is reported in
`batchItemFailures`, because Lambda restarts a Kinesis batch at the lowest reported sequence number
and would publish every later record again. Each message carries a stable `key` (from the event
source ARN and the item id), so a retried batch republishes under the same keys: consumers dedupe
on it, and an SQS FIFO output uses it as the deduplication id.

With a prediction log (SCORING_PREDICTION_LOG_URL), every published prediction is queued for
prediction_log with its record's inputs; the handler writes the queue at the end of the invocation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any

from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.record_ids import canonical_id
from scoring.model.records import RecordOutcome, score_records
from scoring.monitoring.prediction_log import PredictionLog
from scoring.stream import wire
from scoring.stream.dead_letters import dead_letter
from scoring.stream.decode import StreamItem, decode_event, manifest_inputs
from scoring.stream.sinks import KINESIS_MAX_PARTITION_KEY, ItemFailure, OutputMessage, Sink

log = logging.getLogger(__name__)

__all__ = ["StreamResult", "handle_event", "score_event"]


@dataclass(frozen=True)
class StreamResult:
    """What one event produced, in event order: its items, messages to publish, and items that failed."""

    items: list[StreamItem] = field(default_factory=list)
    outputs: list[OutputMessage] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    # Each output's item and outcome, in the order of `outputs` (for the prediction log).
    scored: list[tuple[StreamItem, RecordOutcome]] = field(default_factory=list)


def _output(manifest: Manifest, item: StreamItem, outcome: RecordOutcome) -> OutputMessage:
    # Echo the id as sent (256 stays a number), so consumers can match it to their record; shard by its
    # canonical text, so 256 and "256" keep one shard (by the record key if there is none or Kinesis could not take it).
    text = canonical_id(item.record_id)[0]
    partition_key = text if text and len(text) <= KINESIS_MAX_PARTITION_KEY else item.key
    message = wire.prediction_message(manifest, item.record_id, outcome.answer(manifest.output), item.key)
    return OutputMessage.of(item.item_id, item.key, partition_key, message)


def score_event(predictor: Predictor, event: Any) -> StreamResult:
    """Decode every record, score the valid ones in one predict, encode their messages; say which items failed."""
    manifest = predictor.bundle.manifest
    items = decode_event(event, manifest.id_field, manifest_inputs(manifest))
    reasons = {position: item.error for position, item in enumerate(items) if item.error is not None}
    positions = [position for position, item in enumerate(items) if item.record is not None]
    outcomes = _score_each_alone_if_needed(predictor, [items[p].record for p in positions])
    outputs: list[OutputMessage] = []
    scored: list[tuple[StreamItem, RecordOutcome]] = []
    for position, outcome in zip(positions, outcomes, strict=True):
        if not outcome.ok or outcome.prediction is None:
            reasons[position] = outcome.error or "not scored"
            continue
        try:
            outputs.append(_output(manifest, items[position], outcome))
            scored.append((items[position], outcome))
        except Exception as exc:
            # Encoded before anything is written: one unencodable message fails its record, not a half-published batch.
            reasons[position] = f"the prediction message could not be built ({type(exc).__name__}: {str(exc)[:200]})"
    failures = [ItemFailure(items[p].item_id, reasons[p]) for p in sorted(reasons)]
    return StreamResult(items=items, outputs=outputs, failures=failures, scored=scored)


def _score_each_alone_if_needed(predictor: Predictor, records: list[Any]) -> list[RecordOutcome]:
    """Outcomes of one vectorised scoring; if it raises, each record scored alone so only the culprit fails.

    When several records all fail alone too, the fault is not a record's (the model, memory): re-raise, so
    the batch is retried rather than dead-lettered. A lone record cannot tell the two apart; it fails
    alone (dead-lettered, replayable) rather than holding its shard in a retry loop.
    """
    try:
        return score_records(predictor, records)
    except Exception as batch_error:
        log.warning(
            "scoring %d records at once raised %s; scoring each alone", len(records), type(batch_error).__name__
        )
        outcomes: list[RecordOutcome] = []
        raised = 0
        for position, record in enumerate(records):
            try:
                outcomes.append(replace(score_records(predictor, [record])[0], position=position))
            except Exception as exc:
                raised += 1
                reason = f"the record could not be scored ({type(exc).__name__})"
                outcomes.append(RecordOutcome(position, None, error=reason))
        if raised == len(records) > 1:
            raise
        return outcomes


def handle_event(
    predictor: Predictor,
    event: Any,
    sink: Sink | None,
    dead_letters: Sink | None = None,
    prediction_log: PredictionLog | None = None,
) -> dict[str, Any]:
    """Score an event, publish to `sink` (if any), dead-letter what can never succeed, answer Lambda.

    The answer holds `batchItemFailures` (what a retry may fix: failed writes, and without a dead-letter
    queue the bad records too) and `predictions` (the messages published, or produced when there is no sink).
    """
    result = score_event(predictor, event)
    write_failures = sink.write(result.outputs) if sink is not None and result.outputs else []
    not_written = {failure.item_id for failure in write_failures}
    for failure in write_failures:
        log.warning("stream item %s: output not written: %s", failure.item_id, failure.reason)
    # A refusal no retry changes (SQS's sender fault: a message it will never take) is dead-lettered too.
    refused_for_good = [f for f in write_failures if not f.retryable]
    permanent = result.failures + [replace(f, reason=f"output not written: {f.reason}") for f in refused_for_good]
    for failure in result.failures:
        log.warning("stream item %s failed: %s", failure.item_id, failure.reason)
    reported = [failure for failure in write_failures if failure.retryable]
    reported += _not_dead_lettered(result.items, permanent, dead_letters)
    published = [message.body for message in result.outputs if message.item_id not in not_written]
    if prediction_log is not None:
        _log_published(prediction_log, predictor.bundle.manifest, result, not_written)
    return wire.batch_response(_in_event_order(result.items, reported), published)


def _log_published(
    prediction_log: PredictionLog, manifest: Manifest, result: StreamResult, not_written: AbstractSet[str]
) -> None:
    """Queue the published predictions (a retry republishes the rest, and logs them then), named by the id as sent."""
    kept = [(item, outcome) for item, outcome in result.scored if item.item_id not in not_written]
    outcomes = [
        outcome
        if outcome.record_id is not None or item.record_id is None
        else replace(outcome, record_id=str(item.record_id))
        for item, outcome in kept
    ]
    prediction_log.record(outcomes, [item.record for item, _ in kept], manifest.name, manifest.version)


def _not_dead_lettered(
    items: Sequence[StreamItem], permanent: list[ItemFailure], dead_letters: Sink | None
) -> list[ItemFailure]:
    """The permanent failures still to report: all of them without a dead-letter queue, else those it refused."""
    if dead_letters is None or not permanent:
        return permanent
    by_id = {item.item_id: item for item in items}
    letters = [dead_letter(f.item_id, by_id[f.item_id].key, by_id[f.item_id].raw, f.reason) for f in permanent]
    refused = dead_letters.write(letters)
    for failure in refused:
        log.warning(
            "stream item %s: dead letter not written, reported for a retry: %s", failure.item_id, failure.reason
        )
    return refused


def _in_event_order(items: Sequence[StreamItem], failures: list[ItemFailure]) -> list[str]:
    """Failed item ids, once each, in the order the event lists them (Kinesis resumes from the first)."""
    failed = {failure.item_id for failure in failures}
    return [item_id for item_id in dict.fromkeys(item.item_id for item in items) if item_id in failed]
