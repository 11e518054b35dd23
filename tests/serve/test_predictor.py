"""Predictors: gRPC to a real inference server and co-located, with every error mapped to an aiforge error."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from aiforge.errors import Conflict, InvalidInput, ModelNotFound, Overloaded, ServiceError
from aiforge.serve.aps.predictor import GrpcPredictor, LocalPredictor, predictor_from_url
from aiforge.serve.protocol import InferRequest, Tensor
from conftest import RunningServer, free_port, run_server

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(make())  # type: ignore[arg-type]


def request(x: np.ndarray) -> InferRequest:
    return InferRequest([Tensor("input", x)])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_predictor_from_url() -> None:
    grpc = predictor_from_url("grpc://127.0.0.1:9001", timeout_s=2.5, token="t")
    assert isinstance(grpc, GrpcPredictor)
    assert (grpc.target, grpc.timeout_s) == ("127.0.0.1:9001", 2.5)
    with pytest.raises(InvalidInput, match=r"predictor URL must be grpc://HOST:PORT or local:///MODEL_REPO; got "
                                           r"'http://x:8080' \(the APS talks gRPC: use grpc://HOST:GRPC_PORT"):
        predictor_from_url("http://x:8080")
    with pytest.raises(InvalidInput, match=r"predictor URL must be grpc://HOST:PORT or local:///MODEL_REPO; got 'x'$"):
        predictor_from_url("x")
    with pytest.raises(InvalidInput, match="gRPC target must be HOST:PORT"):
        predictor_from_url("grpc://localhost")
    with pytest.raises(InvalidInput, match="local:// needs the model repository path"):
        predictor_from_url("local://")
    with pytest.raises(InvalidInput, match=r"^timeout_s must be a positive number; got 0$"):
        GrpcPredictor("h:1", timeout_s=0)


def test_grpc_and_local_predictors_agree(inference_server: RunningServer, onnx_repo: Path,
                                         digits_x: np.ndarray) -> None:
    x = digits_x[:3]
    expected = inference_server.engine.repository.get("digits").run({"input": x})

    async def both() -> tuple[Any, ...]:
        remote = GrpcPredictor(inference_server.grpc)
        local = predictor_from_url(f"local://{onnx_repo}")
        try:
            return (await remote.infer(request(x), "digits"), await local.infer(request(x), "digits"),
                    await remote.metadata("digits"), await local.metadata("digits"),
                    await remote.infer(request(x), "digits", "1"))
        finally:
            await remote.close()
            await local.close()

    remote, local, remote_meta, local_meta, pinned = run(both)
    assert isinstance(predictor_from_url(f"local://{onnx_repo}"), LocalPredictor)
    for response in (remote, local):
        assert (response.model_name, response.model_version) == ("digits", "2")
        assert [t.name for t in response.outputs] == ["label", "probabilities"]
        np.testing.assert_array_equal(response.as_dict()["label"], expected["label"])
        np.testing.assert_array_equal(response.as_dict()["probabilities"], expected["probabilities"])
    assert pinned.model_version == "1"
    assert remote_meta == {"name": "digits", "versions": ["1", "2"], "platform": "onnxruntime_onnx",
                           "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
                           "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                                       {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]}
    assert local_meta["inputs"] == remote_meta["inputs"] and local_meta["outputs"] == remote_meta["outputs"]


def test_readiness(inference_server: RunningServer) -> None:
    async def check() -> list[bool]:
        predictor = GrpcPredictor(inference_server.grpc)
        try:
            return [await predictor.ready(), await predictor.ready("digits"), await predictor.ready("digits", "1"),
                    await predictor.ready("nope"), await predictor.ready("digits", "9")]
        finally:
            await predictor.close()

    assert run(check) == [True, True, True, False, False]


def test_server_errors_keep_their_meaning(inference_server: RunningServer) -> None:
    async def call(x: np.ndarray, model: str = "digits", version: str | None = None) -> Any:
        predictor = GrpcPredictor(inference_server.grpc)
        try:
            return await predictor.infer(request(x), model, version)
        finally:
            await predictor.close()

    with pytest.raises(InvalidInput, match=r"^input 'input': expected shape \[-1, 64\]"):
        run(lambda: call(np.zeros((1, 3), np.float32)))
    with pytest.raises(InvalidInput, match=r"^input 'input'.*FP32.*FP64|^input 'input'.*FP64.*FP32"):
        run(lambda: call(np.zeros((1, 64), np.float64)))
    with pytest.raises(ModelNotFound, match="nope"):
        run(lambda: call(np.zeros((1, 64), np.float32), "nope"))
    with pytest.raises(ModelNotFound, match="9"):
        run(lambda: call(np.zeros((1, 64), np.float32), "digits", "9"))


def test_server_down_is_a_service_error_at_once() -> None:
    async def call() -> Any:
        predictor = GrpcPredictor(f"127.0.0.1:{free_port()}", timeout_s=10)
        try:
            assert await predictor.ready() is False
            return await predictor.infer(request(np.zeros((1, 64), np.float32)), "digits")
        finally:
            await predictor.close()

    with pytest.raises(Overloaded, match=r"inference server 127.0.0.1:\d+ is unavailable .*; retry after the "
                                         "Retry-After seconds, and check that it is running"):
        run(call)


def test_a_hung_server_fails_at_the_deadline(silent_port: int) -> None:
    async def call() -> Any:
        predictor = GrpcPredictor(f"127.0.0.1:{silent_port}", timeout_s=0.3, ready_timeout_s=0.2)
        try:
            # the HTTP/2 handshake never completes: gRPC reports UNAVAILABLE (or the deadline, whichever is first)
            with pytest.raises(ServiceError, match=rf"^inference server 127.0.0.1:{silent_port} (is unavailable|did "
                                                   "not answer within 0.3 s)"):
                await predictor.infer(request(np.zeros((1, 64), np.float32)), "digits")
            return await predictor.ready("digits")
        finally:
            await predictor.close()

    assert run(call) is False


def test_a_model_that_does_not_answer_fails_at_the_deadline(inference_server: RunningServer,
                                                            blocked_model: threading.Event) -> None:
    async def call() -> Any:
        predictor = GrpcPredictor(inference_server.grpc, timeout_s=0.3)
        try:
            return await predictor.infer(request(np.zeros((1, 64), np.float32)), "digits")
        finally:
            await predictor.close()

    with pytest.raises(ServiceError, match=rf"^inference server {inference_server.grpc} did not answer within 0.3 s; "
                                           "check that it is up and not saturated, or raise the timeout$"):
        run(call)
    blocked_model.set()


def test_a_full_queue_is_overloaded_with_retry_after(onnx_repo: Path, blocked_model: threading.Event) -> None:
    overrides = {"max_batch_size": 1, "max_queue_size": 1}
    with run_server(onnx_repo, overrides=overrides) as server:
        async def flood() -> list[Any]:
            predictor = GrpcPredictor(server.grpc, timeout_s=10)
            try:
                calls = [asyncio.ensure_future(predictor.infer(request(np.zeros((1, 64), np.float32)), "digits"))
                         for _ in range(4)]
                await asyncio.wait(calls, return_when=asyncio.FIRST_EXCEPTION)
                blocked_model.set()
                return await asyncio.gather(*calls, return_exceptions=True)
            finally:
                await predictor.close()

        results = run(flood)
    refused = [r for r in results if isinstance(r, Exception)]
    assert refused and all(isinstance(r, Overloaded) for r in refused)
    assert refused[0].retry_after_s >= 1
    assert str(refused[0]).startswith(f"inference server {server.grpc} is overloaded: ")


def test_tokens(onnx_repo: Path) -> None:
    with run_server(onnx_repo, token="s3cret") as server:
        async def call(token: str | None) -> Any:
            predictor = GrpcPredictor(server.grpc, token=token)
            try:
                return await predictor.infer(request(np.zeros((1, 64), np.float32)), "digits")
            finally:
                await predictor.close()

        assert run(lambda: call("s3cret")).model_name == "digits"
        with pytest.raises(ServiceError, match=r"refused the APS's token .*; start the APS with the token"):
            run(lambda: call(None))
        with pytest.raises(ServiceError, match="refused the APS's token"):
            run(lambda: call("wrong"))


@pytest.mark.parametrize(
    ("code", "trailers", "kind", "message"),
    [
        ("INVALID_ARGUMENT", (), InvalidInput, "input 'x': bad shape"),
        ("NOT_FOUND", (), ModelNotFound, "input 'x': bad shape"),
        ("ABORTED", (), Conflict, "input 'x': bad shape"),
        ("UNAVAILABLE", (("retry-after", "2"),), Overloaded, "inference server 127.0.0.1:1 is overloaded: "
                                                             "input 'x': bad shape"),
        ("RESOURCE_EXHAUSTED", (), Overloaded, "inference server 127.0.0.1:1 is overloaded: input 'x': bad shape"),
        ("UNAVAILABLE", (), Overloaded, "inference server 127.0.0.1:1 is unavailable (input 'x': bad shape); "
                                        "retry after the Retry-After seconds, and check that it is running at "
                                        "127.0.0.1:1"),
        ("INTERNAL", (), ServiceError, "inference server 127.0.0.1:1 failed: INTERNAL: input 'x': bad shape"),
    ],
)
def test_grpc_codes_become_errors_through_the_table(code: str, trailers: tuple[tuple[str, str], ...], kind: type,
                                                     message: str) -> None:
    import grpc

    failure = grpc.aio.AioRpcError(getattr(grpc.StatusCode, code), grpc.aio.Metadata(),
                                   grpc.aio.Metadata(*trailers), details="input 'x': bad shape")
    error = GrpcPredictor("127.0.0.1:1")._error(failure, "digits", None)
    assert type(error) is kind
    assert str(error) == message
    if isinstance(error, Overloaded):
        assert error.retry_after_s == (2.0 if trailers else 1.0)
