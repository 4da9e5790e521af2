"""`scoring stream run`: the local event source that invokes the stream handler as Lambda would."""

from __future__ import annotations

import argparse

from scoring.settings import Settings
from scoring.stream.runner import DEFAULT_CHECKPOINTS, CheckpointStore, PollLimits, load_handler, run_kinesis, run_sqs


def register(commands: argparse._SubParsersAction) -> None:
    """Add `stream run`."""
    stream = commands.add_parser("stream", help="streaming: run the stream handler locally against Kinesis or SQS")
    run = stream.add_subparsers(dest="stream_command").add_parser(
        "run", help="poll a Kinesis stream or SQS queue and invoke the handler as Lambda would"
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--kinesis-stream", help="name of the input Kinesis stream")
    source.add_argument("--sqs-queue-url", help="URL of the input SQS queue")
    run.add_argument(
        "--function",
        help="a custom handler as FILE.py:FUNCTION (default: the scoring handler, built in-process from the "
        "SCORING_* settings as the Lambda function builds it)",
    )
    run.add_argument("--batch-size", type=int, default=100, help="records per invocation at most (default 100)")
    run.add_argument("--max-batches", type=int, help="stop after this many invocations")
    run.add_argument("--idle-timeout", type=float, help="stop after this many seconds without records")
    run.add_argument("--poll-seconds", type=float, default=1.0, help="wait between empty polls (SQS: long-poll time)")
    run.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, help="Kinesis checkpoint file (JSON)")
    run.add_argument("--starting-position", choices=("TRIM_HORIZON", "LATEST"), default="TRIM_HORIZON")
    run.add_argument(
        "--max-retries", type=int, default=2, help="Kinesis: retries of a failing record before skipping it"
    )
    run.set_defaults(handler=_run_command)


def _run_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.function:
        handler = load_handler(args.function)
    else:
        from scoring.stream.handler import build_handler  # lazy: the model stack loads only when a run starts

        handler = build_handler(settings)
    limits = PollLimits(max_batches=args.max_batches, idle_timeout=args.idle_timeout, poll_seconds=args.poll_seconds)
    if args.kinesis_stream:
        summary = run_kinesis(
            handler,
            args.kinesis_stream,
            checkpoints=CheckpointStore(args.checkpoints),
            limits=limits,
            batch_size=args.batch_size,
            starting_position=args.starting_position,
            max_retries=args.max_retries,
        )
    else:
        summary = run_sqs(handler, args.sqs_queue_url, batch_size=args.batch_size, limits=limits)
    print(f"{summary.batches} invocations, {summary.records} records, {summary.failed} reported as failed")
    return 0
