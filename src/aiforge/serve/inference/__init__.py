"""The inference server: ONNX Runtime models from a model repository, Open Inference Protocol v2 over REST and
gRPC, dynamic batching."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.serve.inference.batcher import DynamicBatcher
    from aiforge.serve.inference.engine import InferenceEngine
    from aiforge.serve.inference.repository import ModelConfig, ModelRepository, ModelVersion
    from aiforge.serve.inference.server import create_grpc_server, create_inference_app, run_inference_server

__all__ = [
    "DynamicBatcher",
    "InferenceEngine",
    "ModelConfig",
    "ModelRepository",
    "ModelVersion",
    "create_grpc_server",
    "create_inference_app",
    "run_inference_server",
]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "DynamicBatcher": "aiforge.serve.inference.batcher",
        "InferenceEngine": "aiforge.serve.inference.engine",
        "ModelConfig": "aiforge.serve.inference.repository",
        "ModelRepository": "aiforge.serve.inference.repository",
        "ModelVersion": "aiforge.serve.inference.repository",
        "create_grpc_server": "aiforge.serve.inference.server",
        "create_inference_app": "aiforge.serve.inference.server",
        "run_inference_server": "aiforge.serve.inference.server",
    },
)
