"""The `scoring` command line: demo setup, model bundles, batch scoring, staging, the database, streams, monitoring.

Each sub-package's commands register themselves here; argparse lives only in this package.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from scoring.cli import batch, demo, model, monitor, stream
from scoring.errors import ScoringError
from scoring.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `scoring` console script; returns the process exit code."""
    # Warnings and errors only: the command prints its own one-line summary.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings) or 0)
    except ScoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, each added by the module that runs it."""
    parser = argparse.ArgumentParser(prog="scoring", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    for commands_of in (demo, model, batch, stream, monitor):
        commands_of.register(commands)
    return parser
