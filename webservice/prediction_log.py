"""The web service's side of the prediction log (scoring.monitoring.prediction_log): one per worker process.

Every scored record of a successful /predict is queued with its inputs, prediction, model version and
time; a background thread writes the queue to prediction_log. The request never waits: a full queue
drops records, and those (and any a database error loses) are counted in /metrics as
scoring_prediction_log_dropped_total{reason="queue_full"|"database"}.

The log (and its writer thread) is made on the first record a process logs, not when the app is
built: gunicorn builds the app in its master before forking, and a thread started there would not
exist in the workers.
"""

from __future__ import annotations

import atexit
import os
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter

from scoring.model import RecordOutcome
from scoring.monitoring.prediction_log import PredictionLog

LogFactory = Callable[[], PredictionLog]


class OnlinePredictionLog:
    """This process's prediction log, made on first use, with its losses mirrored into a Prometheus counter."""

    def __init__(self, make_log: LogFactory, dropped: Counter, sample: float = 1.0):
        self._make_log = make_log
        self._sample = sample
        self._dropped = dropped
        self._log: PredictionLog | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._seen = {"queue_full": 0, "database": 0}

    @classmethod
    def from_url(cls, url: str, inputs: Sequence[str], dropped: Counter, sample: float = 1.0) -> OnlinePredictionLog:
        """A log writing the given input fields of each record to the prediction_log table at `url`, for a
        `sample` fraction of the requests (whole requests, chosen at random: an unbiased sample of traffic)."""
        return cls(lambda: PredictionLog.from_url(url, "online", fields=list(inputs)), dropped, sample)

    def record(self, outcomes: Sequence[RecordOutcome], records: Sequence[Any], name: str, version: str) -> None:
        """Queue the request's scored records (if the request is in the sample); never blocks on the database."""
        if self._sample < 1.0 and random.random() >= self._sample:
            return
        log = self._current()
        log.record(outcomes, records, name, version)
        self._count_losses(log)

    def _current(self) -> PredictionLog:
        if self._log is None or self._pid != os.getpid():
            with self._lock:
                if self._log is None or self._pid != os.getpid():
                    self._log, self._pid = self._make_log(), os.getpid()
                    self._seen = {"queue_full": 0, "database": 0}
                    # A worker stopping normally (SIGTERM, a reload) writes what is still queued.
                    atexit.register(self._log.close)
        return self._log

    def _count_losses(self, log: PredictionLog) -> None:
        # Two integer reads per request; the lock and the counter only when something new was lost.
        if log.dropped == self._seen["queue_full"] and log.failed == self._seen["database"]:
            return
        totals = {"queue_full": log.dropped, "database": log.failed}
        with self._lock:
            for reason, total in totals.items():
                if total > self._seen[reason]:
                    self._dropped.labels(reason).inc(total - self._seen[reason])
                    self._seen[reason] = total
