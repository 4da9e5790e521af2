"""docker/stream/rie_invoke.py: the runner's handler that invokes the Lambda container over HTTP.

A small HTTP server plays the runtime interface emulator: it answers the Invoke API path with scripted
responses, or with the real handler's answer, so the runner -> HTTP -> handler path runs for real.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scoring.stream.runner import invoke as runner_invoke
from scoring.stream.runner import load_handler
from tests.compose.stack import ROOT

RIE_INVOKE = ROOT / "docker/stream/rie_invoke.py"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
Reply = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def rie() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rie_invoke", RIE_INVOKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeEmulator:
    """Answers POSTs on the Invoke API path with `respond(event)`; keeps the events it received."""

    def __init__(self, respond: Callable[[Any], Reply]):
        self.respond = respond
        self.events: list[Any] = []
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                emulator.events.append(event)
                status, headers, body = emulator.respond(event) if self.path == INVOKE_PATH else (404, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{INVOKE_PATH}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def emulator() -> Iterator[Callable[[Callable[[Any], Reply]], FakeEmulator]]:
    started: list[FakeEmulator] = []

    def start(respond: Callable[[Any], Reply]) -> FakeEmulator:
        started.append(FakeEmulator(respond))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


def scripted(*replies: Reply) -> Callable[[Any], Reply]:
    pending = list(replies)
    return lambda event: pending.pop(0)


def ok(answer: Any) -> Reply:
    return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()


SQS_EVENT = {"Records": [{"messageId": "m1", "body": "{}"}, {"messageId": "m2", "body": "{}"}]}


def test_a_handlers_answer_comes_back_as_it_was_sent(rie, emulator):
    fake = emulator(scripted(ok({"batchItemFailures": [{"itemIdentifier": "m2"}], "predictions": []})))
    assert rie.invoke(SQS_EVENT, fake.url) == {"batchItemFailures": [{"itemIdentifier": "m2"}], "predictions": []}
    assert fake.events == [SQS_EVENT]


@pytest.mark.parametrize(
    "reply",
    [
        ok({"errorMessage": "model.bin sha256 mismatch", "errorType": "ModelLoadError", "stackTrace": []}),
        (200, {"X-Amz-Function-Error": "Unhandled"}, b'{"errorMessage": "boom"}'),
        (200, {}, b"Task timed out after 300.00 seconds"),
        (502, {}, b'{"errorMessage": "init failed"}'),
    ],
    ids=["error payload", "function error header", "timeout text", "init failure"],
)
def test_a_failed_invocation_raises(rie, emulator, reply):
    fake = emulator(scripted(reply))
    with pytest.raises(rie.FunctionError):
        rie.invoke(SQS_EVENT, fake.url)


def test_a_busy_emulator_is_asked_again(rie, emulator):
    # The emulator runs one invocation at a time and answers 400 to another one meanwhile.
    fake = emulator(scripted((400, {}, b""), (400, {}, b""), ok({"batchItemFailures": []})))
    waits: list[float] = []
    assert rie.invoke(SQS_EVENT, fake.url, busy_wait=0.5, sleep=waits.append) == {"batchItemFailures": []}
    assert waits == [0.5, 0.5] and len(fake.events) == 3


def test_busy_for_too_long_raises(rie, emulator):
    fake = emulator(scripted(*[(400, {}, b"")] * 3))
    with pytest.raises(rie.FunctionError, match="400"):
        rie.invoke(SQS_EVENT, fake.url, busy_retries=2, sleep=lambda _: None)


def runner_handler(monkeypatch: pytest.MonkeyPatch, url: str) -> Callable[..., Any]:
    """The handler exactly as `scoring stream run --function docker/stream/rie_invoke.py:lambda_handler` loads it."""
    monkeypatch.setenv("LAMBDA_INVOKE_URL", url)
    return load_handler(f"{RIE_INVOKE}:lambda_handler")


def test_the_runner_retries_only_what_the_remote_function_reported(emulator, monkeypatch):
    fake = emulator(scripted(ok({"batchItemFailures": [{"itemIdentifier": "m2"}]})))
    handler = runner_handler(monkeypatch, fake.url)
    assert runner_invoke(handler, SQS_EVENT["Records"], ["m1", "m2"]) == ["m2"]


def test_the_runner_retries_the_whole_batch_when_the_remote_function_fails(emulator, monkeypatch):
    # An error payload has no batchItemFailures: passed through, the runner would take it for full success.
    fake = emulator(scripted(ok({"errorMessage": "boom", "errorType": "RuntimeError"})))
    handler = runner_handler(monkeypatch, fake.url)
    assert runner_invoke(handler, SQS_EVENT["Records"], ["m1", "m2"]) == ["m1", "m2"]


def test_over_http_the_real_handler_answers_as_it_does_in_process(emulator, monkeypatch, cold_start, recorded_event):
    # Given the real Lambda handler behind the fake emulator, and the same handler in process
    function = cold_start().lambda_handler
    fake = emulator(lambda event: ok(function(event, None)))
    handler = runner_handler(monkeypatch, fake.url)
    event = recorded_event("kinesis_rides.json")
    # When the recorded Kinesis batch goes through each
    over_http = handler(event, None)
    in_process = function(recorded_event("kinesis_rides.json"), None)
    # Then the answers are identical, predictions and reported failures alike
    assert over_http == in_process
    assert over_http["predictions"], "the recorded event should score at least one ride"


@pytest.fixture
def recorded_event() -> Callable[[str], dict]:
    events = ROOT / "tests/lambda_fn/events"
    return lambda name: json.loads((events / name).read_text())


def test_warm_scores_an_empty_batch_once_then_only_checks_the_port(rie, emulator, tmp_path: Path):
    fake = emulator(scripted(ok({"batchItemFailures": [], "predictions": []})))
    marker = tmp_path / "warm"
    assert rie.warm(fake.url, marker) and marker.exists()
    assert fake.events == [{"Records": []}]
    assert rie.warm(fake.url, marker) and len(fake.events) == 1
    fake.close()
    assert not rie.warm(fake.url, marker)


def test_warm_stays_unhealthy_while_the_cold_start_fails(rie, emulator, tmp_path: Path):
    fake = emulator(scripted(ok({"errorMessage": "no bundle", "errorType": "ModelLoadError"})))
    marker = tmp_path / "warm"
    assert not rie.warm(fake.url, marker) and not marker.exists()


def test_the_script_names_its_checks(rie, emulator):
    fake = emulator(scripted())
    assert rie.main(["reachable", fake.url]) == 0
    assert rie.main(["healthy?"]) == 2
