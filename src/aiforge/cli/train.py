"""``aiforge train SPEC.yaml``: the TRAIN stage command, generated from its spec; this module only prints results."""

from __future__ import annotations

from typing import Any

import typer

from aiforge.cli._app import print_json
from aiforge.cli._generate import stage_command

__all__: list[str] = []


def _show_train(result: Any, spec: Any, as_json: bool) -> None:
    if as_json:
        print_json(result.summary())
        return
    if result.plan is not None:
        from rich.console import Console

        console = Console(stderr=False, soft_wrap=True)
        console.print(result.plan.table())
        typer.echo(result.plan.describe())
    if result.outcome is None:
        return
    run = result.run
    if result.outcome.status == "exported":
        files = result.outcome.files
        typer.echo(f"run {run.id}: exported for Kubernetes, nothing ran here")
        for what, path in files.items():
            typer.echo(f"  {what}: {path}")
        return
    info = run.info
    resources = info.get("resources", {})
    memory = resources.get("memory")
    limits = f"{resources.get('cpus'):g} CPUs" + (f", {memory / 1024**2:,.0f} MiB" if memory else "")
    typer.echo(f"run {run.id}: {run.status} in {info.get('actual_s', 0):.1f} s on {limits} ({run.info.get('runtime')})")
    if result.environment.built:
        typer.echo(f"  environment built in {result.environment.seconds:.1f} s (reused by later runs of this lock)")
    if info.get("predicted_s"):
        typer.echo(f"  predicted {info['predicted_s']:.1f} s, took {info.get('actual_s', 0):.1f} s")
    for name, value in (info.get("metrics") or {}).items():
        typer.echo(f"  {name} = {value:.4g}")
    for warning in info.get("warnings") or []:
        typer.echo(f"  warning: {warning}")
    if result.model is not None:
        aliases = f" (aliases: {', '.join(result.model.aliases)})" if result.model.aliases else ""
        typer.echo(f"registered {result.model.ref}{aliases} -> {result.model.path}")
        typer.echo(f"serve it: aiforge serve up {result.model.ref}")


stage_command("train", "train", _show_train, json_help="Print the run, plan and model as JSON.")
