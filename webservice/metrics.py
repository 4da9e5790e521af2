"""Prometheus metrics: request latency, records predicted, errors by code; correct under several gunicorn workers.

Each gunicorn worker is its own process, so a scrape reaching one worker would see only its share.
When PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it before the app is imported),
every worker writes its samples there and /metrics sums them across workers; create_app reads it
once, through Settings, and hands it to Metrics.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

# Single-record predictions take about a millisecond; the buckets resolve that and still see a stall.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.5, 5.0)
# Label values come from a fixed list: a client choosing the method, path or status must not be able to
# add a time series per request (8,000 random methods once made /metrics 136,111 lines long).
OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})
KNOWN_STATUSES = frozenset({200, 400, 401, 403, 404, 405, 408, 413, 414, 415, 422, 429, 431, 500, 502, 503, 504})


def method_label(method: str) -> str:
    """The HTTP method, or "other" for one HTTP does not define."""
    return method if method in KNOWN_METHODS else OTHER


def status_label(status: int) -> str:
    """The status code as text, or "other" for one this service is not expected to answer."""
    return str(status) if status in KNOWN_STATUSES else OTHER


class Metrics:
    """The service's metric families, in a registry of their own so each app (and each test) starts from zero.

    `multiproc_dir` is prometheus_client's multiprocess directory when the app runs under several workers.
    """

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "scoring_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint, method and status.",
            ["endpoint", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "scoring_predictions",
            "Records predicted, by model name and version.",
            ["model_name", "model_version"],
            registry=self.registry,
        )
        self.errors = Counter(
            "scoring_http_errors",
            "Error responses, by HTTP status and error code.",
            ["status", "code"],
            registry=self.registry,
        )
        self.prediction_log_dropped = Counter(
            "scoring_prediction_log_dropped",
            "Scored records the prediction log lost: its queue was full, or the database refused their batch.",
            ["reason"],
            registry=self.registry,
        )

    def count_predictions(self, count: int, model_name: str, model_version: str) -> None:
        """Add `count` records to the predictions counter of this model."""
        self.predictions.labels(model_name, model_version).inc(count)

    def count_error(self, status: int, code: str) -> None:
        """Add one error response with this status and error code."""
        self.errors.labels(status_label(status), code).inc()

    def exposition(self) -> Response:
        """The Prometheus text exposition: summed over workers in multiprocess mode, this app's own otherwise."""
        if self.multiproc_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
        else:
            registry = self.registry
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def time_requests(app: Flask, metrics: Metrics) -> None:
    """Observe every request's latency, including those answered by the error handler."""

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def observe_latency(response: Response) -> Response:
        started = g.get("request_started")
        if started is not None:
            # The rule, not the path: unknown paths must not create a label value each.
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            labels = (endpoint, method_label(request.method), status_label(response.status_code))
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)
        return response
