"""The NLP API: a FastAPI app that tokenizes a list of texts per request, and ways to run it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from numbers import Integral
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from aiforge.errors import AiforgeError, InvalidInput, Overloaded, ServiceError
from aiforge.nlp._tokenize import Analyzer, get_analyzer
from aiforge.server import (
    BearerAuth,
    InFlightLimit,
    ServerMetrics,
    ServerThread,
    add_server_routes,
    error_response,
    json_response,
    read_body,
    run,
    serve,
    too_large_parts,
)
from aiforge.validation import Interval, validate_params

__all__ = ["NlpServer", "TokenizeRequest", "TokenizeResponse", "create_nlp_app", "serve_nlp"]


class TokenizeRequest(BaseModel):
    """Body of ``POST /v1/tokenize``."""

    texts: list[str] = Field(description="The texts to tokenize, in order.")
    pos: bool = Field(default=False, description="Also return a part-of-speech tag for every token.")


class TokenizeResponse(BaseModel):
    """Answer of ``POST /v1/tokenize``: one token list per text, in the order of the request."""

    tokens: list[list[str]]
    tags: list[list[str]] | None = None


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
    token: str | None = None,
    metrics_public: bool = True,
) -> FastAPI:
    """The NLP API as a FastAPI app.

    Routes: ``POST /v1/tokenize`` (``{"texts": [...], "pos": false}`` → ``{"tokens": [[...], ...]}``, plus
    ``"tags"`` when ``pos`` is true), ``GET /health/live``, ``GET /health/ready`` (503 until the analyzer is
    loaded), ``GET /metrics`` (Prometheus text: ``aiforge_nlp_requests_total{route,status}``,
    ``aiforge_nlp_texts_total``, ``aiforge_nlp_latency_seconds{stage="total"}``, ``aiforge_nlp_ready``).

    Errors are JSON ``{"error": "..."}`` with the status of the error table in :mod:`aiforge.errors`, like every
    aiforge server: 400 for a malformed body or more than ``max_texts`` texts, 413 for a body over
    ``max_body_bytes``, 503 with ``Retry-After`` while loading or when ``max_in_flight`` requests are already
    being answered, 503 when the analyzer failed to load.

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
    token : str, optional
        Bearer token clients must send (``Authorization: Bearer TOKEN``), as on the inference and APS servers;
        health routes stay open.
    metrics_public : bool, default True
        ``GET /metrics`` answers without the token (see :class:`aiforge.server.BearerAuth`).

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
    positive = [Interval(Integral, 1, None, closed="left")]
    validate_params(
        {"max_texts": max_texts, "max_body_bytes": max_body_bytes, "max_in_flight": max_in_flight},
        dict.fromkeys(("max_texts", "max_body_bytes", "max_in_flight"), positive),
    )
    if user_dict is not None:
        from aiforge.nlp._tokenize import read_user_dict

        read_user_dict(user_dict)  # fail now, naming the bad line, not on the first request
    from prometheus_client import Counter, Gauge

    metrics = ServerMetrics("aiforge_nlp")
    texts_total = Counter("aiforge_nlp_texts", "Texts tokenized.", registry=metrics.registry)
    ready_gauge = Gauge("aiforge_nlp_ready", "1 once the analyzer is loaded.", registry=metrics.registry)
    latency = metrics.stage("total")
    limit = InFlightLimit(max_in_flight, name="the NLP API")
    state: dict[str, Any] = {"analyzer": None, "error": None}

    def load() -> None:
        try:
            state["analyzer"] = get_analyzer(user_dict)
        except AiforgeError as exc:  # surfaced by /health/ready
            state["error"] = str(exc)

    def ready() -> bool:
        if state["error"]:
            raise ServiceError(f"analyzer failed to load: {state['error']}")
        return state["analyzer"] is not None

    metrics.add_collect_hook(lambda: ready_gauge.set(int(state["analyzer"] is not None)))

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
    add_server_routes(app, ready=ready, metrics=metrics)

    async def answer(request: Request) -> tuple[Response, int]:
        body = await read_body(request.scope, request.receive, max_body_bytes)
        if body is None:
            status, payload, _ = too_large_parts(max_body_bytes, "send fewer texts")
            return Response(payload, status, media_type="application/json"), 0
        try:
            parsed = TokenizeRequest.model_validate(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f'body is not valid JSON ({exc}); expected {{"texts": [str, ...]}}') from None
        except ValidationError as exc:
            raise InvalidInput(_validation_message(exc)) from None
        n = len(parsed.texts)
        if n > max_texts:
            raise InvalidInput(f"{n} texts in one request; at most {max_texts} are allowed, send smaller batches")
        analyzer: Analyzer | None = state["analyzer"]
        if analyzer is None:
            if state["error"]:
                raise ServiceError(f"analyzer failed to load: {state['error']}")
            raise Overloaded("the analyzer is still loading; retry shortly", 1.0)
        with limit:  # only the event loop thread counts, so no lock
            analyzed = await run_in_threadpool(analyzer.analyze, parsed.texts)
        # A plain dict in TokenizeResponse's shape: validating thousands of token lists again would cost more
        # than tokenizing short texts.
        result: dict[str, list[list[str]]] = {"tokens": [[form for form, _ in tokens] for tokens in analyzed]}
        if parsed.pos:
            result["tags"] = [[tag for _, tag in tokens] for tokens in analyzed]
        return json_response(result), n

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
    async def tokenize_route(request: Request) -> Response:
        start = time.perf_counter()
        try:
            response, n_texts = await answer(request)
        except Exception as exc:
            response, n_texts = error_response(exc), 0
        metrics.count("/v1/tokenize", response.status_code)
        texts_total.inc(n_texts)
        latency.observe(time.perf_counter() - start)
        return response

    app.add_middleware(BearerAuth, token=token, metrics_public=metrics_public)
    return app


def serve_nlp(
    host: str = "127.0.0.1",
    port: int = 8000,
    user_dict: str | Path | None = None,
    *,
    max_texts: int = 2000,
    log_level: str = "info",
    token: str | None = None,
    metrics_public: bool = True,
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
    token : str, optional
        Bearer token clients must send; health routes stay open.
    metrics_public : bool, default True
        ``GET /metrics`` answers without the token.

    Examples
    --------
    >>> serve_nlp("127.0.0.1", 8000, user_dict="words.tsv")  # doctest: +SKIP
    """
    app = create_nlp_app(user_dict, max_texts=max_texts, token=token, metrics_public=metrics_public)
    run(serve(app, host=host, port=port, grace_s=10.0, log_level=log_level))


class NlpServer(ServerThread):
    """Run an ASGI app in a background thread, e.g. the NLP API in a test, benchmark or notebook.

    The server kit's threaded runner: uvicorn in its own event loop, stopped gracefully (requests in flight finish).

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
        super().__init__(app, host=host, port=port, name="nlp-server", grace_s=5.0, lifespan="auto")
        self.ready_path = ready_path

    def start(self, timeout: float = 60.0) -> NlpServer:
        """Start the server; return once it listens and ``ready_path`` answers 200.

        Raises
        ------
        ServiceError
            The server stopped while starting, or ``ready_path`` did not answer 200 within ``timeout`` seconds.
        """
        import httpx

        deadline = time.monotonic() + timeout
        super().start(timeout)
        if self.ready_path is None:
            return self
        while time.monotonic() < deadline:
            if not self.running:
                raise ServiceError(f"the server on {self.url} stopped while starting; see the log above")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"the server on {self.url} did not answer {self.ready_path} within {timeout:.0f} s")
