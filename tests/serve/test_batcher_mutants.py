"""Exact cases that kill the mutants scripts/mutate.py found surviving in serve/inference/batcher.py (issue 11).

A stand-in model (no ONNX session) doubles ``x`` and records the shape of every run, so batch forming, the split of
the outputs back to their requests and the bookkeeping can be checked by hand.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from aiforge.errors import Overloaded
from aiforge.serve.inference import batcher as batcher_module
from aiforge.serve.inference.batcher import DynamicBatcher, _Item
from aiforge.serve.inference.repository import ModelConfig


class _Model:
    """Stands in for a ModelVersion: ``y = 2 x`` and ``s = x.sum(axis=-1)``, every run's input shape recorded."""

    def __init__(self, *, batchable: bool = True, **config: Any) -> None:
        self.name, self.version = "m", "1"
        self.config = ModelConfig(**config)
        self.batchable = batchable
        self.calls: list[tuple[int, ...]] = []

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.calls.append(x.shape)
        if (x < 0).any():
            raise ValueError("negative x")
        out = {"y": 2 * x, "s": x.sum(axis=-1)}
        return out if outputs is None else {name: out[name] for name in outputs}


def _batcher(model: _Model, **kwargs: Any) -> DynamicBatcher:
    return DynamicBatcher(model, **kwargs)  # type: ignore[arg-type]


def _x(rows: int, value: float = 1.0, width: int = 3) -> np.ndarray:
    return np.full((rows, width), value, dtype=np.float32)


def test_in_flight_returns_to_zero_after_each_answer() -> None:
    async def main() -> list[int]:
        batcher = _batcher(_Model())
        seen = []
        try:
            for _ in range(3):
                await batcher.submit({"x": _x(1)})
                seen.append(batcher.in_flight)
        finally:
            await batcher.close()
        return seen

    assert asyncio.run(main()) == [0, 0, 0]


def test_retry_after_before_any_batch_ran_assumes_a_millisecond_per_request_to_a_tenth_of_a_second() -> None:
    async def main() -> None:
        batcher = _batcher(_Model(), max_batch_size=1, max_queue_size=1234)
        # every task puts its request before the collector (created by the first submit) takes any
        tasks = [asyncio.ensure_future(batcher.submit({"x": _x(1)})) for _ in range(1235)]
        done = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        errors = [r for r in done if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], Overloaded)
        assert errors[0].retry_after_s == 1.2  # 1234 waiting * 0.001 s = 1.234 s, to a tenth
        assert str(errors[0]).endswith("retry after 1.2 s or add replicas")

    asyncio.run(main())


def test_deliver_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batcher_module, "time", SimpleNamespace(perf_counter=lambda: 100.0))
    seen: list[tuple[int, float, list[float]]] = []
    batcher = _batcher(_Model(), on_batch=lambda rows, seconds, waits: seen.append((rows, seconds, waits)))
    loop = asyncio.new_event_loop()
    try:
        items = [_Item({"x": _x(n)}, None, loop.create_future(), True, True) for n in (3, 1, 2)]
        for item, submitted in zip(items, (90.0, 95.0, 94.0), strict=True):
            item.submitted = submitted
        items[2].future.cancel()  # the client went away: its result is dropped
        error = ValueError("bad request")
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result((items, [{"y": 1}, error, {"y": 3}], 96.0))  # the batch started at 96 s, ends at 100 s
        batcher._deliver(done)
        assert items[0].future.result() == {"y": 1}
        assert items[1].future.exception() is error
        assert items[2].future.cancelled()
        assert seen == [(6, 4.0, [6.0, 1.0, 2.0])]  # rows 3 + 1 + 2, 100 - 96 s, waits 96 - submitted
        assert batcher._service_s == 0.9 * 0.001 + 0.1 * (4.0 / 3)  # seconds per request, averaged
        # a batch of one request: its whole run time is its service time
        alone = _Item({"x": _x(1)}, None, loop.create_future(), True, True)
        done = loop.create_future()
        done.set_result(([alone], [{"y": 2}], 99.0))
        before = batcher._service_s
        batcher._deliver(done)
        assert batcher._service_s == 0.9 * before + 0.1 * 1.0
        assert seen[1] == (1, 1.0, [-1.0])  # submitted at 100 s (the patched clock), started at 99 s
    finally:
        loop.close()


def test_queue_delay_is_given_in_milliseconds() -> None:
    assert _batcher(_Model(), max_queue_delay_ms=250).max_queue_delay_s == 0.25
    assert _batcher(_Model(max_queue_delay_ms=2.0)).max_queue_delay_s == 0.002


def test_a_batch_size_of_one_turns_batching_off() -> None:
    assert _batcher(_Model(), max_batch_size=1).batching is False
    assert _batcher(_Model(), max_batch_size=2).batching is True
    assert _batcher(_Model(batchable=False), max_batch_size=2).batching is False


def test_a_request_alone_in_its_shape_group_runs_once_even_when_it_fails() -> None:
    model = _Model()
    batches: list[int] = []

    async def main() -> list[Any]:
        batcher = _batcher(model, max_batch_size=8, on_batch=lambda rows, _s, _w: batches.append(rows))
        try:
            # submitted together: one batch of two requests with different trailing shapes, so two groups of one
            return list(await asyncio.gather(batcher.submit({"x": _x(1, -1.0, width=3)}),
                                             batcher.submit({"x": _x(2, 1.0, width=5)}), return_exceptions=True))
        finally:
            await batcher.close()

    failed, ok = asyncio.run(main())
    assert isinstance(failed, ValueError) and str(failed) == "negative x"
    np.testing.assert_array_equal(ok["y"], _x(2, 2.0, width=5))
    assert batches == [3]
    assert model.calls == [(1, 3), (2, 5)]  # each group run once: no batched attempt before the one-by-one retry


def test_a_zero_dimensional_input_counts_as_one_row() -> None:
    batches: list[int] = []

    async def main() -> dict[str, np.ndarray]:
        batcher = _batcher(_Model(), on_batch=lambda rows, _s, _w: batches.append(rows))
        try:
            return await batcher.submit({"x": np.float32(3.0) * np.ones((), dtype=np.float32)})
        finally:
            await batcher.close()

    assert asyncio.run(main())["y"] == 6.0
    assert batches == [1]


def test_time_spent_queued_counts_against_the_queue_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # the two requests are stamped at 0 s and the collector reads 1000 s: they have waited far past the 60 s delay,
    # so the batch runs at once (the guard of 30 s only stops a batcher that would wait 60 s or more)
    clock = iter([0.0, 0.0])
    monkeypatch.setattr(batcher_module, "time", SimpleNamespace(perf_counter=lambda: next(clock, 1000.0)))
    batches: list[int] = []
    model = _Model()

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = _batcher(model, max_batch_size=8, max_queue_delay_ms=60_000,
                           on_batch=lambda rows, _s, _w: batches.append(rows))
        try:
            return list(await asyncio.wait_for(
                asyncio.gather(batcher.submit({"x": _x(1)}), batcher.submit({"x": _x(2)})), 30))
        finally:
            await batcher.close()

    first, second = asyncio.run(main())
    np.testing.assert_array_equal(first["y"], _x(1, 2.0))
    np.testing.assert_array_equal(second["y"], _x(2, 2.0))
    assert batches == [3]  # both requests in one batch
    assert model.calls == [(3, 3)]  # and in one run of the model, their inputs stacked


def test_a_request_arriving_within_the_queue_delay_joins_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # a frozen clock: no time has passed since any request was stamped, so the whole 60 s delay is left
    monkeypatch.setattr(batcher_module, "time", SimpleNamespace(perf_counter=lambda: 1000.0))
    batches: list[int] = []
    model = _Model()

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = _batcher(model, max_batch_size=3, max_queue_delay_ms=60_000,
                           on_batch=lambda rows, _s, _w: batches.append(rows))
        try:
            early = [asyncio.ensure_future(batcher.submit({"x": _x(1, float(i))})) for i in (1, 2)]
            await asyncio.sleep(0.1)  # the collector has taken both and waits for company
            assert batcher.queue_depth == 0 and not batches
            late = batcher.submit({"x": _x(1, 3.0)})  # fills the batch of 3 rows, which then runs
            return list(await asyncio.wait_for(asyncio.gather(*early, late), 30))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    for value, result in zip((1.0, 2.0, 3.0), results, strict=True):
        np.testing.assert_array_equal(result["y"], _x(1, 2 * value))
    assert batches == [3]
    assert model.calls == [(3, 3)]


def test_a_queue_delay_of_one_second_still_waits_for_company(monkeypatch: pytest.MonkeyPatch) -> None:
    # the frozen clock leaves the whole delay: just under 1 s remains when the collector starts waiting
    monkeypatch.setattr(batcher_module, "time", SimpleNamespace(perf_counter=lambda: 1000.0))
    batches: list[int] = []

    async def main() -> None:
        batcher = _batcher(_Model(), max_batch_size=3, max_queue_delay_ms=1000,
                           on_batch=lambda rows, _s, _w: batches.append(rows))
        try:
            early = [asyncio.ensure_future(batcher.submit({"x": _x(1)})) for _ in range(2)]
            while batcher.queue_depth or batcher.in_flight < 2:  # until the collector holds both and waits
                await asyncio.sleep(0)
            await asyncio.wait_for(asyncio.gather(*early, batcher.submit({"x": _x(1)})), 30)
        finally:
            await batcher.close()

    asyncio.run(main())
    assert batches == [3]
