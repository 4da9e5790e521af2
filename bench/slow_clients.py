"""The slow-client probe of issue 10: do other requests get answered while slow clients hold connections?

    python bench/slow_clients.py URL BODY.json [--kind headers|bodies] [--clients 40] [--probes 10]

`headers`: each slow client sends a request line, then one header line a second, never finishing its head.
`bodies`: each sends a complete head announcing a 4 KB body, then one byte of it a second.
Meanwhile PROBES ordinary POST /predict requests are sent one after another, each on a new connection,
each given 10 s. Prints one line: "<kind> clients=<n>: <answered>/<probes> answered, p50 <ms>, max <ms>".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BODY_BYTES = 4096


@contextmanager
def slow_clients(host: str, port: int, count: int, kind: str) -> Iterator[int]:
    """`count` connections dripping their request head (headers) or body (bodies), one piece a second."""
    sockets = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            sock = socket.create_connection((host, port), timeout=5)
            head = b"POST /predict HTTP/1.1\r\nHost: slow\r\n"
            if kind == "bodies":
                head += f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n".encode()
            sock.sendall(head)
            sockets.append(sock)
    stopped = threading.Event()

    def drip() -> None:
        line = 0
        while not stopped.wait(1.0):
            line += 1
            piece = b" " if kind == "bodies" else f"X-Drip-{line}: x\r\n".encode()
            for sock in sockets:
                with contextlib.suppress(OSError):  # the server may have cut it off: its right
                    sock.sendall(piece)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        time.sleep(1.5)  # let every slow client be accepted and start dripping
        yield len(sockets)
    finally:
        stopped.set()
        dripper.join(timeout=5)
        for sock in sockets:
            sock.close()


def probe(url: str, body: bytes, timeout: float) -> float | None:
    """Seconds one POST /predict on a fresh connection took to get a 200, or None."""
    request = urllib.request.Request(
        f"{url}/predict", data=body, headers={"Content-Type": "application/json", "Connection": "close"}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return time.perf_counter() - started if response.status == 200 else None
    except (OSError, urllib.error.URLError):
        return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body")
    parser.add_argument("--kind", choices=("headers", "bodies"), default="headers")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--probes", type=int, default=10)
    args = parser.parse_args(argv)
    body = Path(args.body).read_bytes()
    json.loads(body)  # a bad body file should fail here, not look like a server that stopped answering
    host, port = args.url.removeprefix("http://").split(":")
    with slow_clients(host, int(port), args.clients, args.kind) as held:
        times = [probe(args.url, body, 10.0) for _ in range(args.probes)]
    answered = [t for t in times if t is not None]
    p50 = f"{statistics.median(answered) * 1e3:.1f}" if answered else "-"
    worst = f"{max(answered) * 1e3:.1f}" if answered else "-"
    print(f"{args.kind} clients={held}: {len(answered)}/{args.probes} answered, p50 {p50} ms, max {worst} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
