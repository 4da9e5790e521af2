"""`scoring stream run`: the local event source that invokes the Lambda handler as Lambda would."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add `stream run`."""
    from scoring.stream.runner import add_stream_commands

    add_stream_commands(commands)
