"""Dynamic batching: identical outputs with and without it, batch limits, shape grouping, the bounded queue."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiforge.errors import InvalidInput, Overloaded, ServiceError
from aiforge.serve.inference.batcher import DynamicBatcher
from aiforge.serve.inference.engine import InferenceEngine
from aiforge.serve.inference.repository import ModelRepository, ModelVersion
from aiforge.serve.protocol import InferRequest, Tensor


def _run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (the batcher runs in this loop and its worker in a thread)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def _requests(x: np.ndarray, count: int) -> list[np.ndarray]:
    rows = [1 + i % 4 for i in range(count)]
    starts = np.cumsum([0, *rows])
    return [x[start:start + n] for start, n in zip(starts, rows, strict=False)]


@pytest.mark.parametrize("max_batch_size", [1, 8, 32])
def test_batching_gives_the_same_outputs_as_running_alone(onnx_repo: Path, digits_x: np.ndarray,
                                                          max_batch_size: int) -> None:
    model = ModelRepository.load(onnx_repo).get("digits", "1")
    inputs = _requests(digits_x, 60)
    batches: list[int] = []

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = DynamicBatcher(model, max_batch_size=max_batch_size,
                                 on_batch=lambda rows, _s, waits: batches.append(rows))
        try:
            return list(await asyncio.gather(*(batcher.submit({"input": x}) for x in inputs)))
        finally:
            await batcher.close()

    results = _run(main)
    for x, result in zip(inputs, results, strict=True):
        alone = model.run({"input": x})
        np.testing.assert_array_equal(result["label"], alone["label"])
        np.testing.assert_array_equal(result["probabilities"], alone["probabilities"])
    assert sum(batches) == sum(len(x) for x in inputs)
    if max_batch_size == 1:
        assert batches == [len(x) for x in inputs]  # every request alone, in arrival order
    else:
        # 60 requests queued at once: batches fill up to max_batch_size rows (a request is never split).
        assert max(batches) > 1
        assert all(rows <= max_batch_size for rows in batches)


def test_requests_with_different_trailing_shapes_run_separately(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "k"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "k"])], initializer=[two],
    )
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model_proto.ir_version = 8
    (tmp_path / "double" / "1").mkdir(parents=True)
    (tmp_path / "double" / "1" / "model.onnx").write_bytes(model_proto.SerializeToString())
    model = ModelRepository.load(tmp_path).get("double")
    assert model.batchable
    calls: list[tuple[int, ...]] = []
    original = model.run

    def run(inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        calls.append(inputs["x"].shape)
        return original(inputs, outputs)

    model.run = run  # type: ignore[method-assign]
    inputs = [np.full((1 + i % 2, 3 if i % 3 else 5), i, dtype=np.float32) for i in range(9)]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = DynamicBatcher(model, max_batch_size=64)
        try:
            return list(await asyncio.gather(*(batcher.submit({"x": x}) for x in inputs)))
        finally:
            await batcher.close()

    results = _run(main)
    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result["y"], 2 * x)
    assert sorted(shape[1] for shape in calls) == [3, 5]  # one run per trailing shape
    assert sum(shape[0] for shape in calls) == sum(len(x) for x in inputs)


def test_not_batchable_model_runs_each_request_alone(onnx_repo: Path) -> None:
    model = ModelRepository.load(onnx_repo).get("fixed")
    inputs = [np.full((4, 3), i, dtype=np.float32) for i in range(10)]
    batches: list[int] = []

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = DynamicBatcher(model, max_batch_size=32, on_batch=lambda rows, _s, _w: batches.append(rows))
        assert batcher.batching is False
        try:
            return list(await asyncio.gather(*(batcher.submit({"x": x}) for x in inputs)))
        finally:
            await batcher.close()

    for x, result in zip(inputs, _run(main), strict=True):
        np.testing.assert_array_equal(result["y"], 2 * x)
    assert batches == [1] * 10


def test_full_queue_raises_overloaded(onnx_repo: Path, digits_x: np.ndarray, blocked_model: threading.Event) -> None:
    model = ModelRepository.load(onnx_repo, overrides={"max_queue_size": 2}).get("digits", "1")

    async def main() -> None:
        batcher = DynamicBatcher(model, max_batch_size=1)
        x = {"input": digits_x[:1]}

        async def submit() -> asyncio.Future[Any]:
            task = asyncio.ensure_future(batcher.submit(x))
            await asyncio.sleep(0)  # the task runs up to its put into the queue
            return task

        running = [await submit()]
        await _until(lambda: batcher.queue_depth == 0)  # taken by the worker, which is blocked
        running.append(await submit())
        await _until(lambda: batcher.queue_depth == 0)  # taken by the collector, waiting for the worker
        running += [await submit(), await submit()]
        assert batcher.queue_depth == 2
        with pytest.raises(Overloaded, match=r"^model 'digits' version 1 has 2 requests waiting \(max_queue_size\); "
                                             r"retry after 1 s or add replicas$") as info:
            await batcher.submit(x)
        assert info.value.retry_after_s == 1.0
        blocked_model.set()
        results = await asyncio.gather(*running)
        assert [r["label"].shape for r in results] == [(1,)] * 4
        await batcher.close()

    _run(main)


def test_one_failing_request_does_not_fail_its_batch(onnx_repo: Path, digits_x: np.ndarray,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    model = ModelRepository.load(onnx_repo).get("digits", "1")
    original = ModelVersion.run

    def run(self: ModelVersion, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> Any:
        if (inputs["input"] < 0).any():
            raise RuntimeError("negative pixels")
        return original(self, inputs, outputs)

    monkeypatch.setattr(ModelVersion, "run", run)
    bad = -np.ones((1, 64), dtype=np.float32)
    inputs = [digits_x[:2], bad, digits_x[2:3]]

    async def main() -> list[Any]:
        batcher = DynamicBatcher(model, max_batch_size=8)
        try:
            return list(await asyncio.gather(*(batcher.submit({"input": x}) for x in inputs),
                                             return_exceptions=True))
        finally:
            await batcher.close()

    first, failed, last = _run(main)
    np.testing.assert_array_equal(first["label"], original(model, {"input": digits_x[:2]})["label"])
    assert isinstance(failed, RuntimeError) and str(failed) == "negative pixels"
    np.testing.assert_array_equal(last["label"], original(model, {"input": digits_x[2:3]})["label"])


def test_close_drains_then_refuses(onnx_repo: Path, digits_x: np.ndarray) -> None:
    model = ModelRepository.load(onnx_repo).get("digits", "1")

    async def main() -> None:
        batcher = DynamicBatcher(model)
        pending = [asyncio.ensure_future(batcher.submit({"input": digits_x[i:i + 1]})) for i in range(20)]
        await asyncio.sleep(0)  # let every submit enqueue
        await batcher.close()
        assert all(task.done() and task.exception() is None for task in pending)
        with pytest.raises(ServiceError, match=r"^model 'digits' is shutting down; retry on another replica$"):
            await batcher.submit({"input": digits_x[:1]})

    _run(main)


def test_engine_infer_and_errors(onnx_repo: Path, digits_x: np.ndarray) -> None:
    engine = InferenceEngine(ModelRepository.load(onnx_repo))
    x = digits_x[:3]

    async def main() -> None:
        response = await engine.infer(InferRequest([Tensor("input", x)], id="r1"), "digits")
        assert (response.model_name, response.model_version, response.id) == ("digits", "2", "r1")
        assert [(t.name, t.datatype, t.shape) for t in response.outputs] == [
            ("label", "INT64", [3]), ("probabilities", "FP32", [3, 10])]
        expected = engine.repository.get("digits", "2").run({"input": x})
        np.testing.assert_array_equal(response.as_dict()["probabilities"], expected["probabilities"])
        only = await engine.infer(InferRequest([Tensor("input", x)], outputs=["label"]), "digits", "1")
        assert [t.name for t in only.outputs] == ["label"]
        with pytest.raises(InvalidInput, match=re.escape("input 'input' is given more than once; send each once")):
            await engine.infer(InferRequest([Tensor("input", x), Tensor("input", x)]), "digits")
        assert engine.ready() and engine.ready("digits", "1") and not engine.ready("digits", "9")
        await engine.close()
        assert not engine.ready()
        with pytest.raises(ServiceError, match=r"^the inference server is shutting down; retry on another replica$"):
            await engine.infer(InferRequest([Tensor("input", x)]), "digits")

    _run(main)


def test_a_failing_worker_answers_every_request(onnx_repo: Path, digits_x: np.ndarray,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = ModelRepository.load(onnx_repo).get("digits", "1")

    def broken(self: DynamicBatcher, *args: Any) -> None:
        raise MemoryError("no room for the batch")

    monkeypatch.setattr(DynamicBatcher, "_run_group", broken)

    async def main() -> list[Any]:
        batcher = DynamicBatcher(model, max_batch_size=8)
        try:
            return list(await asyncio.gather(*(batcher.submit({"input": digits_x[i:i + 1]}) for i in range(3)),
                                             return_exceptions=True))
        finally:
            await batcher.close()

    errors = _run(main)
    assert [type(e).__name__ for e in errors] == ["MemoryError"] * 3


def test_a_lone_request_does_not_wait_for_company(onnx_repo: Path, digits_x: np.ndarray) -> None:
    model = ModelRepository.load(onnx_repo).get("digits", "1")
    batches: list[int] = []

    async def main() -> None:
        # a queue delay of a minute: only a request that skips it can finish within the 30 s below
        batcher = DynamicBatcher(model, max_batch_size=2, max_queue_delay_ms=60_000,
                                 on_batch=lambda rows, _s, waits: batches.append(rows))
        try:
            await asyncio.wait_for(batcher.submit({"input": digits_x[:1]}), 30)
            # two at once still wait for each other, and fill the batch of two
            await asyncio.wait_for(asyncio.gather(batcher.submit({"input": digits_x[:1]}),
                                                  batcher.submit({"input": digits_x[1:2]})), 30)
        finally:
            await batcher.close()

    _run(main)
    assert batches == [1, 2]
