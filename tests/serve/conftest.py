"""Fixtures of the SERVE tests: a small model repository and a running inference server on free ports.

``onnx_repo`` holds:

- ``digits`` version 1: an MLPClassifier on scikit-learn's digits (input ``input`` FP32 [-1, 64]; outputs ``label``
  INT64 [-1] and ``probabilities`` FP32 [-1, 10]); version 2: a smaller MLP with the same signature.
- ``fixed`` version 1: ``y = 2 * x`` with a fixed batch dimension (input ``x`` FP32 [4, 3], output ``y``), so it is
  not batchable.

``inference_server`` is a real server (REST + gRPC on loopback) over that repository, running in a thread of the
test process; the ``start_server`` fixture starts one with other settings (``with start_server(repo, token="t") as
server: ...``), ``get_free_port`` gives a free port, ``blocked_model`` holds every model run until released.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiforge.serve.inference.engine import InferenceEngine


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sklearn_onnx(model: Any) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, 64]))],
                  options={id(model): {"zipmap": False}}, target_opset=17)
    return bytes(onx.SerializeToString())


def _fixed_onnx() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        initializer=[two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@pytest.fixture(scope="session")
def digits_x() -> np.ndarray:
    """The digits features as float32 in [0, 1], shape (1797, 64)."""
    from sklearn.datasets import load_digits

    x, _ = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32)


@pytest.fixture(scope="session")
def onnx_models(digits_x: np.ndarray) -> dict[str, bytes]:
    """The serialized models of ``onnx_repo``: ``digits/1``, ``digits/2`` and ``fixed/1``."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    _, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = MLPClassifier((16,), max_iter=30, random_state=0).fit(digits_x, y)
        second = MLPClassifier((8,), max_iter=20, random_state=1).fit(digits_x, y)
    return {"digits/1": _sklearn_onnx(first), "digits/2": _sklearn_onnx(second), "fixed/1": _fixed_onnx()}


@pytest.fixture
def onnx_repo(tmp_path: Path, onnx_models: dict[str, bytes]) -> Path:
    """A model repository folder with ``digits`` (versions 1 and 2) and ``fixed`` (version 1)."""
    root = tmp_path / "models"
    for key, payload in onnx_models.items():
        folder = root / key
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(payload)
    return root


@dataclass
class RunningServer:
    """A server started by :func:`run_server`: where it listens and the engine behind it."""

    http: str  # "http://127.0.0.1:PORT"
    grpc: str  # "127.0.0.1:PORT", a grpc channel target
    engine: InferenceEngine

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.grpc}"


@contextlib.contextmanager
def run_server(repo: Path | InferenceEngine, *, token: str | None = None, batching: bool = True,
               overrides: dict[str, Any] | None = None, metrics_public: bool = True) -> Iterator[RunningServer]:
    """Run an inference server (REST + gRPC) in a background thread with its own event loop; stop it on exit."""
    from aiforge.serve.inference.repository import ModelRepository
    from aiforge.serve.inference.server import create_grpc_server, create_inference_app
    from aiforge.server import ServerMetrics

    if isinstance(repo, InferenceEngine):
        engine = repo
    else:
        engine = InferenceEngine(ModelRepository.load(repo, overrides=overrides), batching=batching,
                                 metrics=ServerMetrics("aiforge_inference"))
    app = create_inference_app(engine, token=token, metrics_public=metrics_public)
    http_port, grpc_port = free_port(), free_port()
    with serving_in_thread("inference-server", app, port=http_port, grace_s=5.0, on_shutdown=engine.close,
                           grpc_server=lambda: create_grpc_server(engine, port=grpc_port, token=token),
                           grpc_port=grpc_port):
        yield RunningServer(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", engine)


@contextlib.contextmanager
def serving_in_thread(name: str, app: Any, **options: Any) -> Iterator[None]:
    """Run ``aiforge.server.serve(app, **options)`` in a thread with its own event loop, as the servers run in
    their processes; return once it accepts requests, stop it gracefully on exit."""
    from aiforge.server import ServerThread

    port = options.pop("port")
    with ServerThread(app, port=port, name=name, **options):
        yield


@pytest.fixture
def inference_server(onnx_repo: Path) -> Iterator[RunningServer]:
    """A running inference server over ``onnx_repo``: ``.http`` (base URL), ``.grpc`` (target), ``.engine``."""
    with run_server(onnx_repo) as server:
        yield server


@pytest.fixture
def start_server() -> Any:
    """``start_server(repo_or_engine, token=None, batching=True, overrides=None, metrics_public=True)``: a context
    manager running a server in a thread; yields a :class:`RunningServer`."""
    return run_server


@pytest.fixture
def get_free_port() -> Any:
    """``get_free_port()``: a TCP port nobody listens on right now."""
    return free_port


@pytest.fixture
def blocked_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every model run waits until the returned event is set (set at teardown at the latest)."""
    from aiforge.serve.inference.repository import ModelVersion

    release = threading.Event()
    original = ModelVersion.run

    def run(self: ModelVersion, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> Any:
        release.wait(30)
        return original(self, inputs, outputs)

    monkeypatch.setattr(ModelVersion, "run", run)
    try:
        yield release
    finally:
        release.set()


class BackgroundHTTPServer:
    """A real aiohttp server on a free loopback port, in a background thread; subclasses answer in ``handle``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, request: Any) -> Any:
        raise NotImplementedError

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{route}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.2, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self.runner, sock).start()

    def __enter__(self) -> Any:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def assert_same_as_onnxruntime(outputs: dict[str, np.ndarray], onnx_repo: Path, version: str, x: np.ndarray) -> None:
    """``outputs`` of the ``digits`` model equal ONNX Runtime's own on ``x``, bit for bit."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_repo / "digits" / version / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"input": x})
    np.testing.assert_array_equal(outputs["label"], label)
    np.testing.assert_array_equal(outputs["probabilities"], probabilities)


@pytest.fixture(autouse=True)
def _workspace_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started by a test write their logs into its own workspace (``serve up`` keeps them in
    ``AIFORGE_HOME/logs``), never into the checkout's ``./.aiforge``; the same folder as the ``workspace`` fixture's."""
    monkeypatch.setenv("AIFORGE_HOME", str(tmp_path / "home"))
