"""The sweep removes only what dead processes left: never a live process's staging, never a committed snapshot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import aiforge
from aiforge.workspace import Workspace


def _stager(home: Path) -> subprocess.Popen[str]:
    """A live process that holds a staging folder open until its stdin closes."""
    code = textwrap.dedent(
        f"""\
        import sys
        from aiforge.workspace import Workspace
        with Workspace({str(home)!r}).staging("dump") as path:
            (path / "part.parquet").write_bytes(b"not yet")
            print(path, flush=True)
            sys.stdin.read()
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_live_process_keeps_its_staging_and_a_dead_one_loses_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    live = _stager(home)
    assert live.stdout is not None
    staged = Path(live.stdout.readline().strip())
    assert staged.is_dir()
    assert Workspace(home).sweep() == []  # another process, alive: its work in progress stays
    assert (staged / "part.parquet").read_bytes() == b"not yet"
    live.kill()
    live.wait(timeout=30)
    assert staged.is_dir()  # killed: its finally never ran
    assert Workspace(home).sweep() == [staged]
    assert not staged.exists()


def test_the_sweep_keeps_every_committed_snapshot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), source)
    refs = [aiforge.dump(str(source), name="t", workspace=home).ref for _ in range(3)]
    assert refs == ["t@v1", "t@v2", "t@v3"]
    assert Workspace(home).sweep() == []
    assert [s.ref for s in Workspace(home).list_snapshots()] == refs
    assert all(s.dataset().to_table().num_rows == 3 for s in Workspace(home).list_snapshots())


def test_only_an_interrupted_commit_is_removed_never_a_folder_made_by_hand(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), source)
    committed = aiforge.dump(str(source), name="t", workspace=home)
    by_hand = home / "snapshots" / "t" / "v7"  # restored from a backup, say: not aiforge's to delete
    by_hand.mkdir()
    interrupted = home / "snapshots" / "u" / "v1"  # what a process killed between rename and catalog row leaves
    interrupted.mkdir(parents=True)
    (interrupted / ".commit-999999999").touch()
    (committed.path / ".commit-999999999").touch()  # killed after its commit, before tidying the marker
    assert Workspace(home).sweep() == [interrupted]
    assert by_hand.is_dir() and not interrupted.exists()
    assert not (committed.path / ".commit-999999999").exists()
    assert [s.ref for s in Workspace(home).list_snapshots()] == ["t@v1"]
