"""Typer commands generated from the stage contract (:mod:`aiforge.stages`).

A stage's spec fields become the command's arguments and options, with the spec's help, defaults, choices and
limits; the command parses them into the spec, runs the stage and hands the result to the stage's ``show``
function, the only part of a stage command written by hand. A command is built when it is first asked for (see
:class:`~aiforge.cli._app.RootGroup`), so commands that are not stages start without pydantic.
"""

from __future__ import annotations

import enum
import functools
import inspect
import types
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
import typer.main

from aiforge.cli._app import RootGroup, workspace_of

if TYPE_CHECKING:
    from aiforge.stages import StageSpec

__all__ = ["stage_command"]

_PACKAGE = str(Path(__file__).resolve().parent.parent)
#: ``show(result, spec, as_json)`` prints what a stage run returned.
Show = Callable[[Any, Any, bool], None]


def stage_command(command: str, stage: str, show: Show, *, json_help: str | None = None) -> None:
    """Add ``aiforge <command>``, built from the spec of ``stage`` when the command is first asked for.

    Parameters
    ----------
    command : str
        The command's name (the stage's ``command``; checked when it is built).
    stage : str
        The stage's name in :mod:`aiforge.stages`; its spec's fields become the command's parameters, in order.
    show : callable
        Prints the result; called as ``show(result, spec, as_json)``.
    json_help : str, optional
        Help of a ``--json`` flag that switches ``show`` to JSON (and turns progress bars off); none if omitted.
    """
    RootGroup.lazy[command] = functools.partial(_build, command, stage, show, json_help)


def _build(command: str, name: str, show: Show, json_help: str | None) -> Any:
    from aiforge import stages

    stage = stages.get(name)
    if (stage.command or stage.name) != command:
        raise TypeError(f"stage {name!r} is the command {stage.command!r}, not {command!r}")
    parameters = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    converters: dict[str, Callable[[Any], Any]] = {}
    for field_name, field in stage.spec.model_fields.items():
        annotation, convert = _parameter(stage.spec, field_name)
        converters[field_name] = convert
        default = inspect.Parameter.empty if field.is_required() else field.default
        kind = inspect.Parameter.KEYWORD_ONLY
        parameters.append(inspect.Parameter(field_name, kind, default=default, annotation=annotation))
    if json_help is not None:
        flag = Annotated[bool, typer.Option("--json", help=json_help)]
        parameters.append(inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=flag))

    def run(ctx: typer.Context, **values: Any) -> None:
        as_json = bool(values.pop("as_json", False))
        spec = stage.parse({key: converters[key](value) for key, value in values.items()})
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", module=r"aiforge\.")
            result = stage(spec, workspace=workspace_of(ctx), progress=not as_json)
        for warning in caught:  # aiforge's own warnings are one line for the user; others as Python shows them
            if warning.filename.startswith(_PACKAGE):
                typer.echo(f"Warning: {warning.message}", err=True)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        show(result, spec, as_json)

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    run.__name__ = name
    run.__doc__ = "\n\n".join(p for p in (stage.summary, stage.details, f"Example: {stage.example}") if p)
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    single.command(command)(run)
    return typer.main.get_command(single)


def _parameter(spec: type[StageSpec], name: str) -> tuple[Any, Callable[[Any], Any]]:
    """The Typer annotation of one spec field, and the function that turns its CLI value into the spec's."""
    from aiforge.stages import Cli

    field = spec.model_fields[name]
    cli = next((m for m in field.metadata if isinstance(m, Cli)), Cli())
    kind, optional = _unwrap(field.annotation)
    convert: Callable[[Any], Any] = _identity
    if typing.get_origin(kind) is Literal:  # click shows the choices: --engine <local|spark>
        kind, convert = _choices(f"{spec.__name__}_{name}", typing.get_args(kind)), _enum_value
    elif typing.get_origin(kind) is list and cli.split:
        kind, convert = str, _comma_list
    if optional:
        kind = kind | None
    if cli.argument:
        info: Any = typer.Argument(help=field.description)
    else:
        flags = cli.flags or ("--" + name.replace("_", "-"),)
        info = typer.Option(*flags, help=field.description, min=cli.min, max=cli.max)
    return Annotated[kind, info], convert


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        if Path in args:  # a spec that takes a path or an inline object takes a path on the command line
            return Path, len(args) < len(typing.get_args(annotation))
    return annotation, False


def _choices(name: str, values: tuple[Any, ...]) -> Any:
    return enum.StrEnum(name, {str(v): str(v) for v in values})


def _identity(value: Any) -> Any:
    return value


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _comma_list(value: Any) -> Any:
    if value is None:
        return None
    return [part.strip() for part in str(value).split(",") if part.strip()]
