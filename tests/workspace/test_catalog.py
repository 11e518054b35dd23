from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge.errors import InvalidInput, SnapshotNotFound
from aiforge.workspace import Workspace, parse_ref


def _commit(ws: Workspace, name: str, values: list[int]) -> object:
    with ws.staging("test") as staged:
        (staged / "data").mkdir()
        pq.write_table(pa.table({"x": values}), staged / "data" / "part-00000.parquet")
        manifest = {
            "rows": len(values),
            "bytes": (staged / "data" / "part-00000.parquet").stat().st_size,
            "schema": [{"name": "x", "type": "int64"}],
            "files": [{"path": "data/part-00000.parquet", "rows": len(values)}],
            "created": "2026-01-01T00:00:00Z",
        }
        return ws.commit_snapshot(name, staged, manifest)


def test_default_home_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIFORGE_HOME", str(tmp_path / "h"))
    assert Workspace().home == tmp_path / "h"
    monkeypatch.delenv("AIFORGE_HOME")
    monkeypatch.chdir(tmp_path)
    assert Workspace().home == tmp_path / ".aiforge"


def test_constructing_a_workspace_writes_nothing(tmp_path: Path) -> None:
    Workspace(tmp_path / "h")
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("users", ("users", None)), ("users@v3", ("users", 3)), (" a.b-c_1@v12 ", ("a.b-c_1", 12))],
)
def test_parse_ref(ref: str, expected: tuple[str, int | None]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "@v1", "users@3", "bad name", "../etc", "users@vx"])
def test_parse_ref_rejects_bad_references(ref: str) -> None:
    with pytest.raises(InvalidInput, match="invalid snapshot"):
        parse_ref(ref)


def test_versions_increase_and_latest_resolves(workspace: Workspace) -> None:
    first = _commit(workspace, "users", [1, 2])
    second = _commit(workspace, "users", [1, 2, 3])
    assert [s.ref for s in workspace.list_snapshots()] == ["users@v1", "users@v2"]
    assert workspace.get_snapshot("users") == second
    assert workspace.get_snapshot("users@v1") == first
    assert workspace.get_snapshot("users@v2").to_arrow().column("x").to_pylist() == [1, 2, 3]
    manifest = json.loads((workspace.home / "snapshots/users/v2/manifest.json").read_text())
    assert (manifest["name"], manifest["version"], manifest["rows"]) == ("users", 2, 3)


def test_unknown_snapshot_and_version_say_what_exists(workspace: Workspace) -> None:
    with pytest.raises(SnapshotNotFound, match="the catalog is empty; create one with `aiforge dump`"):
        workspace.get_snapshot("users")
    _commit(workspace, "users", [1])
    with pytest.raises(SnapshotNotFound, match=r"snapshot 'orders' not found .*known snapshots: users"):
        workspace.get_snapshot("orders")
    with pytest.raises(SnapshotNotFound, match="snapshot users@v7 not found; available versions: users@v1"):
        workspace.get_snapshot("users@v7")


def test_remove_needs_an_explicit_version_and_deletes_files(workspace: Workspace) -> None:
    snap = _commit(workspace, "users", [1])
    with pytest.raises(InvalidInput, match="without a version; name one, for example 'users@v1'"):
        workspace.remove_snapshot("users")
    workspace.remove_snapshot("users@v1")
    assert workspace.list_snapshots() == []
    assert not snap.path.exists()  # type: ignore[attr-defined]
    # the next dump of the same name does not reuse a removed version's files
    assert _commit(workspace, "users", [2]).version == 1  # type: ignore[attr-defined]


def test_failure_inside_staging_leaves_nothing(workspace: Workspace) -> None:
    with pytest.raises(RuntimeError), workspace.staging("test") as staged:
        (staged / "half.parquet").write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(workspace.tmp_dir.iterdir()) == []
    assert workspace.list_snapshots() == []


def test_an_orphan_directory_is_never_listed_and_its_version_is_skipped(workspace: Workspace) -> None:
    # a process killed between the rename and the catalog commit leaves a directory without a catalog row
    (workspace.snapshots_dir / "users" / "v1").mkdir(parents=True)
    assert workspace.list_snapshots() == []
    assert _commit(workspace, "users", [1]).version == 2  # type: ignore[attr-defined]


def test_sweep_removes_staging_left_by_a_dead_process(workspace: Workspace) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    left = workspace.tmp_dir / f"dump-{pid}-abc"
    left.mkdir(parents=True)
    mine = workspace.tmp_dir / f"dump-{os.getpid()}-def"
    mine.mkdir()
    assert workspace.sweep() == [left]
    assert mine.exists() and not left.exists()


def test_reports_are_recorded(workspace: Workspace, tmp_path: Path) -> None:
    rid = workspace.record_report("users@v1", tmp_path / "r.html", None, "2026-01-01T00:00:00Z")
    assert workspace.list_reports() == [
        {"id": rid, "subject": "users@v1", "html": str(tmp_path / "r.html"), "json": None,
         "created": "2026-01-01T00:00:00Z", "missing": True}  # r.html was never written
    ]
    assert workspace.report_dir("data/x*.parquet", "s1") == workspace.reports_dir / "data_x_.parquet" / "s1"


def test_a_report_whose_files_are_all_gone_is_listed_as_missing(workspace: Workspace, tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("a.html", "a.json", "b.html", "b.json", "c.json")}
    for path in files.values():
        path.write_text("x")
    both = workspace.record_report("a", files["a.html"], files["a.json"], "2026-01-01T00:00:00Z")
    half = workspace.record_report("b", files["b.html"], files["b.json"], "2026-01-01T00:00:01Z")
    gone = workspace.record_report("c", None, files["c.json"], "2026-01-01T00:00:02Z")
    files["b.json"].unlink()
    files["c.json"].unlink()
    listed = {r["id"]: r for r in workspace.list_reports()}
    assert [listed[i]["missing"] for i in (both, half, gone)] == [False, False, True]
    assert listed[gone]["json"] == str(files["c.json"])  # kept in the catalog: the file may come back (a drive)


def test_a_catalog_deleted_under_a_live_workspace_is_recreated(workspace: Workspace) -> None:
    _commit(workspace, "users", [1])
    import shutil

    shutil.rmtree(workspace.home)
    assert workspace.list_snapshots() == []
    assert _commit(workspace, "users", [2]).version == 1  # type: ignore[attr-defined]
