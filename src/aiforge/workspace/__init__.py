"""The workspace (``AIFORGE_HOME``): the catalog of snapshots and reports, the snapshot writer, the model store.

Every stage writes through here: :class:`Workspace` names, versions and lists what exists; :mod:`.writer` stages
Parquet parts and their manifest and renames them into place, so a crash never leaves half a snapshot;
:class:`ModelStore` (:mod:`.models`) owns the model repository layout ``<name>/<version>/model.onnx``;
:func:`write_output` (:mod:`.files`) writes to a path the user named without replacing a symlink, FIFO or device;
:class:`Registry` (:mod:`.registry`) versions models with lineage, metrics and aliases, and :class:`RunStore`
(:mod:`.runs`) records every run, both in the catalog database :class:`CatalogDB` (:mod:`.db`: SQLite, or
PostgreSQL through ``AIFORGE_CATALOG``).
"""

from __future__ import annotations

from aiforge.workspace.catalog import Snapshot, Workspace, check_name, parse_ref, snapshot, write_atomic
from aiforge.workspace.db import CatalogDB
from aiforge.workspace.files import write_output
from aiforge.workspace.models import ModelStore, StagedVersion
from aiforge.workspace.registry import ModelVersion, Registry
from aiforge.workspace.runs import RunRecord, RunStore

__all__ = [
    "CatalogDB",
    "ModelStore",
    "ModelVersion",
    "Registry",
    "RunRecord",
    "RunStore",
    "Snapshot",
    "StagedVersion",
    "Workspace",
    "check_name",
    "parse_ref",
    "snapshot",
    "write_atomic",
    "write_output",
]
