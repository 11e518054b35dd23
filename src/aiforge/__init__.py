"""aiforge: from warehouse data to a served model on one machine, and to a cluster when it outgrows one.

The public API; everything else is an implementation detail::

    import aiforge
    snap = aiforge.dump("postgresql://localhost/shop", query="SELECT * FROM orders", name="orders")
    report = aiforge.analyze(snap, label="returned")
    features = aiforge.batch("features.yaml")      # feature vectors + transform.json for serving
"""

from __future__ import annotations

from aiforge._version import __version__
from aiforge.errors import (
    AiforgeError,
    ColumnNotFound,
    EmptyResult,
    InvalidInput,
    NotFittedError,
    NotFound,
    QueryError,
    ServiceError,
    SnapshotNotFound,
    SourceError,
    UnknownSource,
    WorkspaceError,
)
from aiforge.features.analyze import Report, analyze
from aiforge.features.batch import FeatureSnapshot, batch
from aiforge.features.dump import dump
from aiforge.features.transform import Transform
from aiforge.workspace import Snapshot, Workspace

__all__ = [
    "AiforgeError",
    "ColumnNotFound",
    "EmptyResult",
    "FeatureSnapshot",
    "InvalidInput",
    "NotFittedError",
    "NotFound",
    "QueryError",
    "Report",
    "ServiceError",
    "Snapshot",
    "SnapshotNotFound",
    "SourceError",
    "Transform",
    "UnknownSource",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "analyze",
    "batch",
    "dump",
]
