"""The :class:`Predictor` interface: what the APS needs from wherever the model runs.

It lives in a module of its own so that the predictors (:mod:`~aiforge.serve.aps.predictor`) and the wrappers
around them (:mod:`~aiforge.serve.aps.coalesce`) both build on it, and the imports go one way only::

    base  <-  coalesce  <-  predictor
"""

from __future__ import annotations

from typing import Any, Protocol

from aiforge.serve.protocol import InferRequest, InferResponse

__all__ = ["Predictor"]


class Predictor(Protocol):
    """What the APS needs from wherever the model runs."""

    async def infer(self, request: InferRequest, model: str, version: str | None = None) -> InferResponse:
        """Run the model on the request's inputs."""
        ...

    async def ready(self, model: str | None = None, version: str | None = None) -> bool:
        """Whether the server (and the model, when named) can take requests now."""
        ...

    async def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The model's Open Inference Protocol metadata: name, versions, platform, inputs, outputs."""
        ...

    async def close(self) -> None:
        """Release connections (or the local engine)."""
        ...
