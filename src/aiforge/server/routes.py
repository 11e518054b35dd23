"""The routes every server has: ``/health/live``, ``/health/ready`` and ``/metrics``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.responses import Response

from aiforge.errors import AiforgeError
from aiforge.server.metrics import ServerMetrics
from aiforge.server.responses import error_response

__all__ = ["add_server_routes"]

_JSON = "application/json"
_LIVE = b'{"live":true}'
_READY = b'{"ready":true}'
_NOT_READY = b'{"ready":false}'

ReadyCheck = Callable[[], bool | Awaitable[bool]]


def add_server_routes(app: Any, *, ready: ReadyCheck, metrics: ServerMetrics | None = None,
                      health_prefixes: Sequence[str] = ("/health",)) -> None:
    """Add the health routes (and ``GET /metrics``) to a FastAPI ``app``.

    ``GET {prefix}/live`` answers 200 ``{"live": true}`` while the process runs. ``GET {prefix}/ready`` answers
    200 ``{"ready": true}`` when ``ready()`` is true, 503 ``{"ready": false}`` with ``Retry-After: 1`` while it is
    false, and the error table's answer when ``ready()`` raises an aiforge error (e.g. a
    :class:`~aiforge.errors.ServiceError` saying why the server will never get ready).

    Parameters
    ----------
    app : fastapi.FastAPI
        The application.
    ready : callable
        ``ready()`` -> bool, or an awaitable of one.
    metrics : ServerMetrics, optional
        Served at ``GET /metrics`` in Prometheus' text format.
    health_prefixes : sequence of str
        Where the health routes live, e.g. ``("/v2/health", "/health")`` for the inference server.

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> add_server_routes(app, ready=lambda: True)
    >>> sorted(route.path for route in app.routes if route.path.startswith("/health"))
    ['/health/live', '/health/ready']
    """

    async def live() -> Response:
        return Response(_LIVE, media_type=_JSON)

    async def is_ready() -> Response:
        try:
            answer = ready()
            if inspect.isawaitable(answer):
                answer = await answer
        except AiforgeError as exc:
            return error_response(exc)
        if answer:
            return Response(_READY, media_type=_JSON)
        return Response(_NOT_READY, 503, {"Retry-After": "1"}, media_type=_JSON)

    for prefix in health_prefixes:
        app.add_api_route(f"{prefix}/live", live, methods=["GET"], summary="Liveness: the process is up")
        app.add_api_route(f"{prefix}/ready", is_ready, methods=["GET"], summary="Readiness: requests can be served")
    if metrics is not None:
        app.add_api_route("/metrics", metrics.response, methods=["GET"], summary="Prometheus metrics")
