"""Prometheus metrics of one server, in their own registry, with cached label children for the hot path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

__all__ = ["ServerMetrics"]

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    """Prometheus metrics of one server, in their own registry (so several servers can live in one process).

    Parameters
    ----------
    prefix : str
        Metric name prefix, e.g. ``"aiforge_inference"``.

    Notes
    -----
    Metrics: ``<prefix>_latency_seconds{stage}`` (histogram), ``<prefix>_batch_size`` (histogram of rows per
    model run), ``<prefix>_queue_depth{model}`` (gauge, refreshed at scrape time through collect hooks) and
    ``<prefix>_requests_total{route,status}`` (counter). Label children are cached, so an update costs one
    histogram or counter operation.
    """

    def __init__(self, prefix: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(f"{prefix}_latency_seconds", "Request latency by stage, in seconds.", ["stage"],
                                 registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.batch_size = Histogram(f"{prefix}_batch_size", "Rows per model run (dynamic batch size).",
                                    registry=self.registry, buckets=_BATCH_BUCKETS)
        self.queue_depth = Gauge(f"{prefix}_queue_depth", "Requests waiting in a model's queue.", ["model"],
                                 registry=self.registry)
        self.requests = Counter(f"{prefix}_requests_total", "Requests answered, by route and status.",
                                ["route", "status"], registry=self.registry)
        self._stages: dict[str, Any] = {}
        self._counts: dict[tuple[str, str], Any] = {}
        self._hooks: list[Callable[[], None]] = []

    def stage(self, name: str) -> Any:
        """The latency histogram of one stage (``observe(seconds)`` on it is the cheapest way to record)."""
        child = self._stages.get(name)
        if child is None:
            child = self._stages[name] = self.latency.labels(stage=name)
        return child

    def observe(self, stage: str, seconds: float) -> None:
        """Record ``seconds`` spent in ``stage`` (e.g. "queue", "inference", "preprocess", "total")."""
        self.stage(stage).observe(seconds)

    def observe_batch(self, rows: int) -> None:
        """Record one model run of ``rows`` rows."""
        self.batch_size.observe(rows)

    def set_queue_depth(self, model: str, depth: int) -> None:
        """Set the number of requests waiting for ``model``."""
        self.queue_depth.labels(model=model).set(depth)

    def count(self, route: str, status: int | str) -> None:
        """Count one answered request."""
        key = (route, str(status))
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self.requests.labels(route=route, status=key[1])
        child.inc()

    def add_collect_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` before every scrape (to refresh gauges that are costly to keep current)."""
        self._hooks.append(hook)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        from prometheus_client import generate_latest

        for hook in self._hooks:
            hook()
        return generate_latest(self.registry)

    def response(self) -> Response:
        """A starlette response carrying :meth:`render`."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.render(), media_type=CONTENT_TYPE_LATEST)

    def asgi_app(self) -> ASGIApp:
        """An ASGI app that answers every request with the metrics (mount it at ``/metrics``)."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await self.response()(scope, receive, send)

        return app
