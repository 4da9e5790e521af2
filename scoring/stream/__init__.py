"""Streaming: Kinesis and SQS events in, prediction messages out, dead letters aside, and a local event source."""
