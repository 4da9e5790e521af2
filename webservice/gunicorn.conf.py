"""gunicorn settings for the prediction service: `gunicorn -c webservice/gunicorn.conf.py webservice.wsgi:app`.

Every value can be overridden from the environment (GUNICORN_* or PORT), so the same file serves
`WEB_SERVER=gunicorn python -m webservice.serve`, the tests and bench/online.sh. Only the launcher's
module is imported from the webservice package: prometheus_client must not be imported before
PROMETHEUS_MULTIPROC_DIR is set below.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

# The launcher's module holds the one rule for the worker count; it imports nothing of the app (nor
# prometheus_client), so reading it here keeps the metrics directory's order below.
from webservice.serve import PRELOADED_APP_VARIABLE, usable_cores


def env_int(name: str, default: int) -> int:
    """An integer from the environment; unset or empty keeps the default."""
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def env_text(name: str, default: str) -> str:
    """A string from the environment; unset or empty keeps the default."""
    return os.environ.get(name, "").strip() or default


# Workers: scoring is CPU work under the GIL, so one process per usable core; more processes only take
# turns on the same cores.
workers = env_int("GUNICORN_WORKERS", usable_cores())
# gevent, with JSON bodies for the errors gunicorn answers itself (webservice/worker.py). A connection costs
# a greenlet, not a thread, so clients that send their request slowly cannot take the workers (a threaded
# worker has a fixed number of threads for them to hold). Requests waiting in a worker are still scored
# together by one call (webservice/batching.py). GUNICORN_WORKER_CLASS=gthread (with GUNICORN_THREADS)
# brings back the threaded worker, with gunicorn's HTML errors.
worker_class = env_text("GUNICORN_WORKER_CLASS", "webservice.worker.JsonErrorGeventWorker")
if "gevent" in worker_class.lower():
    # Patched here, in the master, before the preloaded app imports anything: patched only in each worker
    # after the fork (gunicorn's default), the app's locks, threads and sockets made at preload stay real
    # ones, and an idle worker never noticed SIGTERM (it hung until killed instead of stopping gracefully).
    from gevent import monkey

    monkey.patch_all()
threads = env_int("GUNICORN_THREADS", 8)
# Connections one worker holds at once; past that, new ones wait in the listen backlog.
worker_connections = env_int("GUNICORN_WORKER_CONNECTIONS", 1000)
# Loopback unless told otherwise: the image sets GUNICORN_HOST=0.0.0.0, where a container needs it.
bind = env_text("GUNICORN_BIND", f"{env_text('GUNICORN_HOST', '127.0.0.1')}:{env_int('PORT', 8000)}")
# The model is loaded once in the master, before the fork; workers share its pages copy-on-write.
preload_app = True
# So the app built in the master starts no retry of an unreachable bundle store there (post_worker_init does).
os.environ[PRELOADED_APP_VARIABLE] = "1"
# A worker silent for this long is killed and replaced; the slowest legitimate request takes milliseconds.
timeout = env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Under gevent this also bounds the wait for each request's head (request line and headers): a client
# that has not sent it within this many seconds is disconnected. Never 0, which would remove that bound.
keepalive = max(1, env_int("GUNICORN_KEEPALIVE", 5))
# gunicorn's defaults, stated: a request line over 4094 bytes is a 414, over 100 header fields a 431.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# Access log to stdout by default, where containers are expected to write; "off" turns it off.
accesslog = None if env_text("GUNICORN_ACCESS_LOG", "-") == "off" else env_text("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = env_text("GUNICORN_LOG_LEVEL", "info")
# Heartbeat files in memory: a container's overlay filesystem can stall them and get healthy workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn >= 25 opens a control socket at one fixed path per user; several instances on a host
# (tests, benchmarks, `make serve`) would take it from each other, and nothing here uses it.
control_socket_disable = True

# Prometheus in multiprocess mode: each worker writes its samples under this directory and /metrics sums
# them. It must be set before the app (and prometheus_client) is imported, which is why it is set here.
_own_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = tempfile.mkdtemp(prefix="scoring-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


def post_worker_init(worker):
    """Start this worker's retry of a bundle store unreachable at preload now, not at its first request.

    Each worker retries on its own; started at the first request instead, a worker that no request had
    reached yet stayed unloaded (503) after another one had loaded and made /ready say 200.
    """
    # Imported by the preload only when the app is the service (not, say, bench.ceiling_app): nothing to start.
    service = sys.modules.get("webservice.service")
    if service is not None:
        service.start_retrying(worker.wsgi)


def child_exit(server, worker):
    """Drop a dead worker's live gauges so they stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory this file created."""
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
