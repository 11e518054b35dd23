"""The NLP API: a FastAPI app that tokenizes a list of texts per request, and ways to run it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from aiforge.errors import AiforgeError, InvalidInput, ServiceError
from aiforge.nlp._tokenize import Analyzer, get_analyzer

__all__ = ["NlpServer", "TokenizeRequest", "TokenizeResponse", "create_nlp_app", "serve_nlp"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TokenizeRequest(BaseModel):
    """Body of ``POST /v1/tokenize``."""

    texts: list[str] = Field(description="The texts to tokenize, in order.")
    pos: bool = Field(default=False, description="Also return a part-of-speech tag for every token.")


class TokenizeResponse(BaseModel):
    """Answer of ``POST /v1/tokenize``: one token list per text, in the order of the request."""

    tokens: list[list[str]]
    tags: list[list[str]] | None = None


class _Metrics:
    """Counters in the Prometheus text format; a lock keeps them right across the threadpool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[int, int] = {}
        self.texts = 0
        self.latency_counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe(self, status: int, n_texts: int, seconds: float) -> None:
        with self._lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.texts += n_texts
            self.latency_sum += seconds
            index = next((i for i, b in enumerate(_LATENCY_BUCKETS) if seconds <= b), len(_LATENCY_BUCKETS))
            self.latency_counts[index] += 1

    def render(self, ready: bool) -> str:
        with self._lock:
            lines = [
                "# HELP aiforge_nlp_requests_total Requests to /v1/tokenize by HTTP status.",
                "# TYPE aiforge_nlp_requests_total counter",
                *(
                    f'aiforge_nlp_requests_total{{status="{s}"}} {n}'
                    for s, n in sorted(self.requests.items())
                ),
                "# HELP aiforge_nlp_texts_total Texts tokenized.",
                "# TYPE aiforge_nlp_texts_total counter",
                f"aiforge_nlp_texts_total {self.texts}",
                "# HELP aiforge_nlp_request_seconds Time spent answering /v1/tokenize.",
                "# TYPE aiforge_nlp_request_seconds histogram",
            ]
            cumulative = 0
            for bound, count in zip([*map(str, _LATENCY_BUCKETS), "+Inf"], self.latency_counts, strict=True):
                cumulative += count
                lines.append(f'aiforge_nlp_request_seconds_bucket{{le="{bound}"}} {cumulative}')
            lines += [
                f"aiforge_nlp_request_seconds_sum {self.latency_sum:.6f}",
                f"aiforge_nlp_request_seconds_count {cumulative}",
                "# HELP aiforge_nlp_ready 1 once the analyzer is loaded.",
                "# TYPE aiforge_nlp_ready gauge",
                f"aiforge_nlp_ready {int(ready)}",
            ]
        return "\n".join(lines) + "\n"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f'{where}: {first["msg"]}; expected {{"texts": [str, ...], "pos": bool}}'


def create_nlp_app(
    user_dict: str | Path | None = None,
    *,
    max_texts: int = 2000,
    max_body_bytes: int = 8 * 1024 * 1024,
    max_in_flight: int = 16,
) -> FastAPI:
    """The NLP API as a FastAPI app.

    Routes: ``POST /v1/tokenize`` (``{"texts": [...], "pos": false}`` → ``{"tokens": [[...], ...]}``, plus
    ``"tags"`` when ``pos`` is true), ``GET /health/live``, ``GET /health/ready`` (503 until the analyzer is
    loaded), ``GET /metrics`` (Prometheus text: requests by status, texts, latency histogram).

    Errors are JSON ``{"error": "..."}``: 400 for a malformed body, 413 for more than ``max_texts`` texts or
    a body over ``max_body_bytes``, 503 with ``Retry-After`` while loading or when ``max_in_flight`` requests
    are already being answered.

    Parameters
    ----------
    user_dict : str or Path, optional
        A ``word<TAB>TAG[<TAB>score]`` file added to Kiwi's dictionary; checked before the app is returned.
    max_texts : int, default 2000
        Most texts accepted in one request.
    max_body_bytes : int, default 8 MiB
        Largest request body accepted.
    max_in_flight : int, default 16
        Requests tokenized at once; more get 503 instead of queueing without bound.

    Returns
    -------
    FastAPI

    Raises
    ------
    InvalidInput
        A limit is not positive, or the user dictionary is missing or malformed.

    Examples
    --------
    >>> app = create_nlp_app(max_texts=100)
    >>> sorted(r.path for r in app.routes if r.path.startswith(("/v1", "/health")))
    ['/health/live', '/health/ready', '/v1/tokenize']
    """
    for name, value in (
        ("max_texts", max_texts),
        ("max_body_bytes", max_body_bytes),
        ("max_in_flight", max_in_flight),
    ):
        if value < 1:
            raise InvalidInput(f"{name} must be a positive integer, got {value}")
    if user_dict is not None:
        from aiforge.nlp._tokenize import read_user_dict

        read_user_dict(user_dict)  # fail now, naming the bad line, not on the first request
    metrics = _Metrics()
    state: dict[str, Any] = {"analyzer": None, "error": None, "in_flight": 0}

    def load() -> None:
        try:
            state["analyzer"] = get_analyzer(user_dict)
        except AiforgeError as exc:  # surfaced by /health/ready
            state["error"] = str(exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load Kiwi off the event loop so /health/live answers at once and /health/ready says when it is done.
        loader = asyncio.get_running_loop().run_in_executor(None, load)
        yield
        await loader

    app = FastAPI(
        title="aiforge NLP API",
        summary="Tokenize many texts per request: Kiwi for Korean, a Unicode word splitter for other text.",
        lifespan=lifespan,
    )

    @app.get("/health/live")
    def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", response_model=None)
    def ready() -> dict[str, str] | JSONResponse:
        if state["error"]:
            return _error(503, f"analyzer failed to load: {state['error']}")
        if state["analyzer"] is None:
            return _error(503, "loading the Kiwi model", {"Retry-After": "1"})
        return {"status": "ready"}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_route() -> str:
        return metrics.render(state["analyzer"] is not None)

    async def read_body(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def answer(request: Request) -> tuple[JSONResponse, int]:
        body = await read_body(request)
        if body is None:
            return _error(413, f"request body is larger than {max_body_bytes} bytes; send fewer texts"), 0
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f'body is not valid JSON ({exc}); expected {{"texts": [str, ...]}}'), 0
        try:
            parsed = TokenizeRequest.model_validate(payload)
        except ValidationError as exc:
            return _error(400, _validation_message(exc)), 0
        n = len(parsed.texts)
        if n > max_texts:
            return _error(
                413, f"{n} texts in one request; at most {max_texts} are allowed, send smaller batches"
            ), 0
        analyzer: Analyzer | None = state["analyzer"]
        if analyzer is None:
            return _error(503, "the analyzer is still loading; retry shortly", {"Retry-After": "1"}), 0
        if state["in_flight"] >= max_in_flight:
            return _error(503, "too many requests in flight; retry shortly", {"Retry-After": "1"}), 0
        state["in_flight"] += 1  # only the event loop thread touches this counter
        try:
            analyzed = await run_in_threadpool(analyzer.analyze, parsed.texts)
        finally:
            state["in_flight"] -= 1
        # A plain dict in TokenizeResponse's shape: validating thousands of token lists again would cost more
        # than tokenizing short texts.
        result: dict[str, list[list[str]]] = {"tokens": [[form for form, _ in tokens] for tokens in analyzed]}
        if parsed.pos:
            result["tags"] = [[tag for _, tag in tokens] for tokens in analyzed]
        return JSONResponse(result), n

    @app.post(
        "/v1/tokenize",
        response_model=TokenizeResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": TokenizeRequest.model_json_schema()}},
            }
        },
    )
    async def tokenize_route(request: Request) -> JSONResponse:
        start = time.perf_counter()
        response, n_texts = await answer(request)
        metrics.observe(response.status_code, n_texts, time.perf_counter() - start)
        return response

    return app


def serve_nlp(
    host: str = "127.0.0.1",
    port: int = 8000,
    user_dict: str | Path | None = None,
    *,
    max_texts: int = 2000,
    log_level: str = "info",
) -> None:
    """Run the NLP API with uvicorn until SIGINT/SIGTERM, then finish the requests in flight and stop.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        Interface to listen on; loopback unless the service must be reached from other machines.
    port : int, default 8000
    user_dict : str or Path, optional
        A ``word<TAB>TAG[<TAB>score]`` file (see :func:`aiforge.nlp.read_user_dict`).
    max_texts : int, default 2000
        Most texts accepted in one request.
    log_level : str, default "info"

    Examples
    --------
    >>> serve_nlp("127.0.0.1", 8000, user_dict="words.tsv")  # doctest: +SKIP
    """
    import uvicorn

    app = create_nlp_app(user_dict, max_texts=max_texts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)


class NlpServer:
    """Run an ASGI app with uvicorn in a background thread, e.g. the NLP API in a test, benchmark or notebook.

    Parameters
    ----------
    app : ASGI app
        Typically :func:`create_nlp_app`'s result.
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port; read it from :attr:`url`.
    ready_path : str or None, default "/health/ready"
        :meth:`start` waits until this path answers 200 (None: only until the socket listens).

    Examples
    --------
    >>> with NlpServer(create_nlp_app()) as server:  # doctest: +SKIP
    ...     httpx.post(server.url + "/v1/tokenize", json={"texts": ["hi"]}).json()
    {'tokens': [['hi']]}
    """

    def __init__(
        self,
        app: Callable[..., Any],
        host: str = "127.0.0.1",
        port: int = 0,
        ready_path: str | None = "/health/ready",
    ) -> None:
        self.app, self.host, self.port, self.ready_path = app, host, port, ready_path
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> NlpServer:
        import httpx
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # signals belong to the main thread's owner
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        path = self.ready_path or "/health/live"
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise ServiceError(f"the server on {self.url} stopped while starting; see the log above")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"the server on {self.url} did not answer {path} within {timeout:.0f} s")

    def stop(self) -> None:
        """Ask uvicorn to finish the requests in flight and exit; wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._server = self._thread = None

    def __enter__(self) -> NlpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
