"""A local event source: poll a Kinesis stream or SQS queue and invoke a handler as Lambda would.

It builds the exact event shapes Lambda sends (wire.py), reads the partial-batch response the way
Lambda does with ReportBatchItemFailures, and only then commits: SQS messages are deleted unless
reported; a Kinesis shard is checkpointed up to (not including) its first reported record, and
polling resumes from that record. This is how the streaming path runs without AWS: point
AWS_ENDPOINT_URL at moto or LocalStack, or leave it unset for real AWS.

One job per module: emulator (Lambda's context, the invoke and its reading of the answer, loading a
custom handler from a file), polling (limits and the run's summary), checkpoints (the Kinesis
checkpoint file), sqs_poller and kinesis_poller. The command line is scoring/cli/stream.py.
"""

from scoring.stream.runner.checkpoints import DEFAULT_CHECKPOINTS, CheckpointStore
from scoring.stream.runner.emulator import Handler, LocalContext, invoke, load_handler, load_module
from scoring.stream.runner.kinesis_poller import KinesisPoller, run_kinesis
from scoring.stream.runner.polling import PollLimits, RunSummary, poll
from scoring.stream.runner.sqs_poller import run_sqs

__all__ = [
    "DEFAULT_CHECKPOINTS",
    "CheckpointStore",
    "Handler",
    "KinesisPoller",
    "LocalContext",
    "PollLimits",
    "RunSummary",
    "invoke",
    "load_handler",
    "load_module",
    "poll",
    "run_kinesis",
    "run_sqs",
]
