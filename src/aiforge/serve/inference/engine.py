"""The inference engine: a model repository plus one dynamic batcher per model version.

The REST and gRPC servers and the APS's co-located mode all call :meth:`InferenceEngine.infer`, so a request is
validated, queued, batched and answered the same way whichever door it came through.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiforge.errors import InvalidInput, ServiceError
from aiforge.serve.inference.batcher import DynamicBatcher
from aiforge.serve.inference.repository import ModelRepository, ModelVersion
from aiforge.serve.protocol import InferRequest, InferResponse, Tensor

if TYPE_CHECKING:
    from aiforge.server import ServerMetrics

__all__ = ["InferenceEngine"]


class InferenceEngine:
    """Runs inference requests against the models of a repository.

    Parameters
    ----------
    repository : ModelRepository
        The loaded models.
    batching : bool, default True
        Batch concurrent requests per model version (each model's ``max_batch_size`` still applies); ``False`` runs
        every request alone, through the same bounded queue and worker thread.
    metrics : ServerMetrics, optional
        Where queue wait, inference time, batch sizes and queue depth are recorded.

    Notes
    -----
    Batchers (and their worker threads) are created on a version's first request, in the running event loop.
    """

    def __init__(self, repository: ModelRepository, *, batching: bool = True,
                 metrics: ServerMetrics | None = None) -> None:
        self.repository = repository
        self.batching = batching
        self._batchers: dict[ModelVersion, DynamicBatcher] = {}
        self._closed = False
        self.metrics: ServerMetrics | None = None
        if metrics is not None:
            self.attach_metrics(metrics)

    def attach_metrics(self, metrics: ServerMetrics) -> None:
        """Record batch sizes, queue waits, inference times and queue depths in ``metrics`` from now on."""
        self.metrics = metrics
        metrics.add_collect_hook(self._report_queue_depth)
        for batcher in self._batchers.values():
            batcher.on_batch = self._record_batch

    def batcher(self, model: ModelVersion) -> DynamicBatcher:
        """The batcher of a model version (created on first use)."""
        batcher = self._batchers.get(model)
        if batcher is None:
            on_batch = self._record_batch if self.metrics is not None else None
            batcher = DynamicBatcher(model, max_batch_size=None if self.batching else 1, on_batch=on_batch)
            self._batchers[model] = batcher
        return batcher

    async def infer(self, request: InferRequest, model: str, version: str | None = None) -> InferResponse:
        """Run ``request`` on ``model`` (newest version unless ``version`` is given).

        Raises
        ------
        ModelNotFound
            No such model or version.
        InvalidInput
            The inputs do not match the model's signature (the message names the input and the expected shape).
        Overloaded
            The model's queue is full; retry after ``retry_after_s``.
        ServiceError
            The engine is shutting down.
        """
        if self._closed:
            raise ServiceError("the inference server is shutting down; retry on another replica")
        target = self.repository.get(model, version)
        inputs = {tensor.name: tensor.data for tensor in request.inputs}
        if len(inputs) != len(request.inputs):
            names = [tensor.name for tensor in request.inputs]
            twice = sorted({name for name in names if names.count(name) > 1})
            raise InvalidInput(f"input {', '.join(repr(n) for n in twice)} is given more than once; send each once")
        inputs = target.validate(inputs)
        wanted = None if request.outputs is None else target.output_names(request.outputs)
        outputs = await (self._batchers.get(target) or self.batcher(target)).submit(inputs, wanted)
        datatypes = {spec.name: spec.datatype for spec in target.outputs}
        return InferResponse(
            [Tensor(name, value, datatypes[name]) for name, value in outputs.items()],
            target.name, target.version, request.id,
        )

    def ready(self, model: str | None = None, version: str | None = None) -> bool:
        """Whether the engine (or one model version) can take requests."""
        if self._closed:
            return False
        if model is None:
            return True
        try:
            self.repository.get(model, version)
        except LookupError:
            return False
        return True

    async def close(self) -> None:
        """Refuse new requests and finish every queued and running batch."""
        self._closed = True
        await asyncio.gather(*(batcher.close() for batcher in self._batchers.values()))

    # -- metrics ----------------------------------------------------------------------------------------------------

    def _record_batch(self, rows: int, run_s: float, waits: list[float]) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.observe_batch(rows)
        metrics.observe("inference", run_s)
        queue = metrics.stage("queue")
        for wait in waits:
            queue.observe(wait)

    def _report_queue_depth(self) -> None:
        if self.metrics is None:
            return
        for model, batcher in self._batchers.items():
            self.metrics.set_queue_depth(f"{model.name}/{model.version}", batcher.queue_depth)

    def __repr__(self) -> str:
        return f"InferenceEngine(models={self.repository.names()}, batching={self.batching})"
