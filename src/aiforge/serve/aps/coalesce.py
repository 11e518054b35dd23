"""Client-side batching in the APS: concurrent requests to one model travel as one ``ModelInfer`` call.

Each gRPC call costs the APS and the inference server far more CPU (~0.6 ms together, measured) than a small model
costs to run, so under load the APS merges the requests that arrive while a call is in flight and sends them together
when it returns. A request that finds nothing in flight goes out at once, so light load keeps its latency::

    predictor = CoalescingPredictor(GrpcPredictor("127.0.0.1:8081"))
    await asyncio.gather(*(predictor.infer(r, "mlp") for r in requests))   # 1 call, then 1 for the rest

Only requests that can be stacked are merged: the model takes a batch dimension (-1 first on every input and output),
and the requests agree on input names, trailing shapes, dtypes and wanted outputs, and carry no parameters. Anything
else passes through untouched. If a merged call fails, the requests in it are retried one by one, so one bad request
never fails its neighbours.
"""

from __future__ import annotations

import asyncio
from numbers import Integral
from typing import Any

import numpy as np

from aiforge.serve.aps.base import Predictor
from aiforge.serve.protocol import InferRequest, InferResponse, Tensor
from aiforge.validation import Interval, validate_params

__all__ = ["CoalescingPredictor"]

_Pending = list[tuple[InferRequest, "asyncio.Future[InferResponse]"]]
_POSITIVE_INT = Interval(Integral, 1, None, closed="left")


class CoalescingPredictor:
    """Wrap a predictor so that concurrent requests to a batchable model share one call.

    Parameters
    ----------
    inner : Predictor
        The predictor that makes the calls (usually a :class:`~aiforge.serve.aps.predictor.GrpcPredictor`).
    max_calls : int
        Calls in flight at once per model before requests start waiting to be merged (1: as soon as one call is
        out, the next requests gather for the following one).
    max_rows : int
        Most rows in one merged call.
    """

    def __init__(self, inner: Predictor, *, max_calls: int = 1, max_rows: int = 64) -> None:
        validate_params({"max_calls": max_calls, "max_rows": max_rows},
                        {"max_calls": [_POSITIVE_INT], "max_rows": [_POSITIVE_INT]})
        self.inner = inner
        self.max_calls = max_calls
        self.max_rows = max_rows
        self._pending: dict[Any, _Pending] = {}
        self._calls: dict[tuple[str, str | None], int] = {}
        self._batchable: dict[tuple[str, str | None], bool] = {}

    def __repr__(self) -> str:
        return f"CoalescingPredictor({self.inner!r}, max_calls={self.max_calls}, max_rows={self.max_rows})"

    async def infer(self, request: InferRequest, model: str, version: str | None = None) -> InferResponse:
        """Run ``request``, merged with others that are waiting for the same model when the model allows it."""
        target = (model, version)
        mergeable = self._batchable.get(target)  # known after the first request: no await on the hot path
        if mergeable is None:
            mergeable = await self._can_merge(target)
        if request.parameters or not mergeable:
            return await self.inner.infer(request, model, version)
        key = (target, tuple((t.name, t.data.shape[1:], t.datatype) for t in request.inputs),
               tuple(request.outputs) if request.outputs is not None else None)
        future: asyncio.Future[InferResponse] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((request, future))
        if self._calls.get(target, 0) < self.max_calls:
            self._flush(key)
        return await future

    async def _can_merge(self, target: tuple[str, str | None]) -> bool:
        """Whether the model takes a batch dimension, from its metadata (cached; unknown while unreachable)."""
        getter = getattr(self.inner, "metadata", None)
        if getter is None:
            return False
        try:
            metadata = await getter(*target)
        except Exception:  # not reachable yet: pass through, and ask again next time
            return False
        tensors = [*metadata.get("inputs", []), *metadata.get("outputs", [])]
        known = bool(tensors) and all(next(iter(t.get("shape") or [0])) == -1 for t in tensors)
        self._batchable[target] = known
        return known

    def _flush(self, key: Any) -> None:
        waiting = self._pending.pop(key, [])
        if not waiting:
            return
        batch: _Pending = []
        rows = 0
        for i, (request, future) in enumerate(waiting):
            n = request.inputs[0].data.shape[0] if request.inputs[0].data.ndim else 1
            if batch and rows + n > self.max_rows:
                self._pending[key] = waiting[i:]
                break
            batch.append((request, future))
            rows += n
        target = key[0]
        self._calls[target] = self._calls.get(target, 0) + 1
        asyncio.get_running_loop().create_task(self._call(key, batch))

    async def _call(self, key: Any, batch: _Pending) -> None:
        model, version = key[0]
        try:
            if len(batch) == 1:
                await self._one(batch[0], model, version)
            else:
                await self._merged(batch, model, version)
        finally:
            self._calls[key[0]] -= 1
            for other in [k for k in self._pending if k[0] == key[0]]:
                if self._calls[key[0]] >= self.max_calls:
                    break
                self._flush(other)

    async def _one(self, item: tuple[InferRequest, asyncio.Future[InferResponse]], model: str,
                   version: str | None) -> None:
        request, future = item
        try:
            response = await self.inner.infer(request, model, version)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(response)

    async def _merged(self, batch: _Pending, model: str, version: str | None) -> None:
        first = batch[0][0]
        merged = InferRequest(
            [Tensor(t.name, np.concatenate([request.inputs[i].data for request, _ in batch]), t.datatype)
             for i, t in enumerate(first.inputs)],
            outputs=first.outputs, id=first.id,
        )
        try:
            response = await self.inner.infer(merged, model, version)
        except Exception:
            # find out which request failed (and answer the others) by sending them one by one
            await asyncio.gather(*(self._one(item, model, version) for item in batch))
            return
        offset = 0
        for request, future in batch:
            rows = request.inputs[0].data.shape[0]
            outputs = [Tensor(t.name, t.data[offset:offset + rows], t.datatype) for t in response.outputs]
            offset += rows
            if not future.done():
                future.set_result(InferResponse(outputs, response.model_name, response.model_version, request.id))

    async def ready(self, model: str | None = None, version: str | None = None) -> bool:
        """The inner predictor's readiness."""
        return await self.inner.ready(model, version)

    async def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The inner predictor's model metadata."""
        return await self.inner.metadata(model, version)

    async def close(self) -> None:
        """Close the inner predictor."""
        await self.inner.close()
