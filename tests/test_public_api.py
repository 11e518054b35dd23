"""The public API is exactly what __all__ lists; changing it is a decision, so this test pins it."""

from __future__ import annotations

import subprocess
import sys

import aiforge


def test_public_names_are_pinned() -> None:
    assert sorted(aiforge.__all__) == sorted(
        [
            "AiforgeError", "ColumnNotFound", "Conflict", "EmptyResult", "FeatureSnapshot", "InvalidInput",
            "ModelNotFound",
            "Overloaded", "MultiSplitVote", "NotFittedError", "NotFound", "PICO", "QueryError", "Report",
            "ServiceError",
            "Snapshot", "SnapshotNotFound", "SourceError", "SplitTrainCheck", "Transform", "UnknownSource",
            "Workspace", "WorkspaceError", "__version__", "analyze", "batch", "clean", "dump",
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
