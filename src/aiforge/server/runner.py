"""Run servers: uvicorn (and grpc.aio) in one event loop with graceful SIGTERM shutdown, in a process or a thread.

:func:`serve` runs a uvicorn server (uvloop + httptools) and optionally a ``grpc.aio`` server in one event loop; on
SIGTERM or SIGINT both stop accepting, in-flight requests finish (up to ``grace_s``), then ``on_shutdown`` runs
(e.g. the engine drains its batches). :func:`run` runs such a coroutine on uvloop; :class:`ServerThread` runs
:func:`serve` in a background thread (tests, benchmarks, notebooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import signal
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Self

from aiforge.errors import ServiceError

__all__ = ["READY_PREFIX", "ServerThread", "loop_factory", "open_socket", "run", "serve"]

#: Each server process prints a line starting with this once it accepts requests; `serve up` waits for it in every
#: replica's log (replicas share their ports, so the health routes cannot tell them apart).
READY_PREFIX = "ready: "

logger = logging.getLogger("aiforge.server")


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
    sock: socket.socket | None = None,
    log_level: str = "warning",
    lifespan: Literal["auto", "on", "off"] = "on",
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
    sock : socket.socket, optional
        An already listening socket (see :func:`open_socket`) to serve on instead of binding ``host:port``; it is
        closed on return.
    log_level : str, default "warning"
        uvicorn's log level.
    lifespan : {"on", "auto", "off"}, default "on"
        uvicorn's lifespan mode: "on" fails the start when the app's start-up fails; "auto" also serves apps that
        do not speak the lifespan protocol.

    Raises
    ------
    ServiceError
        ``host:port`` cannot be bound.
    """
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # serve() owns the signals, so shutdown order stays ours
            yield

    config = uvicorn.Config(app, host=host, port=port, http="httptools", lifespan=lifespan, access_log=False,
                            log_level=log_level, timeout_graceful_shutdown=max(1, math.ceil(grace_s)),
                            server_header=False, proxy_headers=False)
    server = _Server(config)
    loop = asyncio.get_running_loop()
    stopping = stop or asyncio.Event()
    if sock is None:
        sock = open_socket(host, port, reuse_port=reuse_port)
    else:
        port = sock.getsockname()[1]
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


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop factory, or ``None`` (asyncio's default loop) where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` (e.g. ``serve(app, ...)``) to completion in a new uvloop event loop (blocking)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main)


class ServerThread:
    """Run :func:`serve` in a background thread with its own event loop; stop it gracefully on :meth:`stop`.

    For tests, benchmarks and notebooks: the servers run exactly as in their processes, minus the signals.

    Parameters
    ----------
    app : ASGI application
        The REST application.
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port; read it from :attr:`port` or :attr:`url` after :meth:`start`.
    name : str
        The thread's name.
    **options
        More :func:`serve` arguments (``grpc_server``, ``grace_s``, ``on_shutdown``...).

    Examples
    --------
    >>> with ServerThread(app) as server:  # doctest: +SKIP
    ...     httpx.get(server.url + "/health/live").json()
    {'live': True}
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "aiforge-server",
                 **options: Any) -> None:
        self.app, self.host, self.port, self.name, self.options = app, host, port, name, options
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive (started and not stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 30.0) -> Self:
        """Start serving; return once the server accepts requests.

        Raises
        ------
        ServiceError
            The port cannot be bound, or the server stopped (e.g. its start-up failed) or did not listen within
            ``timeout`` seconds.
        """
        sock = open_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        listening = threading.Event()
        settled = threading.Event()
        failure: list[BaseException] = []

        def started() -> None:
            listening.set()
            settled.set()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.app, host=self.host, sock=sock, stop=self._stop, on_started=started, **self.options)

        def target() -> None:
            try:
                run(main())
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
            finally:
                settled.set()

        self._thread = threading.Thread(target=target, name=self.name, daemon=True)
        self._thread.start()
        settled.wait(timeout)
        if failure:
            self._thread.join(timeout)
            raise failure[0]
        if not listening.is_set():
            self.stop()
            raise ServiceError(f"the server on {self.url} stopped while starting or did not listen within "
                               f"{timeout:g} s; see the log above")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, let requests in flight finish, run ``on_shutdown``; wait for the thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is not None and loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout)
        self._thread = self._loop = self._stop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
