"""How every command ends when something goes wrong: one line, the right exit code, never a bare traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiforge.cli import app
from aiforge.cli._app import serve_app

runner = CliRunner()


def test_an_aiforge_error_is_one_line_and_exit_1(workspace: object) -> None:
    result = runner.invoke(app, ["snapshots", "show", "nope"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: snapshot 'nope' not found") and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "x.parquet", "--sample-rows", "0"],  # refused by Typer's range
        ["dump", "x.parquet", "-n", "x", "--sample-fraction", "0"],  # refused by the declared constraint
        ["dump", "x.parquet", "-n", "x", "--master", "local[2]"],  # refused by resolve_engine
        ["loadtest", "http://127.0.0.1:1/x", "--payload", "{}", "--concurrency", "0", "--duration", "1"],
    ],
    ids=["typer-range", "declared-constraint", "engine-master", "loadtest-concurrency"],
)
def test_an_out_of_range_option_is_a_usage_error_everywhere(workspace: object, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_bug_is_one_line_pointing_at_a_log_with_the_traceback(workspace) -> None:
    @serve_app.command("explode-for-test", hidden=True)
    def explode() -> None:
        {}["missing"]  # a bug: KeyError

    try:
        result = runner.invoke(app, ["serve", "explode-for-test"])
    finally:
        serve_app.registered_commands.pop()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == "Error: unexpected KeyError: 'missing'"
    assert "This is a bug in aiforge" in lines[1]
    log = Path(lines[1].split("The full traceback is in ")[1].split(";")[0])
    assert log.parent == workspace.home / "logs" and log.is_file()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'missing'" in text
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_instead(workspace) -> None:
    result = runner.invoke(app, ["--debug", "snapshots", "show", "nope"])
    assert result.exit_code == 1 and result.exception is not None
    assert type(result.exception).__name__ == "SnapshotNotFound"


def test_ctrl_c_says_so_and_exits_130(tmp_path: Path) -> None:
    # a real process and a real SIGINT, in the middle of a command that waits
    code = (
        "import time, typer\n"
        "from aiforge.cli import app\n"
        "from aiforge.cli._app import serve_app\n"
        "@serve_app.command('wait-for-test')\n"
        "def wait() -> None:\n"
        "    print('waiting', flush=True)\n"
        "    time.sleep(30)\n"
        "app(['serve', 'wait-for-test'])\n"
    )
    env = {**os.environ, "AIFORGE_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "waiting\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.strip() == "Interrupted: stopped at your request; nothing half-written was kept."


def test_invalid_input_that_is_not_a_parameter_stays_exit_1(workspace, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("input: x\n")
    result = runner.invoke(app, ["batch", str(spec)])
    assert result.exit_code == 1 and result.output.startswith("Error: invalid batch spec")


class InterruptException(Exception):
    """Stands in for duckdb.InterruptException: DuckDB turns Ctrl-C during a query into this Exception."""


@pytest.mark.parametrize("wrapped", [False, True], ids=["raised as is", "wrapped in an aiforge error"])
def test_ctrl_c_that_duckdb_turned_into_an_error_is_still_an_interrupt(
    workspace: object, monkeypatch: pytest.MonkeyPatch, wrapped: bool
) -> None:
    """A SIGINT during BATCH's DuckDB scan exited 1 ('Error: ...') in a fault trial instead of 130 (issue 11)."""
    import aiforge.cli._app as cli_app
    from aiforge.errors import QueryError
    from aiforge.workspace import Workspace

    def interrupted() -> None:  # the real one ends the process with os._exit(130)
        sys.stderr.write("Interrupted: stopped at your request; nothing half-written was kept.\n")
        raise SystemExit(130)

    def scan(self: object, name: object = None) -> None:
        try:
            raise InterruptException("INTERRUPT Error: Interrupted!")
        except InterruptException as exc:
            if wrapped:
                raise QueryError("INTERRUPT Error: Interrupted!", "SELECT count(*) FROM source") from exc
            raise

    monkeypatch.setattr(cli_app, "interrupted", interrupted)
    monkeypatch.setattr(Workspace, "list_snapshots", scan)
    result = runner.invoke(app, ["snapshots", "list"])
    assert result.exit_code == 130
    assert result.stderr == "Interrupted: stopped at your request; nothing half-written was kept.\n"
