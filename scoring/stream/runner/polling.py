"""How long a run polls, and what it did."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PollLimits:
    """When a run stops by itself: after so many invocations, or after so long without records."""

    max_batches: int | None = None
    idle_timeout: float | None = None
    poll_seconds: float = 1.0


@dataclass
class RunSummary:
    """What a run did: invocations, records handed to the handler, and items it reported as failed."""

    batches: int = 0
    records: int = 0
    failed: int = 0

    def count(self, records: int, failed: int) -> None:
        """Add one invocation of `records` records, `failed` of them reported."""
        self.batches += 1
        self.records += records
        self.failed += failed


def poll(step: Callable[[], int], limits: PollLimits) -> None:
    """Call `step` (one poll; returns records handled) until a limit is reached."""
    batches = 0
    idle_since = time.monotonic()
    while limits.max_batches is None or batches < limits.max_batches:
        handled = step()
        if handled:
            batches += 1
            idle_since = time.monotonic()
            continue
        if limits.idle_timeout is not None and time.monotonic() - idle_since >= limits.idle_timeout:
            return
        time.sleep(limits.poll_seconds)
