"""Launch the prediction service (or any WSGI app) under the chosen server: `python -m webservice.serve`.

    python -m webservice.serve                              # Granian, webservice.wsgi:app, 127.0.0.1:8000
    WEB_SERVER=gunicorn python -m webservice.serve          # gunicorn's gevent worker (webservice/gunicorn.conf.py)
    WEB_SERVER=gunicorn-gthread python -m webservice.serve  # gunicorn's threaded worker
    python -m webservice.serve bench.ceiling_app:app        # another app, same server and settings (bench/online.sh)

Granian was chosen by measurement (the README's Benchmarks, made by bench/online.sh, hold the figures): on
this project's requests it answers more than gunicorn's gevent worker at a lower p99, and clients that drip
their headers do not hold it up. It runs the WSGI app on real threads in each worker. The threaded gunicorn
worker (gunicorn-gthread) gives every connection a thread while it reads the request head, so a few slow
clients stop it: it is kept for comparison only, and the launcher warns when it is chosen.

Why a launcher and not the granian command: prometheus_client's multiprocess directory must be in the
environment before any worker imports it, and it must be removed when the server stops; the bind address
(loopback unless told otherwise), the worker count (the usable cores) and the header timeout are this
service's, read from the same variables whichever server runs.

Settings (environment): WEB_HOST (default 127.0.0.1; GUNICORN_HOST is read too), PORT (8000), WEB_WORKERS
(usable cores; GUNICORN_WORKERS is read too), WEB_THREADS (per worker: 64 under Granian, 8 under gunicorn;
see below), WEB_HEADER_TIMEOUT (5 s to send
the request line and headers), WEB_ACCESS_LOG (on; "off" turns it off), WEB_SERVER (granian).
Why 64 threads under Granian: a client that sends its body slowly holds a thread while the app reads it,
and 8 per worker were too few for the slow-body test (tests/webservice/test_serve.py), where 64 cost no
throughput (threads are started only when needed). Past that many slow clients a buffering proxy is the
answer: docker-compose.yml puts nginx in front.
Reloads: SIGHUP to this process restarts the workers one by one (each loads the model again), as
gunicorn's master does on SIGHUP; SIGTERM drains in-flight requests and stops.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SERVICE_APP = "webservice.wsgi:app"
GTHREAD_WARNING = (
    "warning: WEB_SERVER=gunicorn-gthread gives each connection a thread while it reads the request head, "
    "so a few clients sending their headers slowly stop every other request; use granian (the default) or "
    "gunicorn, or put a buffering proxy (nginx) in front"
)
SERVERS = ("granian", "gunicorn", "gunicorn-gthread")
GUNICORN_CONFIG = Path(__file__).with_name("gunicorn.conf.py")
# Set by gunicorn.conf.py: the app is built in gunicorn's master and forked (preload_app), so webservice.wsgi
# leaves the bundle retry to each worker's start (post_worker_init). Granian builds the app in each worker.
PRELOADED_APP_VARIABLE = "WEB_APP_PRELOADED"


def app_is_preloaded() -> bool:
    """Whether the app is being built in gunicorn's master, to be forked into the workers (gunicorn.conf.py)."""
    return os.environ.get(PRELOADED_APP_VARIABLE) == "1"


def usable_cores() -> int:
    """CPUs this process may use: its affinity mask, lowered to a container's cgroup v2 CPU quota if one is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/sys/fs/cgroup/cpu.max") as limits:
            quota, period = limits.read().split()
        if quota != "max":
            cores = min(cores, max(1, round(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here: the affinity mask is the limit
    return cores


@dataclass(frozen=True)
class ServeSettings:
    """How to serve: which server and app, where, with how many workers and threads."""

    server: str = "granian"
    app: str = SERVICE_APP
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 64
    header_timeout_s: int = 5
    access_log: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str], app: str | None = None) -> ServeSettings:
        """Settings from WEB_* (and the older GUNICORN_HOST, GUNICORN_WORKERS) variables; ValueError names a bad one."""

        def text(*names: str, default: str) -> str:
            for name in names:
                value = environ.get(name, "").strip()
                if value:
                    return value
            return default

        def number(*names: str, default: int, least: int = 1) -> int:
            raw = text(*names, default=str(default))
            if not raw.isdigit() or int(raw) < least:
                raise ValueError(f"{names[0]} must be a whole number of at least {least}")
            return int(raw)

        server = text("WEB_SERVER", default="granian")
        if server not in SERVERS:
            raise ValueError(f"WEB_SERVER must be one of {', '.join(SERVERS)}")
        return cls(
            server=server,
            app=app or SERVICE_APP,
            host=text("WEB_HOST", "GUNICORN_HOST", default="127.0.0.1"),
            port=number("PORT", default=8000),
            workers=number("WEB_WORKERS", "GUNICORN_WORKERS", default=usable_cores()),
            threads=number("WEB_THREADS", "GUNICORN_THREADS", default=64 if server == "granian" else 8),
            header_timeout_s=number("WEB_HEADER_TIMEOUT", default=5),
            access_log=text("WEB_ACCESS_LOG", default="on") != "off",
        )


def serve_granian(settings: ServeSettings) -> None:
    """Run Granian's WSGI server in this process (its main process) until SIGTERM or SIGINT."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    Granian(
        settings.app,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        blocking_threads=settings.threads,
        # A client that has not sent its request head within this time is disconnected (slow-header clients).
        http1_settings=HTTP1Settings(header_read_timeout=settings.header_timeout_s * 1000),
        log_access=settings.access_log,
        # A worker that dies (out of memory, a crash in native code) is replaced, as gunicorn's master does.
        respawn_failed_workers=True,
        # In-flight requests get this long to finish on SIGTERM or a reload before the worker is killed.
        workers_kill_timeout=30,
    ).serve()


def gunicorn_command(settings: ServeSettings) -> list[str]:
    """The gunicorn command line for the same settings (its config file reads them from the environment)."""
    return [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), settings.app]


def gunicorn_environment(settings: ServeSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment gunicorn.conf.py reads for these settings."""
    worker = "gthread" if settings.server == "gunicorn-gthread" else "webservice.worker.JsonErrorGeventWorker"
    return {
        **environ,
        "GUNICORN_BIND": f"{settings.host}:{settings.port}",
        "GUNICORN_WORKERS": str(settings.workers),
        "GUNICORN_THREADS": str(settings.threads),
        "GUNICORN_KEEPALIVE": str(settings.header_timeout_s),
        "GUNICORN_WORKER_CLASS": worker,
        **({} if settings.access_log else {"GUNICORN_ACCESS_LOG": "off"}),
    }


def main(argv: list[str]) -> int:
    """Serve the app named in argv (default the service) under WEB_SERVER; exit code 2 for bad settings."""
    try:
        settings = ServeSettings.from_env(os.environ, argv[0] if argv else None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.server == "gunicorn-gthread":
        print(GTHREAD_WARNING, file=sys.stderr, flush=True)  # once: gunicorn replaces this process next
    if settings.server != "granian":
        # gunicorn's own config sets up the metrics directory; exec so gunicorn's master gets the signals.
        os.execve(sys.executable, gunicorn_command(settings), gunicorn_environment(settings, os.environ))
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its samples here and /metrics sums them; set before any worker imports the app.
        own_metrics_dir = tempfile.mkdtemp(prefix="scoring-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    try:
        serve_granian(settings)
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
