"""aiforge: from warehouse data to a served model on one machine, and to a cluster when it outgrows one.

The public API; everything else is an implementation detail::

    import aiforge
    snap = aiforge.dump("postgresql://localhost/shop", query="SELECT * FROM orders", name="orders")
    report = aiforge.analyze(snap, label="returned")
    features = aiforge.batch("features.yaml")      # feature vectors + transform.json for serving
    cleaned = aiforge.clean(snap, label="returned")  # PICO label-noise correction -> a new snapshot
    run = aiforge.train("train.yaml")                # a training job (code + data + deadline) -> a registered model
    orders = aiforge.snapshot("orders@v1")           # open an existing snapshot (to_pandas(), to_arrow())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiforge.errors import (
    AiforgeError,
    ColumnNotFound,
    Conflict,
    EmptyResult,
    InvalidInput,
    JobFailed,
    ModelNotFound,
    NotFittedError,
    NotFound,
    Overloaded,
    QueryError,
    ServiceError,
    SnapshotNotFound,
    SourceError,
    UnknownSource,
    WorkspaceError,
)
from aiforge.version import __version__
from aiforge.workspace import Snapshot, Workspace, snapshot

if TYPE_CHECKING:
    from aiforge.analyze import Report, analyze
    from aiforge.batch import FeatureSnapshot, Transform, batch
    from aiforge.clean import PICO, MultiSplitVote, SplitTrainCheck, clean
    from aiforge.dump import dump
    from aiforge.train import train

# The stages load on first use (numpy, pyarrow, pydantic, scikit-learn...), so `import aiforge` and every CLI
# command that does not need them (`--version`, `snapshots list`) start quickly. `aiforge.dump` and the other stage
# names are the stage packages themselves, which call their stage function when called (see aiforge.lazy).
_STAGES = ("analyze", "batch", "clean", "dump", "train")
_LAZY = {
    "Report": "aiforge.analyze",
    "FeatureSnapshot": "aiforge.batch",
    "Transform": "aiforge.batch",
    "PICO": "aiforge.clean",
    "MultiSplitVote": "aiforge.clean",
    "SplitTrainCheck": "aiforge.clean",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _STAGES:
        return importlib.import_module(f"aiforge.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aiforge' has no attribute {name!r}")


__all__ = [
    "PICO",
    "AiforgeError",
    "ColumnNotFound",
    "Conflict",
    "EmptyResult",
    "FeatureSnapshot",
    "InvalidInput",
    "JobFailed",
    "ModelNotFound",
    "MultiSplitVote",
    "NotFittedError",
    "NotFound",
    "Overloaded",
    "QueryError",
    "Report",
    "ServiceError",
    "Snapshot",
    "SnapshotNotFound",
    "SourceError",
    "SplitTrainCheck",
    "Transform",
    "UnknownSource",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "analyze",
    "batch",
    "clean",
    "dump",
    "snapshot",
    "train",
]
