"""The workspace (``AIFORGE_HOME``): the catalog of snapshots and reports, and the snapshot writer.

Every stage writes through here: :class:`Workspace` names, versions and lists what exists; :mod:`.writer` stages
Parquet parts and their manifest and renames them into place, so a crash never leaves half a snapshot.
"""

from __future__ import annotations

from aiforge.workspace.catalog import Snapshot, Workspace, check_name, parse_ref, write_atomic

__all__ = ["Snapshot", "Workspace", "check_name", "parse_ref", "write_atomic"]
