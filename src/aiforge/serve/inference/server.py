"""The inference server: Open Inference Protocol v2 over REST (FastAPI) and gRPC (grpc.aio), one engine behind both.

REST routes: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}]``
(metadata), ``.../ready``, ``POST .../infer``, ``GET /metrics``, OpenAPI docs at ``/docs``. The gRPC service is
``inference.GRPCInferenceService`` with all six RPCs. Errors follow the table in :mod:`aiforge.errors`: 400 bad
input, 404 unknown model or version, 503 with ``Retry-After`` when a queue is full; 413 for a body over 64 MiB and
401 without the bearer token when one is set (health checks stay open, and ``/metrics`` unless ``metrics_public`` is
off); over gRPC ``INVALID_ARGUMENT``,
``NOT_FOUND``, ``UNAVAILABLE`` (+ ``retry-after`` trailer), ``UNAUTHENTICATED``. The routes every server shares
(health, metrics, auth, shutdown) come from the server kit, :mod:`aiforge.server`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from aiforge.errors import NotFound, ServiceError, grpc_code
from aiforge.serve.inference.engine import InferenceEngine
from aiforge.serve.inference.repository import ModelRepository
from aiforge.serve.protocol import (
    grpc_modules,
    request_from_grpc,
    request_from_json,
    response_to_grpc,
    response_to_json,
)
from aiforge.server import (
    BearerAuth,
    ServerMetrics,
    add_server_routes,
    error_parts,
    error_response,
    grpc_abort,
    json_response,
    read_body,
    run,
    send_json,
    serve,
    too_large_parts,
)
from aiforge.version import __version__

__all__ = ["create_grpc_server", "create_inference_app", "run_inference_server"]

_JSON = "application/json"
_GRPC_MAX_MESSAGE = _MAX_BODY = 64 * 1024 * 1024
_TOO_LARGE = too_large_parts(_MAX_BODY, "send fewer rows per request")
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {_JSON: {"schema": {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype", "data"],
                                                  "properties": {"name": {"type": "string"},
                                                                 "shape": {"type": "array",
                                                                           "items": {"type": "integer"}},
                                                                 "datatype": {"type": "string"},
                                                                 "data": {"type": "array", "items": {}}}}},
            "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "parameters": {"type": "object"},
        }}}},
    }
}


class _InferenceApp(FastAPI):
    """FastAPI with the inference route served straight from ASGI (the routes stay declared for the docs)."""

    fast_infer: Callable[[dict[str, Any], Any, Any], Any] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.fast_infer is not None and scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                count = path.count("/")
                if count == 4 or (count == 6 and path.split("/")[4] == "versions"):
                    await self.fast_infer(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def server_metadata() -> dict[str, Any]:
    """The protocol's server metadata."""
    return {"name": "aiforge", "version": __version__, "extensions": []}


def create_inference_app(engine: InferenceEngine, *, token: str | None = None,
                         metrics: ServerMetrics | None = None, metrics_public: bool = True) -> FastAPI:
    """The REST application of the inference server.

    Parameters
    ----------
    engine : InferenceEngine
        Runs the requests.
    token : str, optional
        Bearer token required on every route but health checks (and ``/metrics`` while it is public).
    metrics : ServerMetrics, optional
        Where to record requests (default: the engine's, or new ones attached to the engine).
    metrics_public : bool, default True
        ``GET /metrics`` answers without the token (see :class:`aiforge.server.BearerAuth`).
    """
    if metrics is None:
        metrics = engine.metrics or ServerMetrics("aiforge_inference")
    if engine.metrics is None:
        engine.attach_metrics(metrics)
    repository = engine.repository
    total = metrics.stage("total")
    auth = BearerAuth(None, token)
    app = _InferenceApp(title="aiforge inference server", version=__version__,
                        description="Open Inference Protocol v2 (REST) over ONNX Runtime, with dynamic batching.")
    if token:
        app.add_middleware(BearerAuth, token=token, metrics_public=metrics_public)

    async def run_infer(body: bytes, model: str, version: str | None) -> tuple[int, bytes, list[Any]]:
        start = time.perf_counter()
        headers: list[Any]
        try:
            result = await engine.infer(request_from_json(body), model, version)
            status, payload, headers = 200, response_to_json(result), []
        except Exception as exc:
            status, payload, headers = error_parts(exc)
        metrics.count("infer", status)
        total.observe(time.perf_counter() - start)
        return status, payload, headers

    async def fast_infer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The hot path, straight on ASGI: no routing, middleware, Request or Response objects.
        parts = scope["path"].split("/")  # "", "v2", "models", name, ["versions", v,] "infer"
        if token and not auth.allows_scope(scope):
            await auth.refuse(send)
            return
        try:
            body = await read_body(scope, receive, _MAX_BODY)  # refuses past the limit without reading the rest
        except ServiceError:  # the client left
            return
        if body is None:
            status, payload, headers = _TOO_LARGE
            metrics.count("infer", status)
        else:
            status, payload, headers = await run_infer(body, parts[3], parts[5] if len(parts) == 7 else None)
        await send_json(send, status, payload, headers)

    app.fast_infer = fast_infer

    async def infer(request: Request) -> Response:
        params = request.path_params
        status, payload, headers = await run_infer(await request.body(), params["model_name"], params.get("version"))
        return Response(payload, status, {k.decode(): v.decode() for k, v in headers}, media_type=_JSON)

    async def metadata(model_name: str, version: str | None = None) -> Response:
        try:
            model = repository.get(model_name, version)
            return json_response(model.metadata(repository.versions(model_name) if version is None else None))
        except NotFound as exc:
            return error_response(exc)

    async def ready(model_name: str, version: str | None = None) -> Response:
        try:
            model = repository.get(model_name, version)
        except NotFound as exc:
            return error_response(exc)
        is_ready = engine.ready(model_name, version)
        return json_response({"name": model.name, "version": model.version, "ready": is_ready},
                             200 if is_ready else 503)

    async def server_meta() -> Response:
        return json_response(server_metadata())

    app.add_api_route("/v2", server_meta, methods=["GET"], summary="Server metadata")
    add_server_routes(app, ready=engine.ready, metrics=metrics, health_prefixes=("/v2/health", "/health"))
    app.add_api_route("/v2/models/{model_name}", metadata, methods=["GET"], summary="Model metadata (all versions)")
    app.add_api_route("/v2/models/{model_name}/versions/{version}", metadata, methods=["GET"],
                      summary="Model version metadata")
    app.add_api_route("/v2/models/{model_name}/ready", ready, methods=["GET"], summary="Model readiness")
    app.add_api_route("/v2/models/{model_name}/versions/{version}/ready", ready, methods=["GET"],
                      summary="Model version readiness")
    app.add_api_route("/v2/models/{model_name}/infer", infer, methods=["POST"], summary="Infer (newest version)",
                      openapi_extra=_INFER_BODY)
    app.add_api_route("/v2/models/{model_name}/versions/{version}/infer", infer, methods=["POST"],
                      summary="Infer with one version", openapi_extra=_INFER_BODY)
    return app


# ---------------------------------------------------------------------------------------------------------- gRPC


def _make_servicer(engine: InferenceEngine, token: str | None, metrics: ServerMetrics | None) -> Any:
    pb, services = grpc_modules()
    auth = BearerAuth(None, token)
    repository = engine.repository
    total = metrics.stage("total") if metrics is not None else None
    check = auth.check_grpc

    class Servicer(services.GRPCInferenceServiceServicer):  # type: ignore[name-defined]
        async def ServerLive(self, request: Any, context: Any) -> Any:
            return pb.ServerLiveResponse(live=True)

        async def ServerReady(self, request: Any, context: Any) -> Any:
            return pb.ServerReadyResponse(ready=engine.ready())

        async def ModelReady(self, request: Any, context: Any) -> Any:
            await check(context)
            try:
                repository.get(request.name, request.version or None)
            except NotFound as exc:
                await grpc_abort(context, exc)
            return pb.ModelReadyResponse(ready=engine.ready(request.name, request.version or None))

        async def ServerMetadata(self, request: Any, context: Any) -> Any:
            await check(context)
            return pb.ServerMetadataResponse(**server_metadata())

        async def ModelMetadata(self, request: Any, context: Any) -> Any:
            await check(context)
            try:
                model = repository.get(request.name, request.version or None)
            except NotFound as exc:
                await grpc_abort(context, exc)
            document = model.metadata(repository.versions(model.name) if not request.version else None)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=document["name"], versions=document["versions"], platform=document["platform"],
                inputs=[tensor(**spec) for spec in document["inputs"]],
                outputs=[tensor(**spec) for spec in document["outputs"]],
            )

        async def ModelInfer(self, request: Any, context: Any) -> Any:
            start = time.perf_counter()
            await check(context)
            try:
                result = await engine.infer(request_from_grpc(request), request.model_name,
                                            request.model_version or None)
                message = response_to_grpc(result)
            except Exception as exc:
                if metrics is not None:
                    metrics.count("grpc_infer", grpc_code(exc))
                await grpc_abort(context, exc)
            if metrics is not None and total is not None:
                metrics.count("grpc_infer", "OK")
                total.observe(time.perf_counter() - start)
            return message

    return Servicer()


def create_grpc_server(engine: InferenceEngine, *, port: int, token: str | None = None, reuse_port: bool = False,
                       host: str = "127.0.0.1", metrics: ServerMetrics | None = None) -> Any:
    """A ``grpc.aio.Server`` serving ``GRPCInferenceService`` on ``host:port`` (bound, not started).

    Call it inside the event loop that will run the server. The server's ``bound_port`` attribute is the port it
    got (useful with ``port=0``).

    Raises
    ------
    ServiceError
        The port cannot be bound.
    """
    import grpc

    _, services = grpc_modules()
    server = grpc.aio.server(options=[
        ("grpc.max_send_message_length", _GRPC_MAX_MESSAGE),
        ("grpc.max_receive_message_length", _GRPC_MAX_MESSAGE),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ])
    services.add_GRPCInferenceServiceServicer_to_server(
        _make_servicer(engine, token, metrics if metrics is not None else engine.metrics), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ServiceError(f"cannot listen for gRPC on {address}: the port is in use or the address is not on this "
                           f"machine; pick another --grpc-port") from exc
    if not bound:
        raise ServiceError(f"cannot listen for gRPC on {address}; pick another --grpc-port")
    server.bound_port = bound
    return server


def run_inference_server(
    model_repo: str | Path | ModelRepository,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    grpc_port: int | None = 8081,
    token: str | None = None,
    batching: bool = True,
    overrides: dict[str, Any] | None = None,
    reuse_port: bool = False,
    grace_s: float = 10.0,
    on_started: Callable[[], Any] | None = None,
    metrics_public: bool = True,
) -> None:
    """Serve a model repository over REST and gRPC until SIGTERM/SIGINT (blocking).

    Parameters
    ----------
    model_repo : str, Path or ModelRepository
        The repository folder (``<name>/<version>/model.onnx``), or one already loaded.
    host, port, grpc_port : str, int, int
        Where to listen; ``grpc_port=None`` serves REST only.
    token : str, optional
        Bearer token required on every request but health checks (and metrics while they are public).
    batching : bool, default True
        Dynamic batching; ``False`` runs each request alone.
    overrides : dict, optional
        Config values applied over every model's ``config.yaml`` (``max_batch_size``, ``max_queue_delay_ms``,
        ``max_queue_size``, ``intra_op_threads``).
    reuse_port : bool, default False
        Share the ports with other processes (``SO_REUSEPORT``), to run replicas behind one port.
    grace_s : float, default 10
        How long in-flight requests may take to finish after the stop signal.
    on_started : callable, optional
        Called once the servers listen.
    metrics_public : bool, default True
        ``GET /metrics`` answers without the token; ``False`` asks for it there too.

    Raises
    ------
    NotFound, InvalidInput
        The repository or one of its models cannot be loaded.
    ServiceError
        A port cannot be bound.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    repository = (model_repo if isinstance(model_repo, ModelRepository)
                  else ModelRepository.load(model_repo, overrides=overrides))
    metrics = ServerMetrics("aiforge_inference")
    engine = InferenceEngine(repository, batching=batching, metrics=metrics)
    app = create_inference_app(engine, token=token, metrics=metrics, metrics_public=metrics_public)

    def grpc_server() -> Any:
        return create_grpc_server(engine, port=int(grpc_port or 0), token=token, reuse_port=reuse_port, host=host,
                                  metrics=metrics)

    run(serve(app, host=host, port=port, grpc_server=grpc_server if grpc_port else None, grpc_port=grpc_port,
              reuse_port=reuse_port, grace_s=grace_s, on_shutdown=engine.close, on_started=on_started))
