"""Write the CLI reference (docs/cli.md) from the commands' own --help, so the two cannot drift.

Usage: python scripts/gen_cli_docs.py > docs/cli.md   (or `make docs`); tests/test_docs.py checks the file is current.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
import typer.main
from typer.testing import CliRunner

from aiforge.cli import app


def _commands(group: Any, path: list[str]) -> list[list[str]]:
    """Every command path under ``group``, depth first, groups before their commands."""
    found = [path]
    ctx = typer.Context(group)  # stage commands are built when asked for, so ask the group rather than read .commands
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        if getattr(command, "hidden", False):
            continue
        if hasattr(command, "commands"):
            found += _commands(command, [*path, name])
        else:
            found.append([*path, name])
    return found


def render() -> str:
    """The whole reference as Markdown."""
    runner = CliRunner()
    env = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1", "AIFORGE_HOME": ".aiforge"}
    parts = [
        "# CLI reference",
        "",
        "Generated from `--help` by `scripts/gen_cli_docs.py` (run `make docs` after changing a command);",
        "`tests/test_docs.py` fails when this file and the commands disagree.",
    ]
    for path in _commands(typer.main.get_command(app), []):
        result = runner.invoke(app, [*path, "--help"], env=env, prog_name="aiforge")
        if result.exit_code != 0:
            raise SystemExit(f"`aiforge {' '.join(path)} --help` failed:\n{result.output}")
        title = " ".join(["aiforge", *path])
        parts += ["", f"## `{title}`", "", "```text", result.output.rstrip(), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "100")
    sys.stdout.write(render())
