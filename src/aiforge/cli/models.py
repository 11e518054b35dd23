"""Commands ``aiforge models`` (the model registry) and ``aiforge runs`` (run records and their logs)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from aiforge.cli._app import CommandGroup, app, print_json, workspace_of
from aiforge.workspace import Registry, RunStore
from aiforge.workspace.registry import parse_model_ref

__all__ = ["models_alias", "models_list", "models_show", "runs_list", "runs_logs", "runs_show"]

models_app = typer.Typer(cls=CommandGroup, help="The model registry: versions, lineage, aliases.",
                         no_args_is_help=True)
runs_app = typer.Typer(cls=CommandGroup, help="Run records: status, spec, metrics and logs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _short(mapping: dict[str, Any], width: int = 60) -> str:
    text = "  ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in mapping.items())
    return text if len(text) <= width else text[: width - 3] + "..."


# -- models ---------------------------------------------------------------------------------------------------------


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only the versions of this model.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List every version of every registered model, oldest first, with its aliases and metrics.

    Example: aiforge models list --json
    """
    registry = Registry(workspace_of(ctx))
    names = [name] if name is not None else registry.names()
    versions = [version for each in names for version in registry.versions(each)]
    if as_json:
        print_json([version.summary() for version in versions])
        return
    if not versions:
        if name is not None and (others := registry.names()):
            typer.echo(f"No model named {name!r}; the registry has: {', '.join(others)}.")
        else:
            typer.echo("No models yet; register one with `aiforge train`.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "created", "aliases", "run", "metrics", box=None)
    for version in versions:
        table.add_row(version.ref, version.created, ", ".join(version.aliases), version.run_id or "",
                      _short(version.metrics))
    Console(width=160).print(table)


@models_app.command("show")
def models_show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME (newest version), NAME@vN or NAME@ALIAS.")],
    as_json: JsonOption = False,
) -> None:
    """Show one model version: its file, aliases, the run that made it, lineage and metrics.

    Example: aiforge models show digits@production
    """
    version = Registry(workspace_of(ctx)).get(ref)
    if as_json:
        print_json(version.summary())
        return
    typer.echo(f"{version.ref}  ({version.path})")
    typer.echo(f"  {'created':<10}{version.created}")
    typer.echo(f"  {'aliases':<10}{', '.join(version.aliases) or '-'}")
    typer.echo(f"  {'run':<10}{version.run_id or '-'}")
    for title, mapping in (("metrics", version.metrics), ("lineage", version.lineage)):
        typer.echo(f"  {title}:" + ("" if mapping else " -"))
        for key, value in mapping.items():
            shown = value if isinstance(value, str | int | float) else json.dumps(value, default=str)
            typer.echo(f"    {key:<18}{shown}")


@models_app.command("alias")
def models_alias(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@vN to point the alias at (with --rm: NAME).")],
    alias: Annotated[str, typer.Argument(help="The alias: production, candidate, any name.")],
    remove: Annotated[bool, typer.Option("--rm", help="Remove the alias instead.")] = False,
) -> None:
    """Point ALIAS of a model at a version (moving it atomically if it points elsewhere), or remove it with --rm.

    Example: aiforge models alias digits@v3 production
    """
    registry = Registry(workspace_of(ctx))
    name, which = parse_model_ref(ref)
    if remove:
        before = registry.aliases(name).get(alias)
        registry.remove_alias(name, alias)
        typer.echo(f"Removed {name}@{alias} (was v{before})")
        return
    if which is None:
        raise typer.BadParameter(f"name the version, for example '{name}@v1'", param_hint="'REF'")
    previous = registry.aliases(name).get(alias)
    version = registry.set_alias(name, alias, registry.get(ref).version)
    moved = f" (was v{previous})" if previous is not None and previous != version.version else ""
    typer.echo(f"{name}@{alias} -> {version.ref}{moved}")


# -- runs -----------------------------------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="Only runs of this kind (train, pipeline).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only runs of this job name.")] = None,
    limit: Annotated[int | None, typer.Option("-n", "--limit", min=1, help="At most N runs.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first; runs whose process is gone are marked killed first.

    Example: aiforge runs list --kind train -n 10
    """
    store = RunStore(workspace_of(ctx))
    store.mark_abandoned()
    runs = store.list(kind=kind, name=name, limit=limit)
    if as_json:
        print_json([run.summary() for run in runs])
        return
    if not runs:
        typer.echo("No runs yet; start one with `aiforge train`.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("run", "name", "status", "started", "ended", "model", "metrics", box=None)
    for run in runs:
        metrics = run.info.get("metrics")
        table.add_row(run.id, run.name, run.status, run.started, run.ended or "", str(run.info.get("model") or ""),
                      _short(metrics, 40) if isinstance(metrics, dict) else "")
    Console(width=160).print(table)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id, or a unique start of one.")],
    as_json: JsonOption = False,
) -> None:
    """Show one run: status, exit code, error, spec and everything recorded about it.

    Example: aiforge runs show train-20261202-004512-3f9a
    """
    store = RunStore(workspace_of(ctx))
    store.mark_abandoned()
    run = store.get(run_id)
    if as_json:
        print_json(run.summary())
        return
    typer.echo(f"{run.id}  {run.kind} {run.name!r}  {run.status}")
    for key, value in (("started", run.started), ("ended", run.ended), ("exit code", run.exit_code),
                       ("error", run.error), ("log", run.log_path)):
        if value is not None:
            typer.echo(f"  {key:<12}{value}")
    for title, mapping in (("info", run.info), ("spec", run.spec)):
        typer.echo(f"  {title}:")
        for key, value in mapping.items():
            shown = value if isinstance(value, str | int | float) else json.dumps(value, default=str)
            typer.echo(f"    {key:<18}{shown}")


@runs_app.command("logs")
def runs_logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id, or a unique start of one.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
) -> None:
    """Print a run's job.log (kept after a failure); --follow keeps printing until the run ends.

    Example: aiforge runs logs train-20261202-004512-3f9a --follow
    """
    store = RunStore(workspace_of(ctx))
    run = store.get(run_id)
    if not run.log_path.is_file() and not (follow and run.status == "running"):
        typer.echo(f"run {run.id} has no log yet ({run.log_path})", err=True)
        return
    offset = 0
    while True:
        if run.log_path.is_file():
            with run.log_path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            if chunk:
                typer.echo(chunk.decode("utf-8", errors="replace"), nl=False)
        if not follow or run.status != "running":
            return
        time.sleep(0.5)
        store.mark_abandoned()
        run = store.get(run.id)
