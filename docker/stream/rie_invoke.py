"""Invoke the Lambda container over HTTP, as the Lambda service does, for `scoring stream run`.

The local event source (scoring/stream/runner/, `scoring stream run`) polls Kinesis or SQS and calls a handler it
loads from a file. Given this file (`--function /srv/stream/rie_invoke.py:lambda_handler`), that
handler hands each batch to the function running in the Lambda image under its runtime interface
emulator (RIE), through the same Invoke API path AWS uses; the runner then reads the function's
`batchItemFailures` and commits as Lambda would. A function error, a timeout or a non-JSON answer
raises, which the runner treats as a failed batch (retried), as Lambda does.

As a script it is a healthcheck:
  rie_invoke.py warm URL   in the Lambda container: the first success invokes the function with an
                           empty batch (the cold start: model bundle loaded, output client made);
                           later checks only connect, so they never compete with the runner's invokes
  rie_invoke.py reachable  in a runner: the emulator's port accepts connections

Stdlib only, so it runs with any Python 3 image.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://lambda:8080/2015-03-31/functions/function/invocations"
WARM_MARKER = Path("/tmp/rie-warm")
# The emulator runs one invocation at a time and answers 400 to a second one meanwhile.
BUSY_STATUS = 400


class FunctionError(RuntimeError):
    """The function failed, timed out or answered something that is not a handler's result."""


def invoke_url() -> str:
    return os.environ.get("LAMBDA_INVOKE_URL") or DEFAULT_URL


def invoke(
    event: Any,
    url: str,
    *,
    timeout: float = 330.0,
    busy_retries: int = 50,
    busy_wait: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """POST the event to the emulator and return the handler's answer; raise FunctionError otherwise."""
    body = json.dumps(event).encode()
    for attempt in range(busy_retries + 1):
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return parse_answer(response.read(), response.headers.get("X-Amz-Function-Error"))
        except urllib.error.HTTPError as exc:
            if exc.code == BUSY_STATUS and attempt < busy_retries:
                sleep(busy_wait)
                continue
            raise FunctionError(f"invoke answered HTTP {exc.code}: {exc.read()[:300]!r}") from exc
    raise AssertionError("unreachable")


def parse_answer(payload: bytes, function_error: str | None = None) -> Any:
    """The handler's return value from an Invoke response body; FunctionError for an error or a timeout."""
    try:
        answer = json.loads(payload) if payload.strip() else None
    except ValueError:
        # e.g. the emulator's plain-text "Task timed out after 300.00 seconds"
        raise FunctionError(f"the function answered no JSON: {payload[:300]!r}") from None
    is_error_payload = isinstance(answer, dict) and "errorType" in answer and "batchItemFailures" not in answer
    if function_error or is_error_payload:
        detail = answer.get("errorMessage", answer) if isinstance(answer, dict) else answer
        raise FunctionError(f"the function failed: {detail}")
    return answer


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    """The runner's handler: the remote function's answer to this batch."""
    return invoke(event, invoke_url())


def port_open(url: str, timeout: float = 2.0) -> bool:
    """True when the URL's host accepts a TCP connection on its port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def warm(url: str, marker: Path = WARM_MARKER) -> bool:
    """Healthy once an empty batch has been scored; afterwards, healthy while the port is open."""
    if marker.exists():
        return port_open(url)
    try:
        answer = invoke({"Records": []}, url, timeout=120.0, busy_retries=0)
    except (OSError, FunctionError) as exc:
        print(f"not warm yet: {exc}", file=sys.stderr)
        return False
    if not isinstance(answer, dict) or answer.get("batchItemFailures") != []:
        print(f"unexpected answer to an empty batch: {answer!r}", file=sys.stderr)
        return False
    marker.touch()
    return True


def main(argv: list[str]) -> int:
    """`warm [URL]` or `reachable [URL]`: exit 0 when healthy."""
    if not argv or argv[0] not in ("warm", "reachable"):
        print(__doc__, file=sys.stderr)
        return 2
    url = argv[1] if len(argv) > 1 else invoke_url()
    healthy = warm(url) if argv[0] == "warm" else port_open(url)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
