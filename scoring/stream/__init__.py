"""Streaming: Kinesis and SQS events in, prediction messages out, dead letters aside, and a local event source.

wire.py         the wire formats: Kinesis/SQS event records, the batchItemFailures response, published messages
events.py       decode an event into items, score them in one predict, publish, answer (handle_event)
sinks.py        output messages and where they go: Kinesis PutRecords, SQS SendMessageBatch, with retries
dead_letters.py what can never succeed, with its reason, to the dead-letter queue
handler.py      build_handler(settings): the one composition the Lambda function and `scoring stream run` use
runner/         the local event source: emulator, polling, checkpoints, sqs_poller, kinesis_poller
"""
