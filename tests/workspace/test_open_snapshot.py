"""aiforge.snapshot(ref) opens an existing snapshot from Python (issue 12: a new user looked for it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import aiforge
from aiforge.errors import SnapshotNotFound


def test_snapshot_opens_a_version_or_the_newest(workspace: Any, tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text("id,age\n1,30\n2,40\n")
    first = aiforge.dump(csv, name="users", workspace=workspace)
    csv.write_text("id,age\n1,30\n2,40\n3,50\n")
    aiforge.dump(csv, name="users", workspace=workspace)

    opened = aiforge.snapshot("users@v1")  # AIFORGE_HOME names the workspace, as for the CLI
    assert (opened.ref, opened.path) == ("users@v1", first.path)
    assert opened.to_pandas()["age"].tolist() == [30, 40]
    assert aiforge.snapshot("users", workspace=workspace.home).to_pandas()["age"].tolist() == [30, 40, 50]
    with pytest.raises(SnapshotNotFound, match=r"snapshot users@v3 not found; available versions: users@v1, users@v2"):
        aiforge.snapshot("users@v3")
    with pytest.raises(SnapshotNotFound, match="known snapshots: users"):
        aiforge.snapshot("orders")
