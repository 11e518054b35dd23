"""SERVE: an ONNX inference server (Open Inference Protocol v2 over REST and gRPC, dynamic batching), an APS front
server that runs a user's pre/post-processing in front of it, one-command local serving, Kubernetes/KServe export,
a load tester and a capacity planner::

    from aiforge.serve import ServeSettings, export_sklearn, loadtest, up

    export_sklearn(model, "models", n_features=64, name="digits")        # models/digits/1/model.onnx
    with up(ServeSettings(model_repo="models", model="digits")) as stack:  # inference server + APS
        print(loadtest(stack.urls["aps"] + "/predict", {"instances": [[0.0] * 64]}, concurrency=8, duration_s=3))

Names load on first use, so ``import aiforge.serve`` does not import ONNX Runtime, gRPC or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiforge.serve.aps import create_aps_app, run_aps_server
    from aiforge.serve.coalesce import CoalescingPredictor
    from aiforge.serve.engine import InferenceEngine
    from aiforge.serve.export import add_model, export_sklearn, export_torch
    from aiforge.serve.handler import Context, Handler, TransformHandler, load_handler
    from aiforge.serve.inference import create_grpc_server, create_inference_app, run_inference_server
    from aiforge.serve.load import LoadTestResult, loadtest
    from aiforge.serve.manifests import k8s_manifests, kserve_manifest, write_manifests
    from aiforge.serve.planner import CapacityPlan, capacity, write_plot
    from aiforge.serve.predictor import GrpcPredictor, LocalPredictor, Predictor, predictor_from_url
    from aiforge.serve.protocol import InferRequest, InferResponse, Tensor
    from aiforge.serve.repository import ModelConfig, ModelRepository, ModelVersion
    from aiforge.serve.settings import ServeSettings
    from aiforge.serve.stack import Stack, up

_LAZY = {
    "create_aps_app": "aps", "run_aps_server": "aps",
    "CapacityPlan": "planner", "capacity": "planner", "write_plot": "planner",
    "CoalescingPredictor": "coalesce",
    "InferenceEngine": "engine",
    "add_model": "export", "export_sklearn": "export", "export_torch": "export",
    "Context": "handler", "Handler": "handler", "TransformHandler": "handler", "load_handler": "handler",
    "create_grpc_server": "inference", "create_inference_app": "inference", "run_inference_server": "inference",
    "LoadTestResult": "load", "loadtest": "load",
    "k8s_manifests": "manifests", "kserve_manifest": "manifests", "write_manifests": "manifests",
    "GrpcPredictor": "predictor", "LocalPredictor": "predictor", "Predictor": "predictor",
    "predictor_from_url": "predictor",
    "InferRequest": "protocol", "InferResponse": "protocol", "Tensor": "protocol",
    "ModelConfig": "repository", "ModelRepository": "repository", "ModelVersion": "repository",
    "ServeSettings": "settings",
    "Stack": "stack", "up": "stack",
}

__all__ = [
    "CapacityPlan",
    "CoalescingPredictor",
    "Context",
    "GrpcPredictor",
    "Handler",
    "InferRequest",
    "InferResponse",
    "InferenceEngine",
    "LoadTestResult",
    "LocalPredictor",
    "ModelConfig",
    "ModelRepository",
    "ModelVersion",
    "Predictor",
    "ServeSettings",
    "Stack",
    "Tensor",
    "TransformHandler",
    "add_model",
    "capacity",
    "create_aps_app",
    "create_grpc_server",
    "create_inference_app",
    "export_sklearn",
    "export_torch",
    "k8s_manifests",
    "kserve_manifest",
    "load_handler",
    "loadtest",
    "predictor_from_url",
    "run_aps_server",
    "run_inference_server",
    "up",
    "write_manifests",
    "write_plot",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"aiforge.serve.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'aiforge.serve' has no attribute {name!r}")
