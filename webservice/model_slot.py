"""The model a worker serves, swapped in once: loaded at startup, or later if the bundle store was unreachable then."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scoring.errors import BundleUnreachable

if TYPE_CHECKING:
    from webservice.prediction_log import OnlinePredictionLog
    from webservice.service import LoadedModel

log = logging.getLogger(__name__)

# A throttled or briefly unreachable store is asked again soon; one that stays down is asked once a minute.
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0


def backoff_delays(first: float = FIRST_RETRY_SECONDS, cap: float = MAX_RETRY_SECONDS) -> Iterator[float]:
    """Seconds to wait before each further attempt: `first`, doubling, never more than `cap`; endless."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


@dataclass(frozen=True)
class ModelState:
    """Everything that depends on the loaded model, replaced as one object so a request never sees half of it."""

    model: LoadedModel | None
    openapi: dict[str, Any]
    prediction_log: OnlinePredictionLog | None = None


class ModelSlot:
    """Holds the current ModelState; while the bundle store is unreachable, loads the model again in the background.

    Only BundleUnreachable is retried: a missing, invalid or untrusted bundle (ModelLoadError) stays as
    it is until the service is restarted. Each process that serves requests runs its own retry loop,
    started by `keep_retrying` as the process starts (create_app, or gunicorn's post_worker_init when
    the app was built in its master: a thread started before a fork does not run in the child), and
    before any request in case nothing started it (create_app's before_request). Requests read
    `current()`, a single reference assigned once by the loop, so they need no lock.
    """

    def __init__(
        self,
        attempt: Callable[[], ModelState],
        unloaded: ModelState,
        delays: Callable[[], Iterable[float]] = backoff_delays,
    ) -> None:
        self._attempt = attempt
        self._delays = delays
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # set by stop(): the loop ends at its next wait, none starts again
        self._retrying_in: int | None = None  # the process whose retry loop runs
        try:
            self._state = attempt()
            self._unreachable = False
        except BundleUnreachable as exc:
            log.error("model bundle not loaded: %s; trying again in the background", exc)
            self._state = unloaded
            self._unreachable = True

    def current(self) -> ModelState:
        """The state to serve this request from."""
        return self._state

    def keep_retrying(self) -> None:
        """Start this process's retry loop if the store was unreachable and none runs here yet (cheap otherwise)."""
        if not self._unreachable or self._retrying_in == os.getpid() or self._stopped.is_set():
            return
        with self._lock:
            pid = os.getpid()
            if not self._unreachable or self._retrying_in == pid or self._stopped.is_set():
                return
            self._retrying_in = pid
            threading.Thread(target=self._retry, name="model-bundle-retry", daemon=True).start()

    def stop(self) -> None:
        """End this slot's retry loop at its next wait, and start none again (tests, embedders that drop the app)."""
        self._stopped.set()

    def _retry(self) -> None:
        number = 1
        for number, delay in enumerate(self._delays(), start=2):
            if self._stopped.wait(delay):
                return
            try:
                state = self._attempt()
            except BundleUnreachable as exc:
                log.warning("model bundle still unreachable (attempt %d): %s", number, exc)
                continue
            except Exception:
                # Building what depends on the model failed: no retry changes code, so stop (as startup would).
                log.exception("model bundle loaded on attempt %d but the service could not use it", number)
                self._unreachable = False
                return
            self._state = state
            self._unreachable = False
            if state.model is not None:
                # A warning, like the failures before it, so the log that showed them also shows they ended.
                log.warning("model bundle loaded on attempt %d; the service is ready", number)
            return
        if not self._stopped.is_set():
            # Only a finite `delays` ends: say so, or the log would just fall silent while the model stays missing.
            log.error("model bundle retries stopped after attempt %d; restart the service to try again", number)
            self._stopped.set()
