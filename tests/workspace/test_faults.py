"""Kill aiforge on purpose (SIGKILL, SIGINT) while it writes, and check the workspace after every kill.

The promise (docs/reliability.md): whatever happens to a process, the workspace holds only complete artifacts,
the catalog and the folders agree, and the next command sweeps what a dead process left in staging.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge.workspace import Workspace

SEED = 20261201
TRIALS_PER_STAGE = 6


def assert_consistent(home: Path) -> None:
    """Every catalog row is a complete snapshot on disk, every snapshot on disk is in the catalog, staging is empty."""
    ws = Workspace(home)
    ws.sweep()  # what the next command does first
    listed = {s.path.resolve(): s for s in ws.list_snapshots()}
    on_disk = {p.resolve() for p in (home / "snapshots").glob("*/v*")} if (home / "snapshots").is_dir() else set()
    assert on_disk == set(listed), f"catalog and folders disagree: only on disk {on_disk - set(listed)}, only in " \
        f"the catalog {set(listed) - on_disk}"  # fmt: skip
    for path, snapshot in listed.items():
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["version"] == snapshot.version and manifest["name"] == snapshot.name
        files = sorted((path / "data").glob("*.parquet"))
        assert [f.name for f in files] == sorted(Path(f["path"]).name for f in manifest["files"]), snapshot.ref
        assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == manifest["rows"] == snapshot.rows
        if manifest.get("kind") == "features":
            assert (path / "transform.json").is_file(), snapshot.ref
    leftovers = list(ws.tmp_dir.iterdir()) if ws.tmp_dir.is_dir() else []
    assert leftovers == [], f"staging left behind: {leftovers}"


def _source(folder: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    table = pa.table(
        {
            "id": np.arange(rows),
            "x1": x1,
            "x2": x2,
            "city": rng.choice(["seoul", "busan", "daegu"], size=rows),
            "y": (x1 + x2 > 0).astype("int64"),
        }
    )
    path = folder / "source.parquet"
    pq.write_table(table, path, row_group_size=20_000)
    return path


def _aiforge(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "AIFORGE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "aiforge", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faults")
    source = _source(folder, 400_000)
    home = folder / "home"
    for args in (["dump", str(source), "-n", "rows"], ["dump", str(source), "-n", "small", "-q",
                                                        "SELECT * FROM source WHERE id < 3000"]):  # fmt: skip
        proc = _aiforge(home, *args)
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    spec = folder / "features.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            input: rows@v1
            id: id
            label: y
            output: rows_features
            features:
              - numeric: {column: x1, scale: standardize}
              - numeric: {column: x2}
              - categorical: {column: city}
            """
        )
    )
    return {"source": source, "home": home, "spec": spec}


def _commands(prepared: dict[str, Path]) -> dict[str, list[str]]:
    return {
        "dump": ["dump", str(prepared["source"]), "-n", "rows"],
        "batch": ["batch", str(prepared["spec"])],
        "clean": ["clean", "small", "--label", "y", "-f", "x1,x2", "--method", "vote", "-j", "1"],
    }


def test_commit_killed_between_rename_and_catalog_row_leaves_no_orphan(prepared: dict[str, Path]) -> None:
    # the narrowest window: the snapshot folder is in place but its catalog row is not yet committed
    home = prepared["home"]
    code = textwrap.dedent(
        f"""\
        import os, signal
        import aiforge.workspace.catalog as catalog
        real = os.rename
        def rename_then_die(src, dst):
            real(src, dst)
            if "snapshots" in str(dst):
                os.kill(os.getpid(), signal.SIGKILL)
        catalog.os.rename = rename_then_die
        import aiforge
        aiforge.dump({str(prepared["source"])!r}, name="window", workspace={str(home)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert_consistent(home)
    assert not (home / "snapshots" / "window").exists() or not any((home / "snapshots" / "window").iterdir())


@pytest.mark.parametrize("stage", ["dump", "batch", "clean"])
def test_kill_at_random_points_leaves_a_consistent_workspace(
    prepared: dict[str, Path], stage: str, fault_trials: list
) -> None:
    home, command = prepared["home"], _commands(prepared)[stage]
    started = time.perf_counter()
    full = _aiforge(home, *command)  # one whole run, to learn how long the stage takes here
    assert full.wait(timeout=300) == 0, full.stderr.read() if full.stderr else ""
    duration = time.perf_counter() - started
    assert_consistent(home)
    rng = np.random.default_rng([SEED, ["dump", "batch", "clean"].index(stage)])
    for _ in range(TRIALS_PER_STAGE):
        sig = signal.SIGKILL if rng.random() < 0.5 else signal.SIGINT
        delay = float(rng.uniform(0.05, duration))
        before = {s.ref for s in Workspace(home).list_snapshots()}
        proc = _aiforge(home, *command)
        time.sleep(delay)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
        fault_trials.append((stage, sig.name, round(delay, 2)))
        assert_consistent(home)
        after = {s.ref for s in Workspace(home).list_snapshots()}
        new = after - before
        # a kill can land before the commit (nothing new), or after it while the process exits (one new version)
        assert len(new) <= 1 and (code != 0 or len(new) == 1), (sig.name, delay, code, new)
        if sig == signal.SIGINT and code == 130:  # Ctrl-C that aiforge saw: one line, never a traceback
            err = proc.stderr.read() if proc.stderr else ""
            assert err.startswith("Interrupted") and "Traceback" not in err, (delay, err)
        elif sig == signal.SIGINT:  # Python itself stopped: before aiforge's code ran, or after it finished
            err = proc.stderr.read() if proc.stderr else ""
            assert code in (0, -signal.SIGINT), (delay, code, err)  # the message says what went wrong
