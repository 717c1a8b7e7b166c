"""Prometheus metrics of one server: requests, latency, errors, batches, model version, log.

Each app gets its own registry (tests start several servers in one process).
The middleware that records them is plain ASGI, so it adds microseconds, and it
is also where API keys are checked: one pass over every request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from loopml.core import http
from loopml.core.http import ASGIApp, Message, Receive, Scope, Send

HEALTH_PATHS = frozenset({"/ping", "/health", "/v2/health/live", "/v2/health/ready"})
_FIXED = frozenset(
    {
        "/predict",
        "/invocations",
        "/feedback",
        "/metadata",
        "/metrics",
        "/version",
        "/v2",
        "/docs",
        "/openapi.json",
        *HEALTH_PATHS,
    }
)


def endpoint_of(path: str) -> str:
    """A bounded label for ``path``: model names and versions never become label values."""
    if path in _FIXED:
        return path
    if path.startswith("/v2/models/"):
        tail = path.rsplit("/", 1)[-1]
        if tail in {"infer", "ready"}:
            return f"/v2/models/{{name}}/{tail}"
        return "/v2/models/{name}"
    return "other"


class ServerMetrics:
    """The metric families, registered on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "loopml_requests", "HTTP requests served.", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "loopml_request_latency_seconds",
            "Time from request start to response start.",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.errors = Counter(
            "loopml_request_errors",
            "Requests answered with a 4xx or 5xx.",
            ["endpoint", "kind"],
            registry=r,
        )
        self.predictions = Counter("loopml_predictions", "Rows scored.", registry=r)
        self.batch_rows = Histogram(
            "loopml_batch_rows",
            "Rows per predict call after micro-batching.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
            registry=r,
        )
        self.model_version = Gauge(
            "loopml_model_version", "Version number of the model serving.", ["model"], registry=r
        )
        self.swaps = Gauge("loopml_model_swaps", "Hot swaps to a new version so far.", registry=r)
        self.load_failures = Gauge(
            "loopml_model_load_failures", "Attempts to load a new version that failed.", registry=r
        )
        self.journal_backlog_rows = Gauge(
            "loopml_prediction_journal_backlog_rows",
            "Prediction log entries journaled and not yet shipped to the store.",
            registry=r,
        )
        self.journal_backlog_segments = Gauge(
            "loopml_prediction_journal_backlog_segments",
            "Journal segment files not yet shipped.",
            registry=r,
        )
        self.journal_oldest_age = Gauge(
            "loopml_prediction_journal_oldest_unshipped_age_seconds",
            "Age of the oldest journaled entry not yet in the store (0 when none).",
            registry=r,
        )
        self.journal_shipped = Gauge(
            "loopml_prediction_journal_shipped",
            "Prediction log entries shipped to the store by this process.",
            registry=r,
        )
        self.store_up = Gauge(
            "loopml_prediction_store_up",
            "1 when the prediction store answered the last call, 0 when it refused or hung.",
            registry=r,
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(endpoint, str(status)),
                self.latency.labels(endpoint),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, "server" if status >= 500 else "client").inc()

    def set_journal(self, status: dict[str, Any]) -> None:
        """The prediction journal's gauges from ``PredictionLogger.status()``."""
        self.journal_backlog_rows.set(status["backlog_rows"])
        self.journal_backlog_segments.set(status["backlog_segments"])
        self.journal_oldest_age.set(status["oldest_unshipped_age_s"] or 0.0)
        self.journal_shipped.set(status["shipped"])
        self.store_up.set(1 if status["database_up"] else 0)

    def set_model(self, name: str, version: str) -> None:
        try:
            self.model_version.labels(name).set(float(version))
        except ValueError:
            self.model_version.labels(name).set(-1)


DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class GateMiddleware:
    """API-key check (all but health), body-size cap and request metrics, as one pure ASGI layer.

    The body cap (``LOOPML_SERVE_MAX_BODY_BYTES``) answers 413 before a byte
    is parsed: on the declared Content-Length, or counting a chunked upload as
    it arrives. Requests without a body pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServerMetrics,
        api_keys: Sequence[str],
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.keys = [key.encode() for key in api_keys]
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        endpoint = endpoint_of(path)
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.observe(endpoint, status, time.perf_counter() - started)
            await send(message)

        if self.keys and path not in HEALTH_PATHS and not http.bearer_ok(scope, self.keys):
            await http.unauthorized(record)
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            replayed = await http.limit_body(
                scope, receive, record, self.max_body_bytes, "LOOPML_SERVE_MAX_BODY_BYTES"
            )
            if replayed is None:
                return
            receive = replayed
        try:
            await self.app(scope, receive, record)
        except Exception:
            if status == 500:  # failed before answering: count it, then let uvicorn answer 500
                self.metrics.observe(endpoint, 500, time.perf_counter() - started)
            raise
