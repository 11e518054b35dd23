"""The inference server over gRPC (GRPCInferenceService): the six RPCs, status codes, auth and overload."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from aiforge.serve.protocol import (
    InferRequest,
    Tensor,
    grpc_modules,
    request_to_grpc,
    request_to_json,
    response_from_grpc,
    response_from_json,
)
from conftest import assert_same_as_onnxruntime

pb, services = grpc_modules()


@pytest.fixture
def stub(inference_server: Any) -> Iterator[Any]:
    with grpc.insecure_channel(inference_server.grpc) as channel:
        yield services.GRPCInferenceServiceStub(channel)


def _infer(x: np.ndarray, model: str = "digits", version: str = "", name: str = "input") -> Any:
    return request_to_grpc(InferRequest([Tensor(name, x)], id="g1"), model, version)


def test_health_and_metadata(stub: Any) -> None:
    from aiforge.version import __version__

    assert stub.ServerLive(pb.ServerLiveRequest()).live is True
    assert stub.ServerReady(pb.ServerReadyRequest()).ready is True
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert (meta.name, meta.version, list(meta.extensions)) == ("aiforge", __version__, [])
    assert stub.ModelReady(pb.ModelReadyRequest(name="digits")).ready is True
    assert stub.ModelReady(pb.ModelReadyRequest(name="digits", version="1")).ready is True
    model = stub.ModelMetadata(pb.ModelMetadataRequest(name="digits"))
    assert (model.name, list(model.versions), model.platform) == ("digits", ["1", "2"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("input", "FP32", [-1, 64])]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [
        ("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 10])]
    assert list(stub.ModelMetadata(pb.ModelMetadataRequest(name="digits", version="1")).versions) == ["1"]


@pytest.mark.parametrize("version", ["", "1"])
def test_infer_equals_onnxruntime_and_rest(stub: Any, inference_server: Any, onnx_repo: Path,
                                           digits_x: np.ndarray, version: str) -> None:
    x = digits_x[20:25]
    response = response_from_grpc(stub.ModelInfer(_infer(x, version=version)))
    assert (response.model_name, response.model_version, response.id) == ("digits", version or "2", "g1")
    out = response.as_dict()
    assert_same_as_onnxruntime(out, onnx_repo, version or "2", x)
    route = "/v2/models/digits/infer" if not version else f"/v2/models/digits/versions/{version}/infer"
    rest = httpx.post(inference_server.http + route, content=request_to_json(InferRequest([Tensor("input", x)])))
    for name, value in response_from_json(rest.content).as_dict().items():
        np.testing.assert_array_equal(value, out[name])


def test_typed_contents_are_accepted(stub: Any, digits_x: np.ndarray) -> None:
    x = digits_x[:2]
    message = pb.ModelInferRequest(model_name="digits")
    tensor = message.inputs.add(name="input", datatype="FP32", shape=[2, 64])
    tensor.contents.fp32_contents.extend(x.reshape(-1).tolist())
    out = response_from_grpc(stub.ModelInfer(message)).as_dict()
    assert out["label"].shape == (2,)


def _code(call: Any, request: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    return info.value.code(), info.value.details()


def test_status_codes(stub: Any, digits_x: np.ndarray) -> None:
    assert _code(stub.ModelInfer, _infer(digits_x[:1], model="nope")) == (
        grpc.StatusCode.NOT_FOUND, "model 'nope' is not in the repository; available models: digits, fixed")
    assert _code(stub.ModelInfer, _infer(digits_x[:1], version="9")) == (
        grpc.StatusCode.NOT_FOUND, "model 'digits' has no version '9'; available versions: 1, 2")
    assert _code(stub.ModelInfer, _infer(digits_x[:1, :10])) == (
        grpc.StatusCode.INVALID_ARGUMENT, "input 'input': expected shape [-1, 64] (-1 = any size), got [1, 10]")
    assert _code(stub.ModelInfer, _infer(digits_x[:1].astype(np.float64))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "input 'input': expected datatype FP32 with shape [-1, 64], got FP64")
    assert _code(stub.ModelInfer, pb.ModelInferRequest(model_name="digits")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "the request has no inputs")
    assert _code(stub.ModelMetadata, pb.ModelMetadataRequest(name="nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(stub.ModelReady, pb.ModelReadyRequest(name="digits", version="4"))[0] == grpc.StatusCode.NOT_FOUND


def test_missing_values_are_invalid_argument(stub: Any) -> None:
    raw = _infer(np.full((1, 64), np.nan, np.float32))
    typed = pb.ModelInferRequest(model_name="digits")
    tensor = typed.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    tensor.contents.fp32_contents.extend([float("nan")] * 64)
    for request in (raw, typed):
        assert _code(stub.ModelInfer, request) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "input 'input' has 64 missing values (null/NaN) at [0, 0], [0, 1], [0, 2] and 61 more; model 'digits' "
            "was not trained with missing values: fill them in, or set allow_nan: true in its config.yaml if it "
            "takes NaN")


def test_bearer_auth(onnx_repo: Path, digits_x: np.ndarray, start_server: Any) -> None:
    with start_server(onnx_repo, token="s3cret") as server, grpc.insecure_channel(server.grpc) as channel:
        stub = services.GRPCInferenceServiceStub(channel)
        assert _code(stub.ModelInfer, _infer(digits_x[:1])) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or wrong bearer token; send the metadata 'authorization: Bearer <token>'")
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelMetadata(pb.ModelMetadataRequest(name="digits"), metadata=[("authorization", "Bearer no")])
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.ModelInfer(_infer(digits_x[:1]), metadata=[("authorization", "Bearer s3cret")])
        assert response_from_grpc(reply).as_dict()["label"].shape == (1,)
        assert stub.ServerLive(pb.ServerLiveRequest()).live is True
        assert stub.ServerReady(pb.ServerReadyRequest()).ready is True


def test_full_queue_is_unavailable_with_retry_after(onnx_repo: Path, digits_x: np.ndarray, start_server: Any,
                                                    blocked_model: threading.Event) -> None:
    with start_server(onnx_repo, batching=False, overrides={"max_queue_size": 1}) as server, \
            grpc.insecure_channel(server.grpc) as channel, ThreadPoolExecutor(3) as pool:
        stub = services.GRPCInferenceServiceStub(channel)
        batcher = server.engine.batcher(server.engine.repository.get("digits"))
        request = _infer(digits_x[:1])
        pending = []
        for in_flight in (1, 2, 3):  # one in the (blocked) worker, one held by the collector, one queued
            pending.append(pool.submit(stub.ModelInfer, request))
            for _ in range(3000):
                if batcher.in_flight == in_flight:
                    break
                time.sleep(0.01)
        assert (batcher.in_flight, batcher.queue_depth) == (3, 1)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == ("model 'digits' version 2 has 1 requests waiting (max_queue_size); retry "
                                        "after 1 s or add replicas")
        assert dict(info.value.trailing_metadata())["retry-after"] == "1"
        blocked_model.set()
        assert [response_from_grpc(f.result()).as_dict()["label"].shape for f in pending] == [(1,)] * 3
