"""What Lambda does around a handler: the context object, the invocation, and reading its answer."""

from __future__ import annotations

import importlib.util
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from scoring.errors import ConfigError, ScoringError
from scoring.stream.wire import reported_failures

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class LocalContext:
    """The parts of Lambda's context object a handler usually reads."""

    function_name: str = "local-stream-runner"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        """The ARN Lambda would give the function."""
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's timeout, as Lambda's context answers."""
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def load_module(path: str | Path) -> ModuleType:
    """Execute a handler file afresh, as a new container imports it (a folder like `lambda/` is not a package)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"handler file {path} does not exist (give --function PATH.py:FUNCTION)")
    module_spec = importlib.util.spec_from_file_location(f"stream_handler_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load_handler(spec: str) -> Handler:
    """The function `spec` names as "path/to/file.py:function" (lambda_handler when no name is given)."""
    path, _, name = spec.partition(":")
    handler = getattr(load_module(path), name or "lambda_handler", None)
    if not callable(handler):
        raise ConfigError(f"{Path(path)} has no function {name or 'lambda_handler'!r}")
    return handler


def invoke(handler: Handler, records: list[dict[str, Any]], item_ids: list[str]) -> list[str]:
    """Invoke the handler on one batch; the item ids Lambda would retry, in batch order.

    As Lambda does: an exception, or a response naming an item not in the batch, fails the whole batch.
    """
    try:
        response = handler({"Records": records}, LocalContext())
    except ScoringError as exc:
        # Refused on purpose and named (e.g. a MalformedEvent: a record without an id): one line says it,
        # a traceback would not.
        log.error("the handler refused the batch of %d records (%s); the whole batch fails", len(records), exc)
        return list(item_ids)
    except Exception:
        log.exception("the handler raised; the whole batch of %d records fails", len(records))
        return list(item_ids)
    failed = reported_failures(response)
    if failed is None or not failed <= set(item_ids):
        log.error("the handler's response is not a valid partial-batch response; the whole batch fails")
        return list(item_ids)
    return [item_id for item_id in item_ids if item_id in failed]
