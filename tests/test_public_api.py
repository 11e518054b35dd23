"""The public API is exactly what __all__ lists; changing it is a decision, so this test pins it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import aiforge


def test_public_names_are_pinned() -> None:
    assert sorted(aiforge.__all__) == sorted(
        [
            "AiforgeError", "ColumnNotFound", "Conflict", "EmptyResult", "FeatureSnapshot", "InvalidInput",
            "JobFailed", "ModelNotFound",
            "Overloaded", "MultiSplitVote", "NotFittedError", "NotFound", "PICO", "QueryError", "Report",
            "ServiceError",
            "Snapshot", "SnapshotNotFound", "SourceError", "SplitTrainCheck", "Transform", "UnknownSource",
            "Workspace", "WorkspaceError", "__version__", "analyze", "batch", "clean", "dump", "snapshot", "train",
        ]
    )
    for name in aiforge.__all__:
        assert hasattr(aiforge, name), name


def test_public_objects_claim_their_public_module() -> None:
    for name in aiforge.__all__:
        obj = getattr(aiforge, name)
        if callable(obj):
            assert obj.__module__.startswith("aiforge."), name
            assert obj.__doc__, f"{name} has no docstring"


def test_importing_aiforge_does_not_start_heavy_machinery() -> None:
    code = (
        "import sys, aiforge; "
        "heavy = ('pyspark', 'pandas', 'sklearn', 'torch', 'pydantic', 'pyarrow'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="module 'aiforge' has no attribute 'nope'"):
        aiforge.nope  # noqa: B018


def test_serve_names_resolve_and_load_lazily() -> None:
    import aiforge.serve

    for name in aiforge.serve.__all__:
        assert getattr(aiforge.serve, name).__module__.startswith("aiforge.serve."), name
    code = "import sys, aiforge.serve; print(sorted({'onnxruntime', 'grpc', 'fastapi'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


# Every public subpackage's __all__ as it stands; adding or removing a name is a decision, made here too.
SUBPACKAGE_NAMES: dict[str, list[str]] = {
    "aiforge.server": ["BearerAuth", "InFlightLimit", "READY_PREFIX", "ServerMetrics", "ServerThread", "TOO_LARGE",
                       "add_server_routes", "error_message", "error_parts", "error_response", "grpc_abort",
                       "grpc_status", "json_response", "loop_factory", "open_socket", "read_body", "retry_after", "run",
                       "send_json", "serve", "too_large_parts"],
    "aiforge.workspace": ["CatalogDB", "ModelStore", "ModelVersion", "Registry", "RunRecord", "RunStore", "Snapshot",
                          "StagedVersion", "Workspace", "check_name", "parse_ref", "snapshot", "write_atomic",
                          "write_output"],
    "aiforge.engines": ["ENGINES", "Engine", "LocalEngine", "SparkEngine", "resolve_engine"],
    "aiforge.dump": ["dump"],
    "aiforge.analyze": ["Report", "analyze"],
    "aiforge.batch": ["BatchSpec", "FeatureSnapshot", "Transform", "batch", "expand_columns", "load_spec"],
    "aiforge.clean": ["CHECKERS", "CleanResult", "METHODS", "MultiSplitVote", "PICO", "SplitTrainCheck", "clean",
                      "make_checker"],
    "aiforge.nlp": ["ClientStats", "NginxProxy", "NlpClient", "NlpClientConfig", "NlpServer", "TokenBucket",
                    "TokenizeRequest", "TokenizeResponse", "UserWord", "analyze", "create_nlp_app", "find_nginx",
                    "parse_rate", "read_user_dict", "run_proxy", "serve_nlp", "simple_tokenize", "tokenize",
                    "tokenize_partition", "write_nginx_config"],
    "aiforge.evaluate": [],
    "aiforge.validate": ["Disagreement", "Rate", "binomial_interval", "churn_baseline", "compare_predictions"],
    "aiforge.train": ["Context", "Data", "Plan", "TimeModel", "TrainResult", "TrainSpec", "current", "load_spec",
                      "plan", "train"],
    "aiforge.train.runtimes": ["RUNTIMES", "Launch", "Outcome", "Resources", "Runtime", "get_runtime",
                               "job_command", "thread_env"],
    "aiforge.evaluate.ocr": ["Box", "Cascade", "CascadeCounts", "CascadeResult", "CascadeScores", "ImageCounts",
                             "OCREvaluation", "PopEval", "PopEvalResult", "cascade", "evaluate_dirs", "parse_line",
                             "popeval", "read_boxes", "read_dir"],
    "aiforge.serve": ["CapacityPlan", "CoalescingPredictor", "Context", "GrpcPredictor", "Handler", "InferRequest",
                      "InferResponse", "InferenceEngine", "LoadTestResult", "LocalPredictor", "ModelConfig",
                      "ModelRepository", "ModelVersion", "Predictor", "ServeSettings", "Stack", "Tensor",
                      "TransformHandler", "add_model", "capacity", "create_aps_app", "create_grpc_server",
                      "create_inference_app", "export_sklearn", "export_torch", "k8s_manifests", "kserve_manifest",
                      "load_handler", "loadtest", "predictor_from_url", "run_aps_server", "run_inference_server",
                      "supervise", "up", "write_manifests", "write_plot"],
    "aiforge.serve.inference": ["DynamicBatcher", "InferenceEngine", "ModelConfig", "ModelRepository", "ModelVersion",
                                "create_grpc_server", "create_inference_app", "run_inference_server"],
    "aiforge.serve.aps": ["CoalescingPredictor", "Context", "GrpcPredictor", "Handler", "LocalPredictor", "Predictor",
                          "TransformHandler", "create_aps_app", "load_handler", "predictor_from_url",
                          "run_aps_server"],
    "aiforge.serve.deploy": ["ServeSettings", "Stack", "add_model", "export_sklearn", "export_torch", "k8s_manifests",
                             "kserve_manifest", "supervise", "up", "write_manifests"],
    "aiforge.serve.sizing": ["CapacityPlan", "LoadTestResult", "capacity", "loadtest", "write_plot"],
}
# packages that are not library API: the command line (its commands are documented in docs/cli.md)
NOT_API = {"aiforge.cli"}


@pytest.mark.parametrize("package", sorted(SUBPACKAGE_NAMES))
def test_subpackage_public_names_are_pinned_and_resolve(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(SUBPACKAGE_NAMES[package])
    assert len(set(module.__all__)) == len(module.__all__), "a name is listed twice"
    shown = dir(module)
    for name in module.__all__:
        assert name in shown, f"{package}.{name} is missing from dir()"
        getattr(module, name)  # resolves (the lazy ones load their module)


def test_every_public_subpackage_is_pinned() -> None:
    root = Path(aiforge.__file__).parent
    packages = {
        ".".join(("aiforge", *init.parent.relative_to(root).parts))
        for init in root.rglob("__init__.py")
        if init.parent != root and not any(part.startswith("_") for part in init.parent.relative_to(root).parts)
    }
    assert packages - NOT_API == set(SUBPACKAGE_NAMES), "pin the public names of a new subpackage in SUBPACKAGE_NAMES"


def test_stage_contract_names_are_pinned() -> None:
    from aiforge import stages

    assert sorted(stages.__all__) == [
        "BUILTIN", "Cli", "EngineChoice", "SparkMaster", "Stage", "StageSpec", "calls", "get", "names", "register",
        "validate",
    ]
    for name in stages.__all__:
        assert hasattr(stages, name), name


def test_shared_kit_modules_are_public_and_pinned() -> None:
    # modules every stage imports are public by name, so no stage reaches into a private module of another package
    from aiforge import reprs, validation

    assert sorted(reprs.__all__) == ["MAX_CELL", "MAX_ROWS", "cell", "human_bytes", "listing", "section", "summary",
                                     "table"]
    assert sorted(validation.__all__) == sorted([
        "DEPRECATED", "RANDOM_STATE", "Constraint", "HasMethods", "Hidden", "InstanceOf", "Interval", "Options",
        "ParamValidationMixin", "make_constraint", "renamed_param", "validate_params",
    ])
