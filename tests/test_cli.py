from __future__ import annotations

from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from aiforge.cli import app
from aiforge.version import __version__

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"aiforge {__version__}\n"


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code in (0, 2)
    assert "Usage: aiforge" in result.output
    for command in ("dump", "analyze", "snapshots", "reports"):
        assert command in result.output


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    paths = []
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "commands"):
            paths += _command_paths(command, (*prefix, name))
        else:
            paths.append([*prefix, name])
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


def test_every_command_is_listed() -> None:
    assert len(COMMANDS) == 26
    assert ["serve", "model"] in COMMANDS and ["capacity"] in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_help_with_an_example(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example: aiforge " + " ".join(path) in result.output


def test_usage_error_exits_2() -> None:
    result = runner.invoke(app, ["snapshots", "list", "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option: --no-such-option" in result.output


def test_library_error_is_one_line_on_stderr_with_exit_1(workspace: object) -> None:
    result = runner.invoke(app, ["snapshots", "show", "nope"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: snapshot 'nope' not found in workspace ")
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(workspace: object) -> None:
    from aiforge.errors import SnapshotNotFound

    result = runner.invoke(app, ["--debug", "snapshots", "show", "nope"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SnapshotNotFound)


def test_empty_workspace_lists_nothing(workspace: object) -> None:
    result = runner.invoke(app, ["snapshots", "list", "--json"])
    assert (result.exit_code, result.output) == (0, "[]\n")
    result = runner.invoke(app, ["snapshots", "list"])
    assert result.output == "No snapshots yet; create one with `aiforge dump`.\n"
    result = runner.invoke(app, ["reports", "list", "--json"])
    assert (result.exit_code, result.output) == (0, "[]\n")


def test_home_option_overrides_the_environment(workspace: object, tmp_path: object) -> None:
    result = runner.invoke(app, ["--home", str(tmp_path), "snapshots", "show", "x"])  # type: ignore[arg-type]
    assert f"not found in workspace {tmp_path}" in result.stderr


def test_rm_without_version_is_refused(workspace: object) -> None:
    result = runner.invoke(app, ["snapshots", "rm", "users"])
    assert result.exit_code == 1
    assert result.stderr == "Error: refusing to remove 'users' without a version; name one, for example 'users@v1'\n"


def test_the_cli_starts_without_loading_the_stage_specs() -> None:
    import subprocess
    import sys

    code = "import sys, aiforge.cli; print(sorted({'pydantic', 'aiforge.stages', 'pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def test_reports_list_marks_reports_whose_files_are_gone(workspace: Any, tmp_path: Any) -> None:
    import json

    kept, gone = tmp_path / "kept.html", tmp_path / "gone.json"
    kept.write_text("<html></html>")
    workspace.record_report("users@v1", kept, None, "2026-01-01T00:00:00Z")
    workspace.record_report("users@v2", None, gone, "2026-01-02T00:00:00Z")
    result = runner.invoke(app, ["reports", "list"])
    assert result.exit_code == 0
    assert result.output == (
        f"   1  2026-01-01T00:00:00Z  users@v1  {kept}\n"
        f"   2  2026-01-02T00:00:00Z  users@v2  {gone} (missing)\n"
    )
    listed = json.loads(runner.invoke(app, ["reports", "list", "--json"]).output)
    assert [(r["subject"], r["missing"]) for r in listed] == [("users@v1", False), ("users@v2", True)]


def test_reports_list_shows_one_time_format(workspace: Any, tmp_path: Any) -> None:
    """ANALYZE stored microseconds and +0000, CLEAN a snapshot's Z form: the list (and the catalog) keep one."""
    import json

    workspace.record_report("a.csv", tmp_path / "a.html", None, "2026-01-01T10:00:00.123456+0000")
    workspace.record_report("users@v1", tmp_path / "b.html", None, "2026-01-02T00:00:00Z")
    workspace.record_report("users@v2", tmp_path / "c.html", None, "2026-01-02T09:00:00+09:00")
    listed = json.loads(runner.invoke(app, ["reports", "list", "--json"]).output)
    assert [r["created"] for r in listed] == ["2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z"]


def test_snapshots_list_of_an_unknown_name_names_the_others(workspace: Any, tmp_path: Any) -> None:
    import aiforge

    csv = tmp_path / "users.csv"
    csv.write_text("a,b\n1,2\n")
    aiforge.dump(csv, name="users", workspace=workspace)
    aiforge.dump(csv, name="orders", workspace=workspace)
    result = runner.invoke(app, ["snapshots", "list", "-n", "user"])
    assert (result.exit_code, result.output) == (0, "No snapshot named 'user'; the workspace has: orders, users.\n")
    assert "users@v1" in runner.invoke(app, ["snapshots", "list", "-n", "users"]).output


def test_nlp_serve_reads_its_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIFORGE_TEST_NLP_TOKEN", raising=False)
    result = runner.invoke(app, ["nlp", "serve", "--token-env", "AIFORGE_TEST_NLP_TOKEN"])
    assert result.exit_code == 1
    assert "AIFORGE_TEST_NLP_TOKEN" in result.output and result.output.startswith("Error: ")
