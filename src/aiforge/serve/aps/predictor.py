"""Predictors: how the APS reaches the model, over gRPC to an inference server or in its own process.

Both speak one small interface, :class:`Predictor`, so the APS does not care where the model runs::

    predictor = predictor_from_url("grpc://127.0.0.1:8081")        # an inference server
    predictor = predictor_from_url("local:///srv/model_repo")       # ONNX Runtime in this process
    response = await predictor.infer(request, "mlp")

Errors arrive as aiforge errors whatever the transport: :class:`~aiforge.errors.InvalidInput` (the server rejected
the inputs), :class:`~aiforge.errors.ModelNotFound`, :class:`~aiforge.errors.Overloaded` (its queue is full, or it
cannot be reached: the model did not run, so retrying is safe; the APS answers 503 with ``Retry-After``) and
:class:`~aiforge.errors.ServiceError` (no answer within the timeout, or another failure of the server).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import TYPE_CHECKING, Any

from aiforge.errors import AiforgeError, InvalidInput, ModelNotFound, Overloaded, ServiceError, error_for_status
from aiforge.serve.aps.base import Predictor
from aiforge.serve.aps.coalesce import CoalescingPredictor
from aiforge.serve.protocol import (
    InferRequest,
    InferResponse,
    grpc_modules,
    request_to_grpc,
    response_from_grpc,
)
from aiforge.validation import Interval, validate_params

if TYPE_CHECKING:
    from aiforge.serve.inference.engine import InferenceEngine

__all__ = ["GrpcPredictor", "LocalPredictor", "Predictor", "predictor_from_url"]

# Reconnect quickly after the inference server restarts (gRPC's default backoff grows to two minutes).
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]
#: What a client is told to wait when the inference server cannot be reached (a restart takes about that long).
_UNAVAILABLE_RETRY_S = 1.0


class GrpcPredictor:
    """An inference server reached over Open Inference Protocol gRPC, through one long-lived channel.

    Parameters
    ----------
    target : str
        ``host:port`` of the server's gRPC endpoint (a ``grpc://`` prefix is accepted).
    timeout_s : float
        Deadline of each inference call; past it the call fails with :class:`~aiforge.errors.ServiceError`.
    token : str, optional
        Bearer token sent as ``authorization`` metadata, for a server started with a token.
    ready_timeout_s : float
        Deadline of the readiness and metadata calls.

    Examples
    --------
    >>> predictor = GrpcPredictor("127.0.0.1:8081", timeout_s=2.0)
    >>> predictor.target
    '127.0.0.1:8081'
    """

    def __init__(self, target: str, *, timeout_s: float = 5.0, token: str | None = None,
                 ready_timeout_s: float = 1.0) -> None:
        target = target.removeprefix("grpc://").rstrip("/")
        if not target or ":" not in target:  # the string's form: more than a declared constraint says
            raise InvalidInput(f"gRPC target must be HOST:PORT (e.g. 127.0.0.1:8081); got {target!r}")
        validate_params({"timeout_s": timeout_s}, {"timeout_s": [Interval(Real, 0, None, closed="neither")]})
        self.target = target
        self.timeout_s = timeout_s
        self.ready_timeout_s = ready_timeout_s
        self._metadata: tuple[tuple[str, str], ...] | None = (("authorization", f"Bearer {token}"),) if token else None
        self._channel: Any = None
        self._stub: Any = None

    def __repr__(self) -> str:
        return f"GrpcPredictor({self.target!r}, timeout_s={self.timeout_s})"

    def _connect(self) -> Any:
        # made on first use, inside the event loop that will use it (grpc.aio channels belong to one loop)
        import grpc

        _, services = grpc_modules()
        self._channel = grpc.aio.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        self._stub = services.GRPCInferenceServiceStub(self._channel)
        return self._stub

    async def infer(self, request: InferRequest, model: str, version: str | None = None) -> InferResponse:
        """Send one ``ModelInfer`` call and decode the answer.

        Raises
        ------
        InvalidInput, ModelNotFound, Overloaded, ServiceError
            See the module docstring.
        """
        import grpc

        stub = self._stub or self._connect()
        message = request_to_grpc(request, model, version)
        try:
            reply = await stub.ModelInfer(message, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, model, version) from exc
        return response_from_grpc(reply)

    async def ready(self, model: str | None = None, version: str | None = None) -> bool:
        """Whether the server answers ``ServerReady`` (and ``ModelReady`` for ``model``) within ``ready_timeout_s``."""
        import grpc

        pb, _ = grpc_modules()
        stub = self._stub or self._connect()
        try:
            if model:
                reply = await stub.ModelReady(pb.ModelReadyRequest(name=model, version=version or ""),
                                              timeout=self.ready_timeout_s, metadata=self._metadata)
            else:
                reply = await stub.ServerReady(pb.ServerReadyRequest(), timeout=self.ready_timeout_s,
                                               metadata=self._metadata)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.ready)

    async def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The model's metadata from ``ModelMetadata``, as the REST endpoint writes it."""
        import grpc

        pb, _ = grpc_modules()
        stub = self._stub or self._connect()
        try:
            reply = await stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version=version or ""),
                                             timeout=self.ready_timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, model, version) from exc
        return {
            "name": reply.name,
            "versions": list(reply.versions),
            "platform": reply.platform,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in reply.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in reply.outputs],
        }

    async def close(self) -> None:
        """Close the channel (a later call opens a new one)."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()

    def _error(self, exc: Any, model: str, version: str | None) -> AiforgeError:
        """The aiforge error of a failed call: its class from the error table read backwards, its message here."""
        code, details = exc.code().name, exc.details() or ""
        where = f"inference server {self.target}"
        retry_after = _retry_after(exc.trailing_metadata())
        error = error_for_status(code, details, retry_after=retry_after, prefer=(ModelNotFound,))
        if isinstance(error, Overloaded):
            return Overloaded(f"{where} is overloaded: {details}", error.retry_after_s)
        if isinstance(error, ModelNotFound) and not details:
            return ModelNotFound(f"model {model!r} version {version!r} not found on {where}")
        if code == "DEADLINE_EXCEEDED":
            message = (f"{where} did not answer within {self.timeout_s:g} s; check that it is up and not saturated, "
                       "or raise the timeout")
        elif code == "UNAVAILABLE":
            # no connection, so the model did not run: a refusal the client may retry (e.g. while `serve up`
            # restarts the server), answered 503 + Retry-After like a full queue
            return Overloaded(f"{where} is unavailable ({details}); retry after the Retry-After seconds, and check "
                              f"that it is running at {self.target}", _UNAVAILABLE_RETRY_S)
        elif code == "UNAUTHENTICATED":
            message = (f"{where} refused the APS's token ({details}); start the APS with the token the inference "
                       "server expects")
        elif isinstance(error, ServiceError):
            message = f"{where} failed: {code}: {details}"
        else:  # the server's own verdict on the request (bad input, unknown model, conflict): its message
            return error
        return type(error)(message)


def _retry_after(metadata: Any) -> float | None:
    for key, value in metadata or ():
        if key == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return 1.0
    return None


class LocalPredictor:
    """The model in this process: an :class:`~aiforge.serve.inference.engine.InferenceEngine` (co-located mode).

    Parameters
    ----------
    engine : InferenceEngine
        The engine; its dynamic batcher and ONNX Runtime sessions run in this process's event loop and threads.

    Examples
    --------
    >>> predictor = LocalPredictor.from_repository("model_repo")  # doctest: +SKIP
    """

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return f"LocalPredictor({self.engine!r})"

    @classmethod
    def from_repository(cls, root: Any, *, batching: bool = True,
                        overrides: Mapping[str, Any] | None = None) -> LocalPredictor:
        """A predictor over the model repository at ``root`` (a folder of NAME/VERSION/model.onnx)."""
        from aiforge.serve.inference.engine import InferenceEngine
        from aiforge.serve.inference.repository import ModelRepository

        repository = ModelRepository.load(root, overrides=dict(overrides) if overrides else None)
        return cls(InferenceEngine(repository, batching=batching))

    async def infer(self, request: InferRequest, model: str, version: str | None = None) -> InferResponse:
        """Run the model in this process."""
        return await self.engine.infer(request, model, version)

    async def ready(self, model: str | None = None, version: str | None = None) -> bool:
        """Whether the engine (and the model, when named) is loaded."""
        return self.engine.ready(model, version)

    async def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The model's metadata from the repository."""
        return dict(self.engine.repository.get(model, version).metadata())

    async def close(self) -> None:
        """Finish in-flight batches and stop the engine."""
        await self.engine.close()


def predictor_from_url(url: str, *, timeout_s: float = 5.0, token: str | None = None, batching: bool = True,
                       overrides: Mapping[str, Any] | None = None, coalesce: bool = False) -> Predictor:
    """The predictor a URL names.

    Parameters
    ----------
    url : str
        ``grpc://HOST:PORT`` for an inference server, or ``local:///path/to/model_repo`` to run the models in this
        process (co-located mode).
    timeout_s, token
        For ``grpc://``: the per-call deadline and the server's bearer token.
    batching, overrides
        For ``local://``: dynamic batching on/off and model config overrides.
    coalesce : bool
        For ``grpc://``: merge concurrent requests into one call (:class:`~aiforge.serve.CoalescingPredictor`).

    Examples
    --------
    >>> predictor_from_url("grpc://127.0.0.1:8081")
    GrpcPredictor('127.0.0.1:8081', timeout_s=5.0)
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "grpc":
        predictor = GrpcPredictor(rest, timeout_s=timeout_s, token=token)
        if coalesce:
            return CoalescingPredictor(predictor)
        return predictor
    if sep and scheme == "local":
        if not rest:
            raise InvalidInput("local:// needs the model repository path, e.g. local:///srv/model_repo")
        return LocalPredictor.from_repository(rest, batching=batching, overrides=overrides)
    hint = " (the APS talks gRPC: use grpc://HOST:GRPC_PORT, the inference server's --grpc-port)" \
        if scheme in ("http", "https") else ""
    raise InvalidInput(f"predictor URL must be grpc://HOST:PORT or local:///MODEL_REPO; got {url!r}{hint}")
