"""Request coalescing: concurrent requests in one worker process are scored by one `score_records` call.

A call costs about two milliseconds whatever its size, and a record a few microseconds more, so
scoring eight waiting requests together costs little more than scoring one. There is no timer
and no extra thread: the first request in scores at once; requests arriving meanwhile queue up,
and whichever of them takes the scoring lock next scores all that are queued (up to a record cap).
A lone request therefore never waits for company. Under a sync worker there is never company.

Under gevent (the worker webservice/gunicorn.conf.py runs) requests are greenlets taking turns on one
thread: scoring never yields, so nobody could queue while it runs. A request therefore yields once,
after queueing and before taking the lock, which lets every greenlet whose request has already
arrived queue behind it; then one of them scores them all. Nothing yields while holding a lock, so
a greenlet never waits on one (gunicorn.conf.py patches threading before the app is preloaded, so
these are gevent's locks, which would yield rather than block the worker anyway).

Outcomes are per record, so one request's bad record cannot fail a neighbour; if the scoring
call itself raises, each request of that group is retried alone, so only the culprit fails.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scoring.model import RecordOutcome

ScoreFn = Callable[[Sequence[Any]], list[RecordOutcome]]


@dataclass
class _Job:
    records: Sequence[Any]
    outcomes: list[RecordOutcome] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class RequestCoalescer:
    """Scores the records of concurrent callers together; each caller gets back only its own outcomes."""

    def __init__(self, score: ScoreFn, max_records: int):
        self._score = score
        self._max_records = max_records
        self._pending: deque[_Job] = deque()
        self._pending_lock = threading.Lock()
        self._scoring_lock = threading.Lock()

    def score(self, records: Sequence[Any]) -> list[RecordOutcome]:
        """The outcomes of `records`, positions counted from 0 as if they had been scored alone."""
        job = _Job(records)
        with self._pending_lock:
            self._pending.append(job)
        yield_to_ready_greenlets()
        while not job.done:
            with self._scoring_lock:
                # Another caller may have scored this job while we waited for the lock.
                if not job.done:
                    self._run(self._take_group())
        if job.error is not None:
            raise job.error
        return job.outcomes

    def _take_group(self) -> list[_Job]:
        """The oldest pending jobs, as many as fit under the record cap (always at least one)."""
        group: list[_Job] = []
        count = 0
        with self._pending_lock:
            while self._pending and (not group or count + len(self._pending[0].records) <= self._max_records):
                job = self._pending.popleft()
                group.append(job)
                count += len(job.records)
        return group

    def _run(self, group: list[_Job]) -> None:
        records = [record for job in group for record in job.records]
        try:
            outcomes = self._score(records)
        except Exception as exc:
            if len(group) == 1:
                group[0].error, group[0].done = exc, True
                return
            for job in group:
                self._run([job])
            return
        except BaseException as exc:
            # A worker being torn down: release every waiter rather than leave them spinning.
            for job in group:
                job.error, job.done = exc, True
            raise
        offset = 0
        for job in group:
            mine = outcomes[offset : offset + len(job.records)]
            job.outcomes = (
                [replace(outcome, position=outcome.position - offset) for outcome in mine] if offset else mine
            )
            offset += len(job.records)
            job.done = True


def yield_to_ready_greenlets() -> None:
    """Under gevent's monkey patching, let the other ready greenlets run once; with real threads, do nothing."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        gevent.sleep(0)
