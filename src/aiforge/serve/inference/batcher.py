"""Dynamic batching: requests for one model version wait in a bounded queue and run together.

One collector task per model version takes the first waiting request, gathers more until ``max_batch_size`` rows or
``max_queue_delay_ms`` has passed, and hands the batch to the version's single worker thread, which concatenates the
inputs along axis 0 (once per batch), runs ONNX Runtime (which releases the GIL), and splits the outputs back by row
counts. While the worker runs one batch the next one fills, so under load batches grow without waiting; a request
that arrives alone (nothing else in flight) runs at once, so light load pays no queue delay.

Requests whose inputs differ beyond the first dimension (or that ask for different outputs) run as separate batches.
With batching off (``max_batch_size <= 1`` or a model without a dynamic first dimension) each request runs alone,
through the same queue and worker, so both modes are measured on equal terms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np

from aiforge.errors import Overloaded, ServiceError
from aiforge.serve.inference.repository import ModelVersion

__all__ = ["BatchStats", "DynamicBatcher"]

# Called after each batch with (rows in the batch, seconds the batch ran, queue waits of its requests in seconds).
BatchStats = Callable[[int, float, list[float]], None]

_STOP: Any = object()


class _Item:
    __slots__ = ("future", "inputs", "key", "outputs", "rows", "submitted")

    def __init__(self, inputs: dict[str, np.ndarray], outputs: list[str] | None, future: asyncio.Future[Any],
                 rows_axis: bool, batching: bool) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.future = future
        self.submitted = time.perf_counter()
        self.rows = 1
        self.key: Any = None
        if rows_axis:
            first = next(iter(inputs.values()))
            self.rows = first.shape[0] if first.ndim else 1
            if batching:
                self.key = (tuple((name, a.shape[1:], a.dtype.str) for name, a in inputs.items()),
                            None if outputs is None else tuple(outputs))


class DynamicBatcher:
    """Queue, collector and worker thread of one model version.

    Parameters
    ----------
    model : ModelVersion
        The model to run.
    max_batch_size : int, optional
        Most rows in one run (default: the model's config); ``<= 1`` runs every request alone.
    max_queue_delay_ms : float, optional
        How long to wait for more requests after the first of a batch (default: the model's config).
    max_queue_size : int, optional
        Requests allowed to wait; one more raises :class:`~aiforge.errors.Overloaded` (default: the model's config).
    on_batch : callable, optional
        ``on_batch(rows, run_seconds, queue_waits)`` after each batch, for metrics.

    Notes
    -----
    The batcher binds to the event loop of its first :meth:`submit`; :meth:`close` drains what is queued.
    """

    def __init__(self, model: ModelVersion, *, max_batch_size: int | None = None,
                 max_queue_delay_ms: float | None = None, max_queue_size: int | None = None,
                 on_batch: BatchStats | None = None) -> None:
        config = model.config
        self.model = model
        self.max_batch_size = config.max_batch_size if max_batch_size is None else max_batch_size
        self.max_queue_delay_s = (config.max_queue_delay_ms if max_queue_delay_ms is None else max_queue_delay_ms) / 1e3
        self.max_queue_size = config.max_queue_size if max_queue_size is None else max_queue_size
        self.batching = model.batchable and self.max_batch_size > 1
        self.on_batch = on_batch
        self._queue: asyncio.Queue[Any] | None = None
        self._collector: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.in_flight = 0  # requests submitted and not answered yet
        self._service_s = 0.001  # running mean of seconds per request, for Retry-After

    @property
    def queue_depth(self) -> int:
        """Requests waiting (not yet in a running batch)."""
        return self._queue.qsize() if self._queue is not None else 0

    def _start(self) -> asyncio.Queue[Any]:
        self._queue = asyncio.Queue(self.max_queue_size)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ort-{self.model.name}-{self.model.version}")
        self._collector = asyncio.get_running_loop().create_task(self._collect())
        self._collector.add_done_callback(self._collector_done)
        return self._queue

    def _collector_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug, not a bad request: refuse new requests and fail the waiting ones instead of letting them hang.
        self._closed = True
        error = ServiceError(f"model {self.model.name!r} stopped batching after an internal error: "
                             f"{task.exception()!r}")
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _STOP and not item.future.done():
                item.future.set_exception(error)

    async def submit(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Queue validated ``inputs`` and wait for the model's outputs for them.

        Raises
        ------
        Overloaded
            The queue already holds ``max_queue_size`` requests.
        ServiceError
            The batcher is closing.
        """
        if self._closed:
            raise ServiceError(f"model {self.model.name!r} is shutting down; retry on another replica")
        queue = self._queue or self._start()
        future: asyncio.Future[dict[str, np.ndarray]] = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(_Item(inputs, outputs, future, self.model.batchable, self.batching))
        except asyncio.QueueFull:
            retry = max(1.0, round(self.max_queue_size * self._service_s, 1))
            raise Overloaded(
                f"model {self.model.name!r} version {self.model.version} has {self.max_queue_size} requests waiting "
                f"(max_queue_size); retry after {retry:g} s or add replicas",
                retry_after_s=retry,
            ) from None
        self.in_flight += 1
        try:
            return await future
        finally:
            self.in_flight -= 1

    async def _collect(self) -> None:
        queue = cast("asyncio.Queue[Any]", self._queue)
        loop = asyncio.get_running_loop()
        running: asyncio.Future[Any] | None = None
        carry: Any = None  # a request that did not fit in the previous batch: it starts the next one
        stop = False
        while not stop:
            first, carry = (carry, None) if carry is not None else (await queue.get(), None)
            if first is _STOP:
                break
            batch = [first]
            if running is not None and not running.done():
                # The worker is busy: whatever arrives meanwhile joins this batch for free.
                await asyncio.wait((running,))
            # A lone request (nothing else in flight) runs at once: waiting for company would only add the delay.
            if self.batching and self.in_flight > 1:
                rows, limit = first.rows, self.max_batch_size
                # The delay counts from the first request's arrival, so time spent waiting for the worker counts.
                deadline = loop.time() + self.max_queue_delay_s - (time.perf_counter() - first.submitted)
                while rows < limit:
                    if queue.empty():
                        timeout = deadline - loop.time()
                        if timeout <= 0:
                            break
                        try:
                            item = await asyncio.wait_for(queue.get(), timeout)
                        except TimeoutError:
                            break
                    else:
                        item = queue.get_nowait()
                    if item is _STOP:
                        stop = True
                        break
                    if rows + item.rows > limit:
                        carry = item
                        break
                    batch.append(item)
                    rows += item.rows
            running = loop.run_in_executor(self._executor, self._run, batch)
            running.add_done_callback(self._deliver)
        if running is not None:
            await asyncio.wait((running,))

    def _run(self, batch: list[_Item]) -> tuple[list[_Item], list[Any], float]:
        """Worker thread: run ``batch`` grouped by input shape; returns one result (dict or exception) per item."""
        start = time.perf_counter()
        results: list[Any] = [None] * len(batch)
        try:
            if self.batching and len(batch) > 1:
                groups: dict[Any, list[int]] = {}
                for i, item in enumerate(batch):
                    groups.setdefault(item.key, []).append(i)
                for indices in groups.values():
                    self._run_group(batch, indices, results)
            else:
                for i, item in enumerate(batch):
                    results[i] = self._run_one(item)
        except Exception as exc:  # never leave a request without an answer
            results = [exc if result is None else result for result in results]
        return batch, results, start

    def _run_one(self, item: _Item) -> Any:
        try:
            return self.model.run(item.inputs, item.outputs)
        except Exception as exc:  # delivered to the request that caused it
            return exc

    def _run_group(self, batch: list[_Item], indices: list[int], results: list[Any]) -> None:
        if len(indices) == 1:
            results[indices[0]] = self._run_one(batch[indices[0]])
            return
        items = [batch[i] for i in indices]
        names = list(items[0].inputs)
        inputs = {name: np.concatenate([item.inputs[name] for item in items]) for name in names}
        try:
            outputs = self.model.run(inputs, items[0].outputs)
        except Exception:
            # One bad request must not fail its neighbours: run them one by one to find it.
            for i in indices:
                results[i] = self._run_one(batch[i])
            return
        offset = 0
        for i, item in zip(indices, items, strict=True):
            end = offset + item.rows
            results[i] = {name: value[offset:end] for name, value in outputs.items()}
            offset = end

    def _deliver(self, done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:  # the worker itself failed (e.g. interpreter shutting down)
            return
        batch, results, start = done.result()
        end = time.perf_counter()
        elapsed = end - start
        self._service_s = 0.9 * self._service_s + 0.1 * (elapsed / max(1, len(batch)))
        waits = []
        rows = 0
        for item, result in zip(batch, results, strict=True):
            rows += item.rows
            waits.append(start - item.submitted)
            future = item.future
            if future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self.on_batch is not None:
            self.on_batch(rows, elapsed, waits)

    async def close(self) -> None:
        """Refuse new requests, finish the queued and running ones, and stop the worker thread (idempotent)."""
        self._closed = True
        collector, self._collector = self._collector, None
        if collector is not None and not collector.done() and self._queue is not None:
            await self._queue.put(_STOP)
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
