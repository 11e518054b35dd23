"""Run records on SQLite: ids, updates, finishing, lookup by prefix, listing, abandoned runs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aiforge.errors import InvalidInput, NotFound
from aiforge.workspace import RunRecord, RunStore, Workspace
from aiforge.workspace.runs import FINAL_STATUSES

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture(autouse=True)
def _no_catalog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIFORGE_CATALOG", raising=False)


def test_start_update_finish(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    run = runs.start("train", "digits", {"entrypoint": "train.py", "params": {"C": 1.0}}, code_hash="abc")
    assert re.fullmatch(r"train-\d{8}-\d{6}-[0-9a-f]{4}", run.id)
    assert (run.kind, run.name, run.status, run.ended, run.exit_code, run.error) == (
        "train", "digits", "running", None, None, None
    )
    assert re.fullmatch(STAMP, run.started)
    assert run.info == {"code_hash": "abc", "pid": os.getpid(), "host": socket.gethostname()}
    assert run.dir == workspace.home / "runs" / run.id and run.dir.is_dir()
    assert run.log_path == run.dir / "job.log"
    updated = runs.update(run.id, plan={"cpus": 0.5}, code_hash="abd")
    assert updated.info["plan"] == {"cpus": 0.5} and updated.info["code_hash"] == "abd"
    done = runs.finish(run.id, "succeeded", exit_code=0, metrics={"accuracy": 0.97}, model="digits@v1")
    assert (done.status, done.exit_code, done.error) == ("succeeded", 0, None)
    assert re.fullmatch(STAMP, done.ended or "")
    again = runs.get(run.id)
    assert again == done
    assert again.spec == {"entrypoint": "train.py", "params": {"C": 1.0}}
    assert again.info["metrics"] == {"accuracy": 0.97} and again.info["plan"] == {"cpus": 0.5}
    assert again.summary()["log"] == str(run.log_path)
    assert again.summary()["status"] == "succeeded"


def test_info_values_that_are_not_json_are_stored_as_text(workspace: Workspace) -> None:
    run = RunStore(workspace).start("train", "digits", {"code": Path("/src/job")}, artifact=Path("/tmp/a"))
    assert run.spec == {"code": "/src/job"} and run.info["artifact"] == "/tmp/a"


def test_a_failed_run_keeps_its_log(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    run = runs.start("train", "digits", {})
    run.log_path.write_text("Traceback (most recent call last):\nValueError: boom\n")
    runs.finish(run.id, "failed", exit_code=1, error="ValueError: boom")
    failed = runs.get(run.id)
    assert (failed.status, failed.exit_code, failed.error) == ("failed", 1, "ValueError: boom")
    assert failed.log_path.read_text().endswith("ValueError: boom\n")


def test_finish_errors(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    run = runs.start("train", "digits", {})
    with pytest.raises(InvalidInput, match=r"^run status 'done' is not a final status; use one of succeeded, failed, "
                                           r"killed, timeout, oom, exported$"):
        runs.finish(run.id, "done")
    runs.finish(run.id, "timeout", error="deadline passed")
    with pytest.raises(InvalidInput, match=rf"^run {run.id} already finished \(timeout at {STAMP}\)$"):
        runs.finish(run.id, "succeeded")
    assert set(FINAL_STATUSES) == {"succeeded", "failed", "killed", "timeout", "oom", "exported"}


def test_start_errors(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    with pytest.raises(InvalidInput, match=r"^run kind 'Train!' must be a lowercase word"):
        runs.start("Train!", "digits", {})
    with pytest.raises(InvalidInput, match=r"^run name must be a non-empty string"):
        runs.start("train", " ", {})
    with pytest.raises(InvalidInput, match=r"^run spec must be a dict; got list$"):
        runs.start("train", "digits", [])  # type: ignore[arg-type]
    assert runs.list() == []


def test_get_by_prefix_and_not_found(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    with pytest.raises(NotFound, match=r"^run 'train-x' not found in workspace .*; no runs yet; start one with "
                                       r"`aiforge train` \(see `aiforge runs list`\)$"):
        runs.get("train-x")
    first = runs.start("train", "digits", {})
    second = runs.start("train", "churn", {})
    other = runs.start("pipeline", "nightly", {})
    assert runs.get(other.id[:10]).id == other.id
    assert runs.get(f"  {first.id} ").id == first.id
    with pytest.raises(InvalidInput, match=r"^run id 'train-' matches 2 runs \(.*\); give more of it$"):
        runs.get("train-")
    with pytest.raises(NotFound, match=rf"^run 'nope' not found .*; newest runs: {other.id}, {second.id}, {first.id}"):
        runs.get("nope")


def test_list_newest_first_and_filters(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    ids = [runs.start("train", name, {}).id for name in ("a", "b", "a")]
    pipeline = runs.start("pipeline", "a", {}).id
    assert [r.id for r in runs.list()] == [pipeline, *reversed(ids)]
    assert [r.id for r in runs.list(kind="train")] == list(reversed(ids))
    assert [r.id for r in runs.list(kind="train", name="a")] == [ids[2], ids[0]]
    assert [r.id for r in runs.list(limit=2)] == [pipeline, ids[2]]
    assert all(isinstance(r, RunRecord) for r in runs.list())
    with pytest.raises(InvalidInput, match=r"^limit must be a positive integer; got 0$"):
        runs.list(limit=0)


def test_mark_abandoned(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(gone.stdout)
    dead = runs.start("train", "digits", {}, pid=dead_pid)
    alive = runs.start("train", "digits", {})  # this process
    elsewhere = runs.start("train", "digits", {}, pid=dead_pid, host="another-machine")
    finished = runs.start("train", "digits", {}, pid=dead_pid)
    runs.finish(finished.id, "succeeded")
    assert runs.mark_abandoned() == [dead.id]
    killed = runs.get(dead.id)
    assert killed.status == "killed"
    assert killed.error == f"the process that ran it (pid {dead_pid}) is gone: killed or the machine stopped"
    assert [runs.get(r.id).status for r in (alive, elsewhere, finished)] == ["running", "running", "succeeded"]
    assert runs.mark_abandoned() == []


def test_ids_are_unique_even_when_the_random_part_repeats(workspace: Workspace,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import aiforge.workspace.runs as module

    suffixes = iter(["aaaa", "aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(module.secrets, "token_hex", lambda n: next(suffixes))
    monkeypatch.setattr(module, "_now", lambda: module.datetime(2026, 12, 2, 0, 45, 12, tzinfo=module.UTC))
    runs = RunStore(workspace)
    ids = [runs.start("train", "digits", {}).id for _ in range(2)]
    assert ids == ["train-20261202-004512-aaaa", "train-20261202-004512-bbbb"]
