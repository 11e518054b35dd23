"""The APS server on loopback: handler + real inference server over gRPC, co-located mode, and every failure path."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from aiforge.batch.transform import Transform
from aiforge.cli import app as cli
from aiforge.serve.aps.handler import Context, Handler, TransformHandler
from aiforge.serve.aps.predictor import Predictor, predictor_from_url
from aiforge.serve.aps.server import create_aps_app
from aiforge.serve.protocol import InferResponse
from conftest import RunningServer, free_port, run_server, serving_in_thread

DIGITS_SHAPE_ERROR = "input 'input': expected shape [-1, 64]"


class Running:
    """An APS server started by :func:`run_aps`."""

    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app
        self.client = httpx.Client(base_url=url, timeout=30)

    @property
    def in_flight(self) -> int:
        return int(self.app.state.aps.in_flight)


@contextlib.contextmanager
def run_aps(handler: Handler, predictor: Predictor | str, *, model: str = "digits",
            **options: Any) -> Iterator[Running]:
    """Run an APS server in a background thread with its own event loop; stop it (and its predictor) on exit."""
    if isinstance(predictor, str):
        predictor = predictor_from_url(predictor)
    app = create_aps_app(handler, predictor, model=model, **options)
    port = free_port()
    with serving_in_thread("aps-server", app, port=port, grace_s=2.0):
        running = Running(f"http://127.0.0.1:{port}", app)
        try:
            yield running
        finally:
            running.client.close()


def rows(x: np.ndarray) -> dict[str, Any]:
    return {"instances": x.tolist()}


# -- the happy path -------------------------------------------------------------------------------------------------


def test_grpc_and_co_located_give_the_same_json(inference_server: RunningServer, onnx_repo: Path,
                                                digits_x: np.ndarray) -> None:
    x = digits_x[:3]
    expected = inference_server.engine.repository.get("digits").run({"input": x})
    with run_aps(Handler(), inference_server.grpc_url) as remote:
        via_grpc = remote.client.post("/predict", json=rows(x), headers={"X-Request-Id": "abc-1"})
        oip = remote.client.post("/predict", json={"inputs": [
            {"name": "input", "shape": [3, 64], "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
    with run_aps(Handler(), f"local://{onnx_repo}") as local:
        co_located = local.client.post("/predict", json=rows(x))
    assert via_grpc.status_code == co_located.status_code == oip.status_code == 200
    assert via_grpc.headers["x-request-id"] == "abc-1"
    assert re.fullmatch(r"[0-9a-f]{32}", co_located.headers["x-request-id"])
    assert via_grpc.headers["content-type"] == "application/json"
    assert via_grpc.content == co_located.content == oip.content
    body = via_grpc.json()
    assert list(body) == ["outputs"]
    assert body["outputs"]["label"] == expected["label"].tolist()
    np.testing.assert_array_equal(np.asarray(body["outputs"]["probabilities"], np.float32), expected["probabilities"])


class Scoring(Handler):
    """A business handler: reads a customer record, keeps metadata, answers a decision."""

    loads = 0

    def load(self) -> None:
        type(self).loads += 1

    def preprocess(self, payload: Any, context: Context) -> dict[str, np.ndarray]:
        context.metadata["customer"] = payload["customer"]
        context.metadata["caller"] = context.headers.get("x-caller", "")
        return {"input": np.asarray([payload["pixels"]], dtype=np.float32)}

    def postprocess(self, response: InferResponse, context: Context) -> Any:
        label = int(response.as_dict()["label"][0])
        return {"customer": context.metadata["customer"], "label": label, "caller": context.metadata["caller"],
                "request_id": context.request_id}


class Tagged(Handler):
    blocking = True

    def preprocess(self, payload: Any, context: Context) -> Any:
        context.metadata["thread"] = threading.current_thread().name
        return super().preprocess(payload, context)


def test_handler_business_logic_and_metadata(inference_server: RunningServer, digits_x: np.ndarray) -> None:
    label = int(inference_server.engine.repository.get("digits").run({"input": digits_x[:1]})["label"][0])
    Scoring.loads = 0
    with run_aps(Scoring(), inference_server.grpc_url) as aps:
        answer = aps.client.post("/predict", json={"customer": "c-7", "pixels": digits_x[0].tolist()},
                                 headers={"x-caller": "shop", "x-request-id": "r-9"})
        missing = aps.client.post("/predict", json={"pixels": digits_x[0].tolist()})
        again = aps.client.post("/predict", json={"customer": "c-8", "pixels": digits_x[0].tolist()})
    assert Scoring.loads == 1
    assert answer.status_code == 200
    assert answer.json() == {"customer": "c-7", "label": label, "caller": "shop", "request_id": "r-9"}
    assert again.json()["customer"] == "c-8"
    assert missing.status_code == 400
    assert missing.json() == {"error": "preprocess rejected the request: KeyError: missing key 'customer'"}
    with run_aps(Tagged(), inference_server.grpc_url) as aps:
        tagged = aps.client.post("/predict", json=rows(digits_x[:1]))
    assert tagged.status_code == 200
    assert tagged.json()["metadata"]["thread"] != "aps-server"  # a blocking handler runs off the event loop
    assert list(tagged.json()) == ["outputs", "metadata"]


def test_transform_handler_serves_the_training_features(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    features = [{"numeric": {"column": "age", "scale": "standardize"}},
                {"categorical": {"column": "city", "encoding": "onehot", "top_k": 2}}]
    transform = Transform(features=features).fit(pa.table({"age": [20, 40], "city": ["Seoul", "Busan"]}))
    artifact = transform.save(tmp_path)
    width = len(transform.feature_names_)
    graph = helper.make_graph([helper.make_node("Identity", ["features"], ["echo"])], "echo",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
                              [helper.make_tensor_value_info("echo", TensorProto.FLOAT, [None, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (tmp_path / "repo" / "echo" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "echo" / "1" / "model.onnx").write_bytes(model.SerializeToString())
    records = [{"age": 31, "city": "Seoul"}, {"age": 55, "city": "Jeju"}]
    with run_aps(TransformHandler(artifact), f"local://{tmp_path / 'repo'}", model="echo") as aps:
        one = aps.client.post("/predict", json=records[0])
        many = aps.client.post("/predict", json=records)
        missing = aps.client.post("/predict", json={"age": 3})
    assert one.status_code == many.status_code == 200
    # float32 values travel as their shortest JSON form, which reads back to the very same float32
    np.testing.assert_array_equal(np.asarray(one.json()["outputs"]["echo"], np.float32),
                                  transform.transform_record(records[0])[None, :])
    np.testing.assert_array_equal(np.asarray(many.json()["outputs"]["echo"], np.float32),
                                  np.stack([transform.transform_record(r) for r in records]))
    assert missing.status_code == 400
    assert missing.json() == {"error": "record has no key 'city'; the transform reads: age, city"}


# -- errors ---------------------------------------------------------------------------------------------------------


def test_bad_requests_are_400_with_the_inference_servers_message(inference_server: RunningServer) -> None:
    with run_aps(Handler(), inference_server.grpc_url) as aps:
        malformed = aps.client.post("/predict", content=b'{"instances": [1,', headers={"content-type": "x"})
        shape = aps.client.post("/predict", json={"instances": [[0.5, 0.5]]})
        not_object = aps.client.post("/predict", json=[1, 2])
    assert malformed.status_code == 400
    assert malformed.json()["error"].startswith("the request body is not valid JSON: ")
    assert shape.status_code == 400
    assert shape.json()["error"].startswith(DIGITS_SHAPE_ERROR)
    assert not_object.status_code == 400
    assert not_object.json() == {"error": "the body must be a JSON object with 'inputs' or 'instances'; got list"}


ALL_MISSING = ("input 'input' has 64 missing values (null/NaN) at [0, 0], [0, 1], [0, 2] and 61 more; model "
               "'digits' was not trained with missing values: fill them in, or set allow_nan: true in its config.yaml "
               "if it takes NaN")


def test_a_request_of_nulls_is_400_naming_the_input(inference_server: RunningServer, onnx_repo: Path,
                                                    digits_x: np.ndarray) -> None:
    nulls = [None] * 64
    one_null = [*digits_x[0].tolist()[:63], None]
    oip = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": nulls}]}
    for predictor in (inference_server.grpc_url, f"local://{onnx_repo}"):
        with run_aps(Handler(), predictor) as aps:
            answers = [aps.client.post("/predict", json=body) for body in
                       ({"instances": [nulls]}, {"inputs": {"input": [nulls]}}, oip)]
            mixed = aps.client.post("/predict", json={"instances": [digits_x[1].tolist(), one_null]})
            good = aps.client.post("/predict", json=rows(digits_x[:1]))
        for answer in answers:
            assert answer.status_code == 400, predictor
            assert answer.json() == {"error": ALL_MISSING}
        assert mixed.status_code == 400
        assert mixed.json()["error"].startswith("input 'input' has 1 missing value (null/NaN) at [1, 63]; ")
        assert good.status_code == 200


def test_a_transform_handler_imputes_missing_values_by_its_own_rules(tmp_path: Path) -> None:
    """With a BATCH transform in front, a null is the transform's business: it imputes the train mean, as in BATCH,
    so the model sees no NaN and the answer is 200."""
    from onnx import TensorProto, helper

    transform = Transform(features=[{"numeric": {"column": "age", "scale": "minmax"}},
                                    {"numeric": {"column": "income"}}]).fit(
        pa.table({"age": [20.0, 40.0, 60.0], "income": [1.0, 2.0, 6.0]}))
    artifact = transform.save(tmp_path)
    graph = helper.make_graph([helper.make_node("Identity", ["features"], ["echo"])], "echo",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("echo", TensorProto.FLOAT, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (tmp_path / "repo" / "echo" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "echo" / "1" / "model.onnx").write_bytes(model.SerializeToString())
    with run_aps(TransformHandler(artifact), f"local://{tmp_path / 'repo'}", model="echo") as aps:
        answer = aps.client.post("/predict", json={"age": None, "income": None})
    assert answer.status_code == 200
    assert answer.json() == {"outputs": {"echo": [[0.5, 3.0]]}}  # the train means, scaled as in BATCH


def test_unknown_model_or_version_is_404(inference_server: RunningServer, digits_x: np.ndarray) -> None:
    with run_aps(Handler(), inference_server.grpc_url, model="nope") as aps:
        unknown = aps.client.post("/predict", json=rows(digits_x[:1]))
        ready = aps.client.get("/health/ready")
    with run_aps(Handler(), inference_server.grpc_url, version="9") as aps:
        version = aps.client.post("/predict", json=rows(digits_x[:1]))
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    assert version.status_code == 404 and "9" in version.json()["error"]


def test_inference_server_down_is_503(digits_x: np.ndarray) -> None:
    port = free_port()
    with run_aps(Handler(), f"grpc://127.0.0.1:{port}", timeout_s=10) as aps:
        answer = aps.client.post("/predict", json=rows(digits_x[:1]))
        ready = aps.client.get("/health/ready")
        live = aps.client.get("/health/live")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"  # nothing ran: the client may retry (the server may be restarting)
    assert answer.json()["error"].startswith(f"inference server 127.0.0.1:{port} is unavailable (")
    assert answer.json()["error"].endswith(f"retry after the Retry-After seconds, and check that it is running at "
                                           f"127.0.0.1:{port}")
    assert ready.status_code == 503 and live.json() == {"live": True}


def test_a_silent_inference_server_is_503_within_the_timeout(digits_x: np.ndarray) -> None:
    import socket

    with socket.socket() as listener:  # accepts connections (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        with run_aps(Handler(), f"grpc://127.0.0.1:{port}", timeout_s=0.5) as aps:
            answer = aps.client.post("/predict", json=rows(digits_x[:1]))
    assert answer.status_code == 503
    assert answer.json()["error"].startswith(f"inference server 127.0.0.1:{port} ")


def test_a_hung_model_is_503_at_the_aps_timeout(inference_server: RunningServer, onnx_repo: Path,
                                                digits_x: np.ndarray, blocked_model: threading.Event) -> None:
    with run_aps(Handler(), inference_server.grpc_url, timeout_s=0.3) as aps:
        remote = aps.client.post("/predict", json=rows(digits_x[:1]))
    with run_aps(Handler(), f"local://{onnx_repo}", timeout_s=0.3) as aps:
        local = aps.client.post("/predict", json=rows(digits_x[:1]))
        blocked_model.set()
    assert remote.status_code == local.status_code == 503
    assert remote.json()["error"] in (
        f"inference server {inference_server.grpc} did not answer within 0.3 s; check that it is up and not "
        "saturated, or raise the timeout",
        "no answer within the APS timeout of 0.3 s; the inference server may be down or saturated",
    )
    assert local.json() == {
        "error": "no answer within the APS timeout of 0.3 s; the inference server may be down or saturated"}


def test_over_max_in_flight_is_503_with_retry_after(inference_server: RunningServer, digits_x: np.ndarray,
                                                    blocked_model: threading.Event) -> None:
    with run_aps(Handler(), inference_server.grpc_url, max_in_flight=1) as aps:
        first: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: first.append(aps.client.post("/predict", json=rows(digits_x[:1]))))
        thread.start()
        for _ in range(3000):  # wait until the first request is inside the APS
            if aps.in_flight == 1:
                break
            threading.Event().wait(0.01)
        refused = httpx.post(f"{aps.url}/predict", json=rows(digits_x[:1]))
        blocked_model.set()
        thread.join(30)
        after = aps.client.post("/predict", json=rows(digits_x[:1]))
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"error": "the APS is at its limit of 1 requests in flight; retry after the Retry-After "
                                       "seconds"}
    assert first[0].status_code == 200 and after.status_code == 200


def test_an_overloaded_inference_server_is_503_with_retry_after(onnx_repo: Path, digits_x: np.ndarray,
                                                                blocked_model: threading.Event) -> None:
    with run_server(onnx_repo, overrides={"max_batch_size": 1, "max_queue_size": 1}) as server, \
            run_aps(Handler(), server.grpc_url) as aps:
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: answers.append(httpx.post(f"{aps.url}/predict",
                                                                             json=rows(digits_x[:1]), timeout=30)))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(3000):  # the model is blocked and its queue holds one: a refusal proves the queue is full
            if answers and aps.in_flight + len(answers) == 4:
                break
            threading.Event().wait(0.01)
        blocked_model.set()
        for thread in threads:
            thread.join(30)
    refused = [a for a in answers if a.status_code == 503]
    assert len(answers) == 4 and 1 <= len(refused) <= 3
    assert all(a.status_code == 200 for a in answers if a not in refused)
    for answer in refused:
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"].startswith(f"inference server {server.grpc} is overloaded: ")


class Duck:
    """A handler that does not extend Handler: no load, no blocking, no bind."""

    def preprocess(self, payload: Any, context: Context) -> dict[str, np.ndarray]:
        return {"input": np.asarray(payload["x"], dtype=np.float32)}

    def postprocess(self, response: InferResponse, context: Context) -> Any:
        return {"label": response.as_dict()["label"]}


def test_a_duck_typed_handler_works(onnx_repo: Path, digits_x: np.ndarray) -> None:
    with run_aps(Duck(), f"local://{onnx_repo}") as aps:  # type: ignore[arg-type]
        answer = aps.client.post("/predict", json={"x": digits_x[:2].tolist()})
    assert answer.status_code == 200 and len(answer.json()["label"]) == 2


def test_bearer_token(onnx_repo: Path, digits_x: np.ndarray) -> None:
    with run_aps(Handler(), f"local://{onnx_repo}", token="s3cret") as aps:
        anonymous = aps.client.post("/predict", json=rows(digits_x[:1]))
        wrong = aps.client.post("/predict", json=rows(digits_x[:1]), headers={"Authorization": "Bearer nope"})
        right = aps.client.post("/predict", json=rows(digits_x[:1]), headers={"Authorization": "Bearer s3cret"})
        health = aps.client.get("/health/ready")
        metrics = aps.client.get("/metrics")
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json() == {"error": "missing or wrong bearer token; send the header 'Authorization: Bearer "
                                         "<token>'"}
    assert right.status_code == 200
    assert health.status_code == 200 and metrics.status_code == 200  # metrics are public by default
    with run_aps(Handler(), f"local://{onnx_repo}", token="s3cret", metrics_public=False) as aps:
        closed = aps.client.get("/metrics")
        opened = aps.client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        health = aps.client.get("/health/ready")
    assert closed.status_code == 401 and opened.status_code == 200 and health.status_code == 200
    assert "aiforge_aps_requests_total" in opened.text


def test_metrics_docs_and_info(onnx_repo: Path, digits_x: np.ndarray) -> None:
    with run_aps(Handler(), f"local://{onnx_repo}") as aps:
        assert aps.client.post("/predict", json=rows(digits_x[:2])).status_code == 200
        assert aps.client.post("/predict", content=b"nope").status_code == 400
        metrics = aps.client.get("/metrics").text
        docs = aps.client.get("/docs")
        schema = aps.client.get("/openapi.json").json()
        info = aps.client.get("/").json()
    for stage in ("preprocess", "predict", "postprocess", "total"):
        assert f'aiforge_aps_latency_seconds_count{{stage="{stage}"}}' in metrics
    assert 'aiforge_aps_requests_total{route="/predict",status="200"} 1.0' in metrics
    assert 'aiforge_aps_requests_total{route="/predict",status="400"} 1.0' in metrics
    assert docs.status_code == 200
    assert "post" in schema["paths"]["/predict"]
    assert info["model"] == "digits" and info["handler"] == "Handler"


def test_app_arguments_are_checked() -> None:
    predictor = predictor_from_url("grpc://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"^timeout_s must be a positive number; got 0$"):
        create_aps_app(Handler(), predictor, model="m", timeout_s=0)
    with pytest.raises(ValueError, match=r"^max_in_flight must be a positive integer; got 0$"):
        create_aps_app(Handler(), predictor, model="m", max_in_flight=0)


# -- CLI ------------------------------------------------------------------------------------------------------------


def test_cli_help_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["serve", "aps", "--help"], terminal_width=200)
    assert shown.exit_code == 0
    assert "aiforge serve aps handler.py:Churn --predictor grpc://127.0.0.1:8081 --model churn" in shown.output
    monkeypatch.delenv("APS_TEST_TOKEN", raising=False)
    no_token = runner.invoke(cli, ["serve", "aps", "default", "--predictor", "grpc://127.0.0.1:1", "-m", "digits",
                                   "--token-env", "APS_TEST_TOKEN"])
    assert no_token.exit_code == 1
    assert "Error: the token variable $APS_TEST_TOKEN is unset or empty; export APS_TEST_TOKEN=<token>" in \
        no_token.output
    bad_url = runner.invoke(cli, ["serve", "aps", "default", "--predictor", "http://127.0.0.1:8080", "-m", "digits"])
    assert bad_url.exit_code == 1
    assert "Error: predictor URL must be grpc://HOST:PORT or local:///MODEL_REPO; got 'http://127.0.0.1:8080'" in \
        bad_url.output
    bad_handler = runner.invoke(cli, ["serve", "aps", "missing_handler.py", "--predictor", "grpc://h:1", "-m", "d"])
    assert bad_handler.exit_code == 1
    assert "Error: handler file missing_handler.py does not exist" in bad_handler.output


def test_the_command_serves_until_sigterm(onnx_repo: Path, digits_x: np.ndarray) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "APS_TEST_TOKEN": "t0k"}
    process = subprocess.Popen(
        [sys.executable, "-m", "aiforge", "serve", "aps", "default", "--predictor", f"local://{onnx_repo}",
         "--model", "digits", "--port", str(port), "--token-env", "APS_TEST_TOKEN"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            threading.Event().wait(0.05)
        answer = httpx.post(f"{url}/predict", json=rows(digits_x[:1]), headers={"Authorization": "Bearer t0k"})
        assert answer.status_code == 200 and list(answer.json()["outputs"]) == ["label", "probabilities"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"APS for model 'digits' (default) on http://127.0.0.1:{port}/predict" in output
