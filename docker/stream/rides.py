"""The streaming path by hand: put a ride on the input stream or queue, read the predictions stream.

In the compose stack (the runner containers have this folder and the names in their environment):
  docker compose exec stream-runner python3 /srv/stream/rides.py send '{"ride": {...}, "ride_id": 256}'
  docker compose exec stream-runner python3 /srv/stream/rides.py send --sqs '{"PULocationID": 10, ...}'
  docker compose exec stream-runner python3 /srv/stream/rides.py read

Without Docker, the same against moto or AWS: set AWS_ENDPOINT_URL (or not) and pass --stream/--queue-url.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any


def send(payload: str, *, stream: str | None, queue_url: str | None, client: Any = None) -> str:
    """Put one JSON payload on the Kinesis stream (or the SQS queue); its sequence number (or message id)."""
    import boto3

    record = json.loads(payload)  # refuse what is not JSON before it reaches the function
    if queue_url:
        client = client or boto3.client("sqs")
        return client.send_message(QueueUrl=queue_url, MessageBody=payload)["MessageId"]
    client = client or boto3.client("kinesis")
    key = str(record.get("ride_id", "0")) if isinstance(record, dict) else "0"
    return client.put_record(StreamName=stream, Data=payload.encode(), PartitionKey=key)["SequenceNumber"]


def read(stream: str, client: Any = None) -> Iterator[Any]:
    """Every record on every shard of the stream, oldest first, decoded from JSON."""
    import boto3

    client = client or boto3.client("kinesis")
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            yield from (json.loads(record["Data"]) for record in response["Records"])
            if not response["Records"] and not response.get("MillisBehindLatest"):
                break
            iterator = response.get("NextShardIterator")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rides.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("send", help="put one JSON payload on the input stream (or queue)")
    put.add_argument("payload", help='e.g. {"ride": {"PULocationID": 10, ...}, "ride_id": 256}')
    put.add_argument("--stream", default=os.environ.get("RIDE_EVENTS_STREAM"))
    put.add_argument("--sqs", action="store_true", help="send to the SQS queue instead")
    put.add_argument("--queue-url", default=os.environ.get("RIDE_EVENTS_QUEUE_URL"))
    get = commands.add_parser("read", help="print every prediction on the output stream")
    get.add_argument("--stream", default=os.environ.get("PREDICTIONS_STREAM"))
    args = parser.parse_args(argv)
    if args.command == "send":
        if args.sqs and not args.queue_url:
            parser.error("--sqs needs the queue: --queue-url URL (or RIDE_EVENTS_QUEUE_URL)")
        if not args.sqs and not args.stream:
            parser.error("name the stream: --stream NAME (or RIDE_EVENTS_STREAM)")
        print(send(args.payload, stream=args.stream, queue_url=args.queue_url if args.sqs else None))
    else:
        if not args.stream:
            parser.error("name the stream: --stream NAME")
        for prediction in read(args.stream):
            print(json.dumps(prediction))
    return 0


if __name__ == "__main__":
    sys.exit(main())
