"""Exact cases that kill the mutants scripts/mutate.py found surviving in workspace/catalog.py (issue 11)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from aiforge.errors import WorkspaceError
from aiforge.workspace import catalog


def test_alive_only_probes_with_signal_zero() -> None:
    sent: list[tuple[int, int]] = []

    def kill(pid: int, sig: int) -> None:
        sent.append((pid, sig))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(catalog.os, "kill", kill)
        assert catalog.process_alive(12345) is True
    assert sent == [(12345, 0)]
    assert catalog.process_alive(os.getpid()) is True


@pytest.mark.parametrize(("error", "alive"), [(PermissionError, True), (ProcessLookupError, False)])
def test_a_process_of_another_user_is_alive_and_a_missing_one_is_not(error: type[OSError], alive: bool) -> None:
    def kill(pid: int, sig: int) -> None:
        raise error

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(catalog.os, "kill", kill)
        assert catalog.process_alive(12345) is alive


def _write_locked(ws: catalog.Workspace) -> bool:
    probe = sqlite3.connect(ws.home / "catalog.sqlite", timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()
    return False


def test_commit_and_sweep_hold_the_catalog_write_lock(tmp_path: Path) -> None:
    ws = catalog.Workspace(tmp_path)
    seen: list[bool] = []
    write_json = catalog._write_json
    rmtree = catalog.shutil.rmtree

    def spy_write_json(path: Path, payload: object) -> None:
        seen.append(_write_locked(ws))
        write_json(path, payload)

    def spy_rmtree(path: Path, ignore_errors: bool = False) -> None:
        seen.append(_write_locked(ws))
        rmtree(path, ignore_errors=ignore_errors)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(catalog, "_write_json", spy_write_json)
        with ws.staging("test") as staged:
            ws.commit_snapshot("t", staged, {"rows": 0, "bytes": 0, "created": "now"})
    orphan = ws.snapshots_dir / "t" / "v9"
    orphan.mkdir(parents=True)
    (orphan / ".commit-999999999").touch()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(catalog.shutil, "rmtree", spy_rmtree)
        assert orphan in ws.sweep()
    assert seen == [True, True]
    assert not _write_locked(ws)


def test_sweep_removes_staging_entries_whose_name_has_no_pid(tmp_path: Path) -> None:
    ws = catalog.Workspace(tmp_path)
    ws.tmp_dir.mkdir(parents=True, exist_ok=True)
    foreign = [ws.tmp_dir / "junk", ws.tmp_dir / "kind-notapid-x"]
    for path in foreign:
        path.mkdir()
    assert sorted(ws.sweep()) == sorted(foreign)


def test_a_stray_file_in_staging_does_not_stop_the_sweep(tmp_path: Path) -> None:
    ws = catalog.Workspace(tmp_path)
    ws.tmp_dir.mkdir(parents=True, exist_ok=True)
    (ws.tmp_dir / "stray").write_text("x")
    assert ws.sweep() == [ws.tmp_dir / "stray"]


def test_sweep_reads_a_pid_only_from_three_part_names_and_removes_an_own_pid_orphan(tmp_path: Path) -> None:
    ws = catalog.Workspace(tmp_path)
    ws.tmp_dir.mkdir(parents=True, exist_ok=True)
    two_parts = ws.tmp_dir / f"kind-{os.getpid()}"
    two_parts.mkdir()
    orphan = ws.snapshots_dir / "t" / "v3"
    orphan.mkdir(parents=True)
    (orphan / f".commit-{os.getpid()}").touch()  # this process holds the lock, so its own marker is an orphan
    assert ws.sweep() == [two_parts, orphan]


def test_a_failed_commit_names_the_snapshot_and_workspace(tmp_path: Path) -> None:
    ws = catalog.Workspace(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(WorkspaceError, match=r"^cannot store snapshot t@v1 in "):
        ws.commit_snapshot("t", tmp_path / "a-file", {"rows": 0, "bytes": 0, "created": "now"})
