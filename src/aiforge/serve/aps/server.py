"""The APS front server: a user's handler (pre/post-processing, business logic) in front of an inference server.

``POST /predict`` takes the client's JSON, runs ``handler.preprocess``, calls the model through a
:class:`~aiforge.serve.aps.predictor.Predictor` (gRPC to an inference server, or ONNX Runtime in this process) and
answers ``handler.postprocess``'s JSON::

    client --JSON--> APS (handler) --OIP gRPC--> inference server (ONNX Runtime)

Reliability: every request has an overall deadline (``timeout_s``; past it the answer is 503, even when the
inference server accepted the connection and never replied); at most ``max_in_flight`` requests are processed at
once and the next ones get 503 with ``Retry-After`` at once, so memory stays flat under overload. Errors are JSON
``{"error": "..."}`` with the status of the error table in :mod:`aiforge.errors`: 400 for bad input (the handler's
or the inference server's message; a ``ValueError``, ``KeyError`` or ``TypeError`` from ``preprocess`` counts as bad
input), 404 for an unknown model, 503 when the inference server is down, slow or overloaded, 500 when the handler
fails otherwise.

The hot path is lean on purpose (the APS hop must cost well under a millisecond): ``POST /predict`` is a plain ASGI
endpoint dispatched before FastAPI's routing, the body goes straight to orjson, ``preprocess``/``postprocess`` run
inline on the event loop unless the handler sets ``blocking = True``, and one gRPC channel serves every request.

Routes: ``POST /predict``, ``GET /health/live``, ``GET /health/ready``, ``GET /metrics``, ``GET /docs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from aiforge.errors import AiforgeError, InvalidInput, Overloaded, ServiceError
from aiforge.serve.aps.base import Predictor
from aiforge.serve.aps.handler import Context, Handler, load_handler
from aiforge.serve.aps.predictor import predictor_from_url
from aiforge.serve.protocol import InferRequest, Tensor
from aiforge.server import (
    BearerAuth,
    InFlightLimit,
    ServerMetrics,
    add_server_routes,
    error_parts,
    read_body,
    run,
    send_json,
    serve,
)
from aiforge.validation import Interval, validate_params
from aiforge.version import __version__

__all__ = ["create_aps_app", "run_aps_server"]

log = logging.getLogger(__name__)

_JSON = "application/json"
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_BIND_TIMEOUT_S = 1.0
_CONSTRAINTS: dict[str, list[Any]] = {
    "timeout_s": [Interval(Real, 0, None, closed="neither")],
    "max_in_flight": [Interval(Integral, 1, None, closed="left")],
}
# The OpenAPI description of /predict: its body is whatever the handler reads, so it is described, not validated.
_PREDICT_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {_JSON: {"schema": {"type": "object"}, "examples": {
            "instances": {"value": {"instances": [[0.1, 0.2, 0.3, 0.4]]}},
            "named inputs": {"value": {"inputs": {"input": [[0.1, 0.2, 0.3, 0.4]]}}},
            "record (TransformHandler)": {"value": {"age": 31, "city": "Seoul"}},
        }}},
    },
    "responses": {
        "200": {"description": "The handler's JSON (default: {\"outputs\": {name: values}})"},
        "400": {"description": "Malformed JSON or inputs the handler or the model rejected"},
        "404": {"description": "The model or version is not on the inference server"},
        "503": {"description": "Inference server down, slow or overloaded; see Retry-After"},
    },
}


def _as_request(inputs: Any, request_id: str) -> InferRequest:
    if isinstance(inputs, InferRequest):
        if not inputs.id:
            inputs.id = request_id
        return inputs
    if not isinstance(inputs, Mapping) or not inputs:
        raise TypeError(
            f"preprocess must return an InferRequest or a non-empty dict of name -> numpy array; got {inputs!r:.80}"
        )
    tensors = [Tensor(str(name), value if isinstance(value, np.ndarray) else np.asarray(value))
               for name, value in inputs.items()]
    return InferRequest(tensors, id=request_id)


class _ApsApp(FastAPI):
    """FastAPI for docs, health and metrics; ``POST /predict`` goes straight to the APS, past FastAPI's routing."""

    fast: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/predict" and scope["method"] == "POST" and self.fast:
            await self.fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _Aps:
    """The state behind one APS app: handler, predictor, limits and metrics."""

    def __init__(self, handler: Handler, predictor: Predictor, *, model: str, version: str | None, timeout_s: float,
                 max_in_flight: int, metrics: ServerMetrics, loaded: bool = False) -> None:
        self.handler = handler
        self.predictor = predictor
        self.model = model
        self.version = version
        self.timeout_s = timeout_s
        self.limit = InFlightLimit(max_in_flight, name="the APS")
        self.metrics = metrics
        self.loaded = loaded
        self.blocking = bool(getattr(handler, "blocking", False))
        self.bound = False
        self._bind_lock = asyncio.Lock()
        self._stages = {name: metrics.stage(name) for name in ("preprocess", "predict", "postprocess", "total")}

    @property
    def in_flight(self) -> int:
        """Requests being processed now."""
        return self.limit.in_flight

    # -- start-up -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        handler = self.handler
        load = getattr(handler, "load", None)
        if not self.loaded and callable(load):
            if getattr(handler, "blocking", False):
                await asyncio.get_running_loop().run_in_executor(None, load)
            else:
                load()
        self.loaded = True
        self.blocking = bool(getattr(handler, "blocking", False))  # read once: load() may set it
        await self.bind()

    async def bind(self) -> None:
        """Give the handler the model's metadata (its input names and datatypes), once it can be read."""
        async with self._bind_lock:
            if self.bound:
                return
            bind = getattr(self.handler, "bind", None)
            getter = getattr(self.predictor, "metadata", None)
            if bind is None or getter is None:
                self.bound = True
                return
            try:
                async with asyncio.timeout(_BIND_TIMEOUT_S):
                    metadata = await getter(self.model, self.version)
            except (TimeoutError, ServiceError) as exc:  # not up yet: the next request tries again
                log.info("model metadata not available yet (%s); will retry", exc)
                return
            except AiforgeError as exc:  # e.g. unknown model: requests will get the 404 themselves
                log.warning("cannot read the metadata of model %r: %s", self.model, exc)
                self.bound = True
                return
            bind(metadata)
            self.bound = True

    # -- the hot path: pure ASGI, no Request/Response objects ------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """``POST /predict`` as a plain ASGI app."""
        request_id = ""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        ids = ((b"x-request-id", request_id.encode("latin-1")),)
        try:
            self.limit.acquire()
        except Overloaded as exc:  # refused at once, before reading the body
            status, body, extra = error_parts(exc)
            self.metrics.count("/predict", status)
            await send_json(send, status, body, (*ids, *extra))
            return
        start = time.perf_counter()
        extra = []
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._predict(scope, receive, request_id, start)
            status = 200
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                exc = ServiceError(f"no answer within the APS timeout of {self.timeout_s:g} s; the inference server "
                                   "may be down or saturated")
            elif not isinstance(exc, AiforgeError):
                log.exception("request %s failed", request_id)
            status, body, extra = error_parts(exc)
        finally:
            self.limit.release()
        await send_json(send, status, body, (*ids, *extra))
        self._stages["total"].observe(time.perf_counter() - start)
        self.metrics.count("/predict", status)

    async def _predict(self, scope: dict[str, Any], receive: Any, request_id: str, start: float) -> bytes:
        if not self.bound:
            await self.bind()
        body = await read_body(scope, receive) or b""  # no size limit, so never None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
        handler, stages = self.handler, self._stages
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        context = Context(request_id, self.model, self.version, headers, {})
        blocking = self.blocking
        loop = asyncio.get_running_loop()
        try:
            if blocking:
                inputs = await loop.run_in_executor(None, handler.preprocess, payload, context)
            else:
                inputs = handler.preprocess(payload, context)
        except AiforgeError:
            raise
        except (ValueError, KeyError, TypeError) as exc:  # the handler could not read the payload: a client error
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InvalidInput(f"preprocess rejected the request: {type(exc).__name__}: {detail}") from exc
        infer_request = _as_request(inputs, request_id)
        now = time.perf_counter()
        stages["preprocess"].observe(now - start)
        response = await self.predictor.infer(infer_request, self.model, self.version)
        then = time.perf_counter()
        stages["predict"].observe(then - now)
        if blocking:
            result = await loop.run_in_executor(None, handler.postprocess, response, context)
        else:
            result = handler.postprocess(response, context)
        out = orjson.dumps(result, option=_DUMPS_OPTIONS)
        stages["postprocess"].observe(time.perf_counter() - then)
        return out

    # -- health ---------------------------------------------------------------------------------------------------

    async def ready(self) -> bool:
        if not self.loaded:
            return False
        try:
            async with asyncio.timeout(min(self.timeout_s, 2.0)):
                ok = await self.predictor.ready(self.model, self.version)
        except (TimeoutError, AiforgeError):
            return False
        if ok and not self.bound:
            await self.bind()
        return bool(ok)


def create_aps_app(handler: Handler, predictor: Predictor, *, model: str, version: str | None = None,
                   timeout_s: float = 5.0, token: str | None = None, max_in_flight: int = 256,
                   loaded: bool = False, metrics_public: bool = True) -> FastAPI:
    """The APS REST app: ``handler`` in front of ``predictor`` for one model.

    Parameters
    ----------
    handler : Handler
        The pre/post-processing; its ``load()`` runs when the app starts.
    predictor : Predictor
        Where the model runs (:func:`~aiforge.serve.aps.predictor.predictor_from_url`); closed when the app stops.
    model : str
        The model name on the inference server.
    version : str, optional
        The model version; default the newest.
    timeout_s : float
        Overall deadline of one request; past it the answer is 503.
    token : str, optional
        Bearer token clients must send (``Authorization: Bearer TOKEN``); health routes stay open, and ``/metrics``
        while ``metrics_public``.
    max_in_flight : int
        Requests processed at once; more get 503 with ``Retry-After: 1`` at once.
    loaded : bool
        The handler's ``load()`` has already run; do not run it again at start-up.
    metrics_public : bool
        ``GET /metrics`` answers without the token (see :class:`aiforge.server.BearerAuth`).

    Returns
    -------
    fastapi.FastAPI

    Examples
    --------
    >>> from aiforge.serve.aps.predictor import predictor_from_url
    >>> app = create_aps_app(Handler(), predictor_from_url("grpc://127.0.0.1:8081"), model="mlp")
    >>> sorted(r.path for r in app.routes if r.path.startswith(("/predict", "/health")))
    ['/health/live', '/health/ready', '/predict']
    """
    validate_params({"timeout_s": timeout_s, "max_in_flight": max_in_flight}, _CONSTRAINTS)
    metrics = ServerMetrics("aiforge_aps")
    aps = _Aps(handler, predictor, model=model, version=version, timeout_s=timeout_s, max_in_flight=max_in_flight,
               metrics=metrics, loaded=loaded)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await aps.start()
        try:
            yield
        finally:
            await predictor.close()

    app = _ApsApp(
        title="aiforge APS server", version=__version__, lifespan=lifespan,
        description=f"Pre/post-processing ({type(handler).__name__}) in front of model {model!r} "
                    f"({type(predictor).__name__}).",
    )
    app.state.aps = aps

    @app.post("/predict", summary="Run the handler and the model", openapi_extra=_PREDICT_DOC)
    async def predict(request: Request) -> Response:  # documents the route; requests go to `aps` (app.fast)
        responses: list[dict[str, Any]] = []

        async def collect(message: dict[str, Any]) -> None:
            responses.append(message)

        await aps(request.scope, request.receive, collect)
        start, body = responses
        return Response(body["body"], start["status"], {k.decode(): v.decode() for k, v in start["headers"]})

    add_server_routes(app, ready=aps.ready, metrics=metrics)

    @app.get("/", summary="What this APS serves")
    async def info() -> Response:
        return Response(orjson.dumps({
            "server": "aiforge-aps", "version": __version__, "model": model, "model_version": version,
            "handler": type(handler).__name__, "predictor": repr(predictor),
        }), media_type=_JSON)

    app.add_middleware(BearerAuth, token=token, metrics_public=metrics_public)
    app.fast = BearerAuth(aps, token=token)  # lean path for POST /predict, same auth
    return app


def run_aps_server(handler_spec: str | Handler | None, predictor_url: str, *, model: str, version: str | None = None,
                   host: str = "127.0.0.1", port: int = 8000, timeout_s: float = 5.0, max_in_flight: int = 256,
                   token: str | None = None, predictor_token: str | None = None, batching: bool = True,
                   reuse_port: bool = False, on_started: Callable[[], Any] | None = None,
                   coalesce: bool = True, metrics_public: bool = True) -> None:
    """Run the APS server until SIGTERM/SIGINT (blocking); in-flight requests finish first.

    Parameters
    ----------
    handler_spec : str, Handler or None
        A handler spec for :func:`~aiforge.serve.aps.handler.load_handler` (``"default"``, ``"file.py:Class"``, ...) or
        a handler instance.
    predictor_url : str
        ``grpc://HOST:PORT`` (an inference server) or ``local:///MODEL_REPO`` (co-located: ONNX Runtime in this
        process).
    model, version
        The model to call (version default: the newest).
    host, port
        Where to listen.
    timeout_s, max_in_flight, token, metrics_public
        See :func:`create_aps_app`.
    predictor_token : str, optional
        Token for the inference server; default ``token``.
    batching : bool
        Dynamic batching in co-located mode.
    reuse_port : bool
        Let several APS processes share ``port`` (SO_REUSEPORT).
    on_started : callable, optional
        Called once the server accepts requests.
    coalesce : bool
        With ``grpc://``, send concurrent requests to the inference server together, in one call
        (:class:`~aiforge.serve.aps.coalesce.CoalescingPredictor`); a request that arrives alone is sent at once.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    handler = handler_spec if isinstance(handler_spec, Handler) else load_handler(handler_spec)
    # load before listening, so a broken handler is an error here and not a server that never gets ready
    load = getattr(handler, "load", None)
    try:
        if callable(load):
            load()
    except AiforgeError:
        raise
    except Exception as exc:
        raise ServiceError(f"the handler's load() failed: {type(exc).__name__}: {exc}") from exc
    predictor = predictor_from_url(predictor_url, timeout_s=timeout_s,
                                   token=predictor_token if predictor_token is not None else token, batching=batching,
                                   coalesce=coalesce)
    app = create_aps_app(handler, predictor, model=model, version=version, timeout_s=timeout_s, token=token,
                         max_in_flight=max_in_flight, loaded=True, metrics_public=metrics_public)
    run(serve(app, host=host, port=port, reuse_port=reuse_port, on_started=on_started))
