"""The Typer application every command group registers on, and the helpers they share."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, NoReturn

import typer
import typer.core

from aiforge.errors import AiforgeError, InvalidParameter
from aiforge.version import __version__
from aiforge.workspace import Workspace

__all__ = [
    "CommandGroup", "MetricsPublicOption", "RootGroup", "app", "human_bytes", "interrupted", "print_json",
    "serve_app", "workspace_of",
]


# Typer's own control flow (--help, usage errors, typer.Exit, Abort) passes through untouched
_CLICK_FLOW: tuple[type[BaseException], ...] = (
    typer.Exit, typer.Abort, next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
)


class CommandGroup(typer.core.TyperGroup):
    """One rule for how a command ends, whatever went wrong.

    - An :class:`~aiforge.errors.AiforgeError` is one line ``Error: ...`` on stderr and exit code 1, or 2 for an
      :class:`~aiforge.errors.InvalidParameter` (a usage error, like an option Typer refuses).
    - Ctrl-C says so and exits with 130; whatever was being written is staged, so nothing half-written is kept.
    - Anything else is a bug: one line saying so and where the full traceback was written (a log file under the
      workspace's ``logs/``), exit code 1. ``--debug`` shows the traceback instead, for every case.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:  # Ctrl-C while the options are read; Typer would exit 130 without a word
            interrupted()

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _CLICK_FLOW:
            raise
        except Exception as exc:
            if _from_ctrl_c(exc) and not _debug(ctx):
                interrupted()  # an engine (DuckDB) turned Ctrl-C into its own error, which a stage may have wrapped
            self._failed(ctx, exc)
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            interrupted()

    def _failed(self, ctx: Any, exc: Exception) -> NoReturn:
        if _debug(ctx):
            raise exc
        if isinstance(exc, AiforgeError):
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2 if isinstance(exc, InvalidParameter) else 1) from exc
        log = _write_crash_log(ctx, exc)
        typer.echo(
            f"Error: unexpected {type(exc).__name__}: {exc}\n"
            f"  This is a bug in aiforge, not a mistake of yours. The full traceback is in {log}; "
            "please attach it to a bug report (or rerun with --debug to see it here).",
            err=True,
        )
        raise typer.Exit(1) from exc


def _from_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, Ctrl-C: a ``KeyboardInterrupt``, or DuckDB's ``InterruptException``
    (DuckDB catches SIGINT during a query and raises its own error, an ``Exception``, which a stage may wrap)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt) or type(current).__name__ == "InterruptException":
            return True
        current = current.__cause__ or current.__context__
    return False


def interrupted() -> NoReturn:
    """Say that Ctrl-C stopped the command and exit with 130 (what shells expect after SIGINT).

    The ``finally`` blocks between the interrupt and here have run (staging is removed); the process then ends
    at once, because Python's own shutdown turns a Ctrl-C it saw into death by SIGINT (exit -2, no message).
    """
    import os
    import sys

    sys.stderr.write("Interrupted: stopped at your request; nothing half-written was kept.\n")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(130)


def _debug(ctx: Any) -> bool:
    root = ctx.find_root()
    return bool(ctx.params.get("debug") or root.params.get("debug") or (root.obj or {}).get("debug"))


def _write_crash_log(ctx: Any, exc: BaseException) -> Path:
    """Write the traceback of a bug to WORKSPACE/logs/crash-STAMP.log (or the temp folder if that fails)."""
    import datetime as dt
    import os
    import sys
    import tempfile
    import traceback

    obj = ctx.find_root().obj or {}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    text = (
        f"aiforge {__version__} crashed at {stamp}\ncommand: {' '.join(sys.argv)}\n\n"
        + "".join(traceback.format_exception(exc))
    )
    folders = [obj["workspace"].home / "logs"] if obj.get("workspace") else []
    folders.append(Path(tempfile.gettempdir()))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(the log could not be written)")


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


#: ``--metrics-public/--no-metrics-public``, the same choice on every server command
MetricsPublicOption = Annotated[
    bool,
    typer.Option(
        "--metrics-public/--no-metrics-public",
        help="Whether GET /metrics answers without the bearer token (Prometheus scrapers often have "
        "none; the page holds counts, latencies and model names, no request data).",
    ),
]


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
