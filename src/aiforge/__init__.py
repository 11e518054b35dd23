"""aiforge: from warehouse data to a served model on one machine, and to a cluster when it outgrows one.

The public API; everything else is an implementation detail::

    import aiforge
    snap = aiforge.dump("postgresql://localhost/shop", query="SELECT * FROM orders", name="orders")
    report = aiforge.analyze(snap, label="returned")
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
from aiforge.features.dump import dump
from aiforge.workspace import Snapshot, Workspace

__all__ = [
    "AiforgeError",
    "ColumnNotFound",
    "EmptyResult",
    "InvalidInput",
    "NotFittedError",
    "NotFound",
    "QueryError",
    "Report",
    "ServiceError",
    "Snapshot",
    "SnapshotNotFound",
    "SourceError",
    "UnknownSource",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "analyze",
    "dump",
]
