"""The gunicorn worker the service runs: gevent, answering gunicorn's own HTTP errors as JSON.

Why gevent: a gthread worker gives each connection a thread while it reads the request head, so a
few clients dripping one header line a second took every thread (24 of them stopped nearly all
other requests on 2 workers x 8 threads). Under gevent such a client holds a greenlet, a few KB,
and gunicorn bounds the wait for each request head by the keep-alive timeout.

Why a subclass: requests the HTTP parser refuses (a bad request line or header, a URL over 4 KB,
too many headers) never reach Flask, and gunicorn answers them with an HTML page. Here they get the
service's `{"error": {"code", "message"}}` body instead, with the same status, and without echoing
any of the request back.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

# Statuses gunicorn's parser answers, with the service's codes and messages (nothing from the request).
PARSER_ERRORS = {
    400: ("bad_request", "the request is not valid HTTP/1.1: malformed request line or header"),
    403: ("forbidden", "the request is forbidden"),
    414: ("uri_too_long", "the request line is longer than this service accepts"),
    417: ("expectation_failed", "the Expect header asks for something this service does not do"),
    431: ("header_fields_too_large", "too many header fields, or one that is too long"),
    501: ("not_implemented", "the request uses a transfer coding this service does not support"),
}
INTERNAL_ERROR = ("internal_error", "internal server error")


class _CapturedSocket:
    """Stands in for the client socket while gunicorn writes its HTML error, keeping the bytes instead."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.written = bytearray()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def gettimeout(self) -> float:
        return 0.0  # so gunicorn's write_nonblock leaves the real socket's blocking mode alone

    def sendall(self, data: bytes) -> None:
        self.written += data


def status_of(response: bytes) -> int:
    """The status code of an HTTP/1.x response's first line; 500 if it cannot be read."""
    parts = response.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 500


def json_error_response(status: int) -> bytes:
    """A complete HTTP/1.1 response carrying the service's JSON error for this status; the connection closes."""
    code, message = PARSER_ERRORS.get(status, INTERNAL_ERROR)
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    reason = "Internal Server Error" if status == 500 else "Error"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorGeventWorker(GeventWorker):
    """gunicorn's gevent worker; errors raised before the app runs are answered as JSON."""

    def handle_error(self, req, client, addr, exc):
        """Let gunicorn classify and log the error as usual, then send its status with a JSON body."""
        captured = _CapturedSocket(client)
        super().handle_error(req, captured, addr, exc)
        try:
            util.write_nonblock(client, json_error_response(status_of(bytes(captured.written))))
        except Exception:
            self.log.debug("Failed to send error message.")
