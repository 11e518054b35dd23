"""The inference server over REST: metadata, inference, errors, overload, auth, metrics, shutdown and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from aiforge.cli import app
from aiforge.serve.protocol import InferRequest, Tensor, request_to_json, response_from_json
from conftest import assert_same_as_onnxruntime


def _body(x: np.ndarray, name: str = "input", **kw: Any) -> bytes:
    return request_to_json(InferRequest([Tensor(name, x)], **kw))


def _poll(condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def client(inference_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inference_server.http, timeout=30) as session:
        yield session


def test_server_metadata_health_and_docs(client: httpx.Client) -> None:
    from aiforge.version import __version__

    assert client.get("/v2").json() == {"name": "aiforge", "version": __version__, "extensions": []}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/health/ready").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v2/models/{model_name}/versions/{version}/infer" in paths


def test_model_metadata_and_ready(client: httpx.Client) -> None:
    meta = client.get("/v2/models/digits").json()
    assert meta == {
        "name": "digits", "versions": ["1", "2"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.get("/v2/models/digits/versions/1").json() == {**meta, "versions": ["1"]}
    assert client.get("/v2/models/digits/ready").json() == {"name": "digits", "version": "2", "ready": True}
    assert client.get("/v2/models/digits/versions/1/ready").json() == {"name": "digits", "version": "1", "ready": True}


@pytest.mark.parametrize("version", [None, "1", "2"])
def test_infer_equals_onnxruntime(client: httpx.Client, onnx_repo: Path, digits_x: np.ndarray,
                                  version: str | None) -> None:
    x = digits_x[10:17]
    route = "/v2/models/digits/infer" if version is None else f"/v2/models/digits/versions/{version}/infer"
    reply = client.post(route, content=_body(x, id="req-7"))
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    response = response_from_json(reply.content)
    assert (response.model_name, response.model_version, response.id) == ("digits", version or "2", "req-7")
    out = response.as_dict()
    assert_same_as_onnxruntime(out, onnx_repo, version or "2", x)
    assert out["probabilities"].dtype == np.float32


def test_requested_outputs_only(client: httpx.Client, digits_x: np.ndarray) -> None:
    reply = client.post("/v2/models/digits/infer", content=_body(digits_x[:2], outputs=["label"]))
    assert [o["name"] for o in reply.json()["outputs"]] == ["label"]


def test_batching_on_equals_off_under_concurrency(onnx_repo: Path, digits_x: np.ndarray, start_server: Any) -> None:
    # ONNX Runtime's MLP kernels give bit-identical rows whatever the batch size (not every model's do: a
    # LogisticRegression's probabilities differ in the last bit between batch sizes, in ONNX Runtime itself).
    requests = [digits_x[i:i + 1 + i % 3] for i in range(48)]

    def answers(batching: bool) -> list[bytes]:
        with start_server(onnx_repo, batching=batching) as server, httpx.Client(base_url=server.http,
                                                                             timeout=30) as session:
            def send(x: np.ndarray) -> bytes:
                reply = session.post("/v2/models/digits/infer", content=_body(x))
                assert reply.status_code == 200
                return reply.content

            with ThreadPoolExecutor(16) as pool:
                return list(pool.map(send, requests))

    batched, alone = answers(True), answers(False)
    assert batched == alone


def test_fixed_batch_model(client: httpx.Client) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    reply = client.post("/v2/models/fixed/infer", content=_body(x, name="x"))
    assert reply.status_code == 200
    np.testing.assert_array_equal(response_from_json(reply.content).as_dict()["y"], 2 * x)
    reply = client.post("/v2/models/fixed/infer", content=_body(x[:2], name="x"))
    assert reply.status_code == 400
    assert reply.json() == {"error": "input 'x': expected shape [4, 3] (-1 = any size), got [2, 3]"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "the request body is not valid JSON: unexpected character, expected a string key: line 1 "
                       "column 2 (char 1)"),
        (b'{"inputs": []}', "the request needs a non-empty 'inputs' list of {name, shape, datatype, data} objects"),
        (b'{"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": ' + b"[0.0" + b",0.0" * 62
         + b"]}]}", "input 'input': expected shape [-1, 64] (-1 = any size), got [1, 63]"),
        (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": ' + b"[0.0" + b",0.0" * 63
         + b"]}]}", "input 'input': expected datatype FP32 with shape [-1, 64], got FP64"),
        (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [1, 2]}]}',
         "input 'input': shape [1, 64] needs 64 values but 'data' has 2"),
        (b'{"inputs": [{"name": "pixels", "shape": [1], "datatype": "FP32", "data": [1]}]}',
         "model 'digits' expects inputs 'input'; missing 'input'; unknown 'pixels'"),
        (b'{"inputs": [{"name": "flags", "shape": [2], "datatype": "BOOL", "data": [true, null]}]}',
         "input 'flags' (BOOL) holds a null; only FP16, FP32 and FP64 tensors can carry missing values (null = NaN)"),
        (b'{"inputs": [{"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [[null, 3]]}]}',
         "input 'ids' (INT64) holds a null; only FP16, FP32 and FP64 tensors can carry missing values (null = NaN)"),
        (b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [1]}], "parameters": true}',
         "the request: 'parameters' must be an object of name -> value, got bool"),
    ],
)
def test_bad_requests_are_400(client: httpx.Client, body: bytes, error: str) -> None:
    reply = client.post("/v2/models/digits/infer", content=body)
    assert reply.status_code == 400
    assert reply.json() == {"error": error}


NULLS = b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [' + b",".join([b"null"] * 64) \
    + b"]}]}"
ALL_MISSING = ("input 'input' has 64 missing values (null/NaN) at [0, 0], [0, 1], [0, 2] and 61 more; model "
               "'digits' was not trained with missing values: fill them in, or set allow_nan: true in its config.yaml "
               "if it takes NaN")


def test_nulls_are_400_unless_the_model_allows_nan(client: httpx.Client, onnx_repo: Path, start_server: Any) -> None:
    reply = client.post("/v2/models/digits/infer", content=NULLS)  # JSON null in an FP32 tensor = NaN = missing
    assert reply.status_code == 400
    assert reply.json() == {"error": ALL_MISSING}
    (onnx_repo / "digits" / "config.yaml").write_text("allow_nan: true\n")
    with start_server(onnx_repo) as server:
        allowed = httpx.post(server.http + "/v2/models/digits/infer", content=NULLS, timeout=30)
    assert allowed.status_code == 200  # what the model makes of NaN is the model's business
    assert response_from_json(allowed.content).as_dict()["label"].shape == (1,)


def test_unknown_model_or_version_is_404(client: httpx.Client, digits_x: np.ndarray) -> None:
    reply = client.post("/v2/models/nope/infer", content=_body(digits_x[:1]))
    assert (reply.status_code, reply.json()) == (404, {
        "error": "model 'nope' is not in the repository; available models: digits, fixed"})
    reply = client.post("/v2/models/digits/versions/3/infer", content=_body(digits_x[:1]))
    assert (reply.status_code, reply.json()) == (404, {
        "error": "model 'digits' has no version '3'; available versions: 1, 2"})
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/digits/versions/3/ready").status_code == 404


def test_full_queue_is_503_with_retry_after(onnx_repo: Path, digits_x: np.ndarray, start_server: Any,
                                            blocked_model: threading.Event) -> None:
    with start_server(onnx_repo, batching=False, overrides={"max_queue_size": 2}) as server, \
            httpx.Client(base_url=server.http, timeout=30) as session, ThreadPoolExecutor(4) as pool:
        batcher = server.engine.batcher(server.engine.repository.get("digits"))
        body = _body(digits_x[:1])
        pending = []
        for in_flight in (1, 2, 4):  # one in the (blocked) worker, one held by the collector, two queued
            while len(pending) < in_flight:
                pending.append(pool.submit(session.post, "/v2/models/digits/infer", content=body))
            _poll(lambda n=in_flight: batcher.in_flight == n, f"{in_flight} requests in flight")  # type: ignore[misc]
        assert batcher.queue_depth == 2
        reply = session.post("/v2/models/digits/infer", content=body)
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        assert reply.json() == {"error": "model 'digits' version 2 has 2 requests waiting (max_queue_size); "
                                         "retry after 1 s or add replicas"}
        blocked_model.set()
        assert [f.result().status_code for f in pending] == [200] * 4


def test_bearer_auth(onnx_repo: Path, digits_x: np.ndarray, start_server: Any) -> None:
    with start_server(onnx_repo, token="s3cret") as server, httpx.Client(base_url=server.http, timeout=30) as session:
        reply = session.post("/v2/models/digits/infer", content=_body(digits_x[:1]))
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.json() == {"error": "missing or wrong bearer token; send the header 'Authorization: Bearer "
                                         "<token>'"}
        assert session.get("/v2/models/digits", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = session.post("/v2/models/digits/infer", content=_body(digits_x[:1]),
                          headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert session.get("/v2/health/live").status_code == 200
        assert session.get("/v2/health/ready").status_code == 200
        assert session.get("/metrics").status_code == 200  # public by default, for scrapers without the token
    with start_server(onnx_repo, token="s3cret", metrics_public=False) as server, \
            httpx.Client(base_url=server.http, timeout=30) as session:
        assert session.get("/metrics").status_code == 401
        assert session.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert session.get("/v2/health/ready").status_code == 200


def test_metrics(client: httpx.Client, digits_x: np.ndarray) -> None:
    for rows in (1, 3):
        assert client.post("/v2/models/digits/infer", content=_body(digits_x[:rows])).status_code == 200
    assert client.post("/v2/models/digits/infer", content=b"[]").status_code == 400
    text = client.get("/metrics").text
    assert 'aiforge_inference_requests_total{route="infer",status="200"} 2.0' in text
    assert 'aiforge_inference_requests_total{route="infer",status="400"} 1.0' in text
    assert 'aiforge_inference_latency_seconds_count{stage="total"} 3.0' in text
    assert 'aiforge_inference_latency_seconds_count{stage="queue"} 2.0' in text
    assert "aiforge_inference_batch_size_sum 4.0" in text
    assert 'aiforge_inference_queue_depth{model="digits/2"} 0.0' in text


_SLOW_SERVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path

    from aiforge.serve.inference.server import run_inference_server
    from aiforge.serve.inference.repository import ModelVersion

    repo, port, grpc_port, entered, release = sys.argv[1:]
    original = ModelVersion.run

    def run(self, inputs, outputs=None):  # the slow path: holds the request until the test releases it
        Path(entered).touch()
        while not Path(release).exists():
            time.sleep(0.01)
        return original(self, inputs, outputs)

    ModelVersion.run = run
    run_inference_server(repo, port=int(port), grpc_port=int(grpc_port))
    print("stopped cleanly", flush=True)
""")


def test_graceful_shutdown_finishes_in_flight_request(tmp_path: Path, onnx_repo: Path, digits_x: np.ndarray,
                                                      get_free_port: Callable[[], int]) -> None:
    script = tmp_path / "slow_server.py"
    script.write_text(_SLOW_SERVER)
    entered, release = tmp_path / "entered", tmp_path / "release"
    port = get_free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(script), str(onnx_repo), str(port), str(get_free_port()),
                                str(entered), str(release)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert process.poll() is None, process.communicate()
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        _poll(ready, "the server to be ready")
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(httpx.post, f"{url}/v2/models/digits/infer", content=_body(digits_x[:2]), timeout=30)
            _poll(entered.exists, "the request to reach the model")
            process.send_signal(signal.SIGTERM)

            def refused() -> bool:
                try:
                    httpx.get(f"{url}/v2/health/live", timeout=1)
                except httpx.TransportError:
                    return True
                return False

            _poll(refused, "the server to stop accepting connections")
            release.touch()
            answer = reply.result(timeout=30)
        assert answer.status_code == 200
        assert response_from_json(answer.content).as_dict()["label"].shape == (2,)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert out == "stopped cleanly\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["serve", "model", "--help"])
    assert result.exit_code == 0
    assert "Example: aiforge serve model ./models --port 8080 --max-batch-size 64" in result.output
    for option in ("--grpc-port", "--max-queue-delay-ms", "--no-batching", "--threads", "--token-env"):
        assert option in result.output


def test_cli_bad_model_repo(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = CliRunner().invoke(app, ["serve", "model", str(missing)])
    assert result.exit_code == 1
    assert result.output == (f"Error: model repository {missing} does not exist or is not a folder; expected "
                             f"{missing}/<model>/<version>/model.onnx "
                             f"(aiforge.serve.deploy.export_sklearn or export_torch writes one)\n")


def test_cli_token_env_must_be_set(onnx_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIFORGE_TEST_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "model", str(onnx_repo), "--token-env", "AIFORGE_TEST_TOKEN"])
    assert result.exit_code == 1
    assert result.output == ("Error: the token variable $AIFORGE_TEST_TOKEN is unset or empty; export "
                             "AIFORGE_TEST_TOKEN=<token>, or leave out --token-env (token_env) to serve without auth\n")


def test_too_large_body_is_413(client: httpx.Client, digits_x: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiforge.serve.inference.server as inference

    monkeypatch.setattr(inference, "_MAX_BODY", 100)
    reply = client.post("/v2/models/digits/infer", content=_body(digits_x[:1]))
    assert reply.status_code == 413
    assert reply.json() == {"error": "the request body is larger than 64 MiB; send fewer rows per request"}
