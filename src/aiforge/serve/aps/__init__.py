"""The APS front server: a user's handler (pre/post-processing, business logic) in front of a predictor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.serve.aps.base import Predictor
    from aiforge.serve.aps.coalesce import CoalescingPredictor
    from aiforge.serve.aps.handler import Context, Handler, TransformHandler, load_handler
    from aiforge.serve.aps.predictor import GrpcPredictor, LocalPredictor, predictor_from_url
    from aiforge.serve.aps.server import create_aps_app, run_aps_server

__all__ = [
    "CoalescingPredictor",
    "Context",
    "GrpcPredictor",
    "Handler",
    "LocalPredictor",
    "Predictor",
    "TransformHandler",
    "create_aps_app",
    "load_handler",
    "predictor_from_url",
    "run_aps_server",
]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "CoalescingPredictor": "aiforge.serve.aps.coalesce",
        "Context": "aiforge.serve.aps.handler",
        "GrpcPredictor": "aiforge.serve.aps.predictor",
        "Handler": "aiforge.serve.aps.handler",
        "LocalPredictor": "aiforge.serve.aps.predictor",
        "Predictor": "aiforge.serve.aps.base",
        "TransformHandler": "aiforge.serve.aps.handler",
        "create_aps_app": "aiforge.serve.aps.server",
        "load_handler": "aiforge.serve.aps.handler",
        "predictor_from_url": "aiforge.serve.aps.predictor",
        "run_aps_server": "aiforge.serve.aps.server",
    },
)
