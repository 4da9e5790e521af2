"""SQS as Lambda's event source mapping reads it: receive a batch, invoke, delete what was not reported."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from scoring import aws
from scoring.stream.runner.emulator import Handler, invoke
from scoring.stream.runner.polling import PollLimits, RunSummary, poll
from scoring.stream.wire import sqs_event_record

log = logging.getLogger(__name__)

SQS_MAX_RECEIVE = 10
SQS_MAX_WAIT_SECONDS = 20


def run_sqs(
    handler: Handler, queue_url: str, *, batch_size: int = 10, limits: PollLimits, client: Any = None
) -> RunSummary:
    """Receive batches from an SQS queue, invoke the handler, delete the messages it did not report."""
    client = client or aws.client("sqs")
    queue_arn = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    region = client.meta.region_name
    summary = RunSummary()
    wait_seconds = max(0, min(SQS_MAX_WAIT_SECONDS, int(limits.poll_seconds)))

    def step() -> int:
        messages = _receive(client, queue_url, batch_size, wait_seconds)
        if not messages:
            return 0
        records = [sqs_event_record(message, queue_arn, region) for message in messages]
        failed = invoke(handler, records, [m["MessageId"] for m in messages])
        retried = set(failed)
        _delete(client, queue_url, [m for m in messages if m["MessageId"] not in retried])
        summary.count(len(records), len(failed))
        return len(records)

    # A long poll already waits for messages; sleeping after it as well would only add latency.
    poll(step, replace(limits, poll_seconds=0.0) if wait_seconds else limits)
    return summary


def _receive(client: Any, queue_url: str, batch_size: int, wait_seconds: int) -> list[dict[str, Any]]:
    """Up to batch_size messages: the first receive long-polls, the rest only take what is already there."""
    messages: list[dict[str, Any]] = []
    while len(messages) < batch_size:
        response = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(SQS_MAX_RECEIVE, batch_size - len(messages)),
            WaitTimeSeconds=0 if messages else wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        received = response.get("Messages", [])
        if not received:
            break
        messages += received
    return messages


def _delete(client: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), SQS_MAX_RECEIVE):
        chunk = messages[start : start + SQS_MAX_RECEIVE]
        response = client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )
        for refused in response.get("Failed", []):
            # The message comes back after its visibility timeout and is scored again: at-least-once.
            log.warning("could not delete message %s: %s", chunk[int(refused["Id"])]["MessageId"], refused)
