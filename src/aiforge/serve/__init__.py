"""SERVE: an ONNX inference server (Open Inference Protocol v2 over REST and gRPC, dynamic batching), an APS front
server that runs a user's pre/post-processing in front of it, one-command local serving, Kubernetes/KServe export,
a load tester and a capacity planner::

    from aiforge.serve import ServeSettings, export_sklearn, loadtest, up

    export_sklearn(model, "models", n_features=64, name="digits")        # models/digits/1/model.onnx
    with up(ServeSettings(model_repo="models", model="digits")) as stack:  # inference server + APS
        print(loadtest(stack.urls["aps"] + "/predict", {"instances": [[0.0] * 64]}, concurrency=8, duration_s=3))

Four wings: inference/ (the ONNX server), aps/ (the front server), deploy/ (settings, stack, supervise, manifests,
export) and sizing/ (load test, capacity planner). Names load on first use, so ``import aiforge.serve`` does not
import ONNX Runtime, gRPC or FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.serve.aps.coalesce import CoalescingPredictor
    from aiforge.serve.aps.handler import Context, Handler, TransformHandler, load_handler
    from aiforge.serve.aps.predictor import GrpcPredictor, LocalPredictor, Predictor, predictor_from_url
    from aiforge.serve.aps.server import create_aps_app, run_aps_server
    from aiforge.serve.deploy.export import add_model, export_sklearn, export_torch
    from aiforge.serve.deploy.manifests import k8s_manifests, kserve_manifest, write_manifests
    from aiforge.serve.deploy.settings import ServeSettings
    from aiforge.serve.deploy.stack import Stack, up
    from aiforge.serve.deploy.supervise import supervise
    from aiforge.serve.inference.engine import InferenceEngine
    from aiforge.serve.inference.repository import ModelConfig, ModelRepository, ModelVersion
    from aiforge.serve.inference.server import create_grpc_server, create_inference_app, run_inference_server
    from aiforge.serve.protocol import InferRequest, InferResponse, Tensor
    from aiforge.serve.sizing.load import LoadTestResult, loadtest
    from aiforge.serve.sizing.planner import CapacityPlan, capacity, write_plot

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
    "supervise",
    "up",
    "write_manifests",
    "write_plot",
]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "create_aps_app": "aiforge.serve.aps.server",
        "run_aps_server": "aiforge.serve.aps.server",
        "CapacityPlan": "aiforge.serve.sizing.planner",
        "capacity": "aiforge.serve.sizing.planner",
        "write_plot": "aiforge.serve.sizing.planner",
        "CoalescingPredictor": "aiforge.serve.aps.coalesce",
        "InferenceEngine": "aiforge.serve.inference.engine",
        "add_model": "aiforge.serve.deploy.export",
        "export_sklearn": "aiforge.serve.deploy.export",
        "export_torch": "aiforge.serve.deploy.export",
        "Context": "aiforge.serve.aps.handler",
        "Handler": "aiforge.serve.aps.handler",
        "TransformHandler": "aiforge.serve.aps.handler",
        "load_handler": "aiforge.serve.aps.handler",
        "create_grpc_server": "aiforge.serve.inference.server",
        "create_inference_app": "aiforge.serve.inference.server",
        "run_inference_server": "aiforge.serve.inference.server",
        "LoadTestResult": "aiforge.serve.sizing.load",
        "loadtest": "aiforge.serve.sizing.load",
        "k8s_manifests": "aiforge.serve.deploy.manifests",
        "kserve_manifest": "aiforge.serve.deploy.manifests",
        "write_manifests": "aiforge.serve.deploy.manifests",
        "GrpcPredictor": "aiforge.serve.aps.predictor",
        "LocalPredictor": "aiforge.serve.aps.predictor",
        "Predictor": "aiforge.serve.aps.predictor",
        "predictor_from_url": "aiforge.serve.aps.predictor",
        "InferRequest": "aiforge.serve.protocol",
        "InferResponse": "aiforge.serve.protocol",
        "Tensor": "aiforge.serve.protocol",
        "ModelConfig": "aiforge.serve.inference.repository",
        "ModelRepository": "aiforge.serve.inference.repository",
        "ModelVersion": "aiforge.serve.inference.repository",
        "ServeSettings": "aiforge.serve.deploy.settings",
        "Stack": "aiforge.serve.deploy.stack",
        "up": "aiforge.serve.deploy.stack",
        "supervise": "aiforge.serve.deploy.supervise",
    },
)
