"""aiforge: from warehouse data to a served model on one machine, and to a cluster when it outgrows one.

The public API; everything else is an implementation detail::

    import aiforge
    snap = aiforge.dump("postgresql://localhost/shop", query="SELECT * FROM orders", name="orders")
    report = aiforge.analyze(snap, label="returned")
    features = aiforge.batch("features.yaml")      # feature vectors + transform.json for serving
    cleaned = aiforge.clean(snap, label="returned")  # PICO label-noise correction -> a new snapshot
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiforge._version import __version__
from aiforge.errors import (
    AiforgeError,
    ColumnNotFound,
    EmptyResult,
    InvalidInput,
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
from aiforge.workspace import Snapshot, Workspace

if TYPE_CHECKING:
    from aiforge.features.analyze import Report, analyze
    from aiforge.features.batch import FeatureSnapshot, batch
    from aiforge.features.dump import dump
    from aiforge.features.transform import Transform
    from aiforge.labels import PICO, MultiSplitVote, SplitTrainCheck, clean

# The stages load on first use (numpy, pyarrow, pydantic, scikit-learn...), so `import aiforge` and every CLI
# command that does not need them (`--version`, `snapshots list`) start quickly.
_LAZY = {
    "Report": "aiforge.features.analyze",
    "analyze": "aiforge.features.analyze",
    "FeatureSnapshot": "aiforge.features.batch",
    "batch": "aiforge.features.batch",
    "dump": "aiforge.features.dump",
    "Transform": "aiforge.features.transform",
    "PICO": "aiforge.labels",
    "MultiSplitVote": "aiforge.labels",
    "SplitTrainCheck": "aiforge.labels",
    "clean": "aiforge.labels",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aiforge' has no attribute {name!r}")


__all__ = [
    "PICO",
    "AiforgeError",
    "ColumnNotFound",
    "EmptyResult",
    "FeatureSnapshot",
    "InvalidInput",
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
]
