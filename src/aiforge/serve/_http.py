"""What the inference and APS servers share: error responses, bearer auth, Prometheus metrics, and the runner.

:func:`serve` runs a uvicorn server (uvloop + httptools) and optionally a ``grpc.aio`` server in one event loop; on
SIGTERM or SIGINT both stop accepting, in-flight requests finish (up to ``grace_s``), then ``on_shutdown`` runs
(e.g. the engine drains its batches).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import logging
import math
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response

from aiforge.errors import AiforgeError, InvalidInput, NotFound, Overloaded, ServiceError

__all__ = [
    "READY_PREFIX", "BearerAuth", "ServerMetrics", "error_response", "error_status", "json_response", "open_socket",
    "serve",
]

#: Each server process prints a line starting with this once it accepts requests; `serve up` waits for it in every
#: replica's log (replicas share their ports, so the health routes cannot tell them apart).
READY_PREFIX = "ready: "

logger = logging.getLogger("aiforge.serve")

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (numpy arrays allowed)."""
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status_code, headers,
                    media_type="application/json")


def error_status(exc: BaseException) -> int:
    """The HTTP status of an exception: 400 bad input, 404 not found, 503 overloaded/unavailable, 500 otherwise."""
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ServiceError):
        return 503
    return 500


def retry_after(exc: Overloaded) -> str:
    """The ``Retry-After`` header value (whole seconds, at least 1) of an :class:`Overloaded` error."""
    return str(max(1, math.ceil(exc.retry_after_s)))


def error_response(exc: BaseException) -> Response:
    """The JSON error response ``{"error": "..."}`` for ``exc``, with ``Retry-After`` when it is :class:`Overloaded`.

    Errors aiforge raises on purpose carry their own message; anything else is a 500 that names the exception type.
    """
    status = error_status(exc)
    if isinstance(exc, AiforgeError):
        message = str(exc)
    else:
        logger.error("internal error", exc_info=exc)
        message = f"internal server error: {type(exc).__name__}: {exc}"
    headers = {"Retry-After": retry_after(exc)} if isinstance(exc, Overloaded) else None
    return Response(orjson.dumps({"error": message}), status, headers, media_type="application/json")


# ---------------------------------------------------------------------------------------------------------- auth

_OPEN_PREFIXES = ("/health", "/v2/health")
_UNAUTHORIZED = orjson.dumps(
    {"error": "missing or wrong bearer token; send the header 'Authorization: Bearer <token>'"}
)


class BearerAuth:
    """ASGI middleware that requires ``Authorization: Bearer <token>`` on every route but health checks and metrics.

    Parameters
    ----------
    app : ASGI application
        The application to protect.
    token : str or None
        The expected token; ``None`` (or empty) turns auth off.

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.add_middleware(BearerAuth, token="s3cret")
    """

    def __init__(self, app: Any, token: str | None = None) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None

    def allowed(self, value: bytes | str | None) -> bool:
        """Whether an ``Authorization`` header value carries the token (always true when auth is off)."""
        if self._expected is None:
            return True
        if value is None:
            return False
        if isinstance(value, str):
            value = value.encode()
        return hmac.compare_digest(value, self._expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._expected is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/metrics" or path.startswith(_OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        value = None
        for key, header in scope["headers"]:
            if key == b"authorization":
                value = header
                break
        if self.allowed(value):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(_UNAUTHORIZED)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]})
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})


# ---------------------------------------------------------------------------------------------------------- metrics

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


# ---------------------------------------------------------------------------------------------------------- runner


def open_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port``; with ``reuse_port`` several processes can share the port.

    Raises
    ------
    ServiceError
        The address cannot be bound (already in use, or not an address of this machine).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServiceError(f"cannot listen on {host}:{port}: {exc}; pass a host name or IP of this machine") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another port") from exc
    sock.setblocking(False)
    return sock


async def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    grpc_server: Any = None,
    grpc_port: int | None = None,
    reuse_port: bool = False,
    grace_s: float = 10.0,
    on_shutdown: Callable[[], Any] | None = None,
    on_started: Callable[[], Any] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` over HTTP (and ``grpc_server``) until SIGTERM/SIGINT or ``stop`` is set, then shut down cleanly.

    Parameters
    ----------
    app : ASGI application
        The REST application.
    host, port : str, int
        Where HTTP listens.
    grpc_server : grpc.aio.Server or callable returning one, optional
        An already bound gRPC server (or a factory, called inside the running loop) started and stopped with HTTP.
    grpc_port : int, optional
        The port ``grpc_server`` is bound to (for the log line only).
    reuse_port : bool, default False
        Bind with ``SO_REUSEPORT`` so several processes share ``port`` (the kernel spreads connections).
    grace_s : float, default 10
        How long in-flight requests may take to finish after the stop signal.
    on_shutdown : callable, optional
        Called (awaited if it returns an awaitable) after both servers stopped, e.g. ``engine.close``.
    on_started : callable, optional
        Called once both servers listen.
    stop : asyncio.Event, optional
        Setting it stops the servers like SIGTERM does (signals are only caught in the main thread).
    """
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # serve() owns the signals, so shutdown order stays ours
            yield

    config = uvicorn.Config(app, host=host, port=port, http="httptools", lifespan="on", access_log=False,
                            log_level="warning", timeout_graceful_shutdown=max(1, math.ceil(grace_s)),
                            server_header=False, proxy_headers=False)
    server = _Server(config)
    loop = asyncio.get_running_loop()
    stopping = stop or asyncio.Event()
    sock = open_socket(host, port, reuse_port=reuse_port)
    handled: list[signal.Signals] = []

    def on_signal() -> None:
        if stopping.is_set():  # a second signal: stop waiting for in-flight requests
            server.force_exit = True
        stopping.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
                handled.append(sig)
    grpc = None
    try:
        if grpc_server is not None:
            grpc = grpc_server() if callable(grpc_server) else grpc_server
            await grpc.start()
        http_task = loop.create_task(server.serve(sockets=[sock]))
        while not server.started and not http_task.done():
            await asyncio.sleep(0.01)
        if server.started:
            logger.info("listening on http://%s:%s%s", host, port, f" and grpc {host}:{grpc_port}" if grpc else "")
            if on_started is not None:
                on_started()
        stop_task = loop.create_task(stopping.wait())
        await asyncio.wait((http_task, stop_task), return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        server.should_exit = True
        waits: list[Any] = [http_task]
        if grpc is not None:
            waits.append(grpc.stop(grace_s))
        await asyncio.gather(*waits)
    finally:
        sock.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
        if on_shutdown is not None:
            result = on_shutdown()
            if inspect.isawaitable(result):
                await result
