"""The Typer application every command group registers on, and the helpers they share."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
import typer.core

from aiforge._version import __version__
from aiforge.errors import AiforgeError
from aiforge.workspace import Workspace

__all__ = [
    "CommandGroup", "RootGroup", "app", "human_bytes", "print_json", "serve_app", "workspace_of",
]


class CommandGroup(typer.core.TyperGroup):
    """Turns library errors into one clean line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AiforgeError as exc:
            if ctx.params.get("debug") or (ctx.obj or {}).get("debug"):
                raise
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from exc


class RootGroup(CommandGroup):
    """The ``aiforge`` group. The stage commands come first and are built from their specs only when asked for, so
    ``aiforge --version`` or ``aiforge snapshots list`` start without loading pydantic."""

    #: command name -> a function that builds the command (filled by :func:`aiforge.cli._generate.stage_command`)
    lazy: ClassVar[dict[str, Callable[[], Any]]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self.lazy[cmd_name](), cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=RootGroup,
    name="aiforge",
    help="aiforge: from warehouse data to a served model, on one machine or a Spark cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

serve_app = typer.Typer(
    cls=CommandGroup, help="Serve ONNX models: inference server, APS front server, both at once, export.",
    no_args_is_help=True,
)
app.add_typer(serve_app, name="serve")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aiforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="AIFORGE_HOME", help="Workspace folder [default: ./.aiforge]."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"workspace": Workspace(home), "debug": debug}


def workspace_of(ctx: typer.Context) -> Workspace:
    return ctx.obj["workspace"] if ctx.obj else Workspace()


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
