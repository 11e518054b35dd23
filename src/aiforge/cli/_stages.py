"""Commands of the data stages: dump, analyze, batch, clean, ocr-eval, snapshots, reports and nlp."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from aiforge.cli._app import CommandGroup, MetricsPublicOption, app, human_bytes, print_json, workspace_of
from aiforge.cli._generate import stage_command

snapshots_app = typer.Typer(cls=CommandGroup, help="List, show and remove snapshots.", no_args_is_help=True)
reports_app = typer.Typer(cls=CommandGroup, help="List the reports in the workspace.", no_args_is_help=True)
nlp_app = typer.Typer(cls=CommandGroup, help="The tokenizing NLP API and its throttling proxy.", no_args_is_help=True)
app.add_typer(snapshots_app, name="snapshots")
app.add_typer(reports_app, name="reports")
stages_app = typer.Typer(
    cls=CommandGroup, help="The stages and their specs (what pipelines and the API accept).", no_args_is_help=True
)
app.add_typer(nlp_app, name="nlp")
app.add_typer(stages_app, name="stages")

# -- dump -----------------------------------------------------------------------------------------------------------


def _show_dump(snapshot: Any, spec: Any, as_json: bool) -> None:
    if as_json:
        print_json(snapshot.summary())
        return
    typer.echo(
        f"{snapshot.ref}: {snapshot.rows:,} rows x {len(snapshot.columns)} columns, "
        f"{human_bytes(snapshot.manifest['bytes'])} -> {snapshot.path}"
    )


stage_command("dump", "dump", _show_dump, json_help="Print the snapshot summary as JSON.")


# -- batch ----------------------------------------------------------------------------------------------------------


def _show_batch(features: Any, spec: Any, as_json: bool) -> None:
    if as_json:
        print_json({**features.summary(), "splits": features.manifest.get("splits"), "dropped": features.dropped})
        return
    splits = ", ".join(f"{k} {v:,}" for k, v in (features.manifest.get("splits") or {}).items())
    typer.echo(
        f"{features.ref}: {features.rows:,} rows x {len(features.feature_names)} features ({splits}) -> {features.path}"
    )
    for rule in features.dropped:
        typer.echo(f"  dropped {rule.get('rows', 0):,} rows: {rule.get('rule')}")


stage_command("batch", "batch", _show_batch, json_help="Print the feature snapshot summary as JSON.")


# -- clean ----------------------------------------------------------------------------------------------------------


def _show_clean(result: Any, spec: Any, as_json: bool) -> None:
    report = result.report
    if as_json:
        keys = ("subject", "output", "method", "checker", "rows", "changed", "changed_fraction", "impute",
                "top_confusions")
        print_json({k: report.get(k) for k in keys} | {"html": str(result.html_path), "json": str(result.json_path)})
        return
    typer.echo(
        f"{result.snapshot.ref}: {result.changed:,} of {report['rows']:,} labels changed "
        f"({100 * report['changed_fraction']:.2f}%) by {report['method']}"
    )
    for confusion in report["top_confusions"][:5]:
        typer.echo(f"  {confusion['given']} -> {confusion['suggested']}: {confusion['count']:,} rows")
    impute = report.get("impute") or {}
    if impute.get("filled"):
        filled = ", ".join(f"{name} {entry['missing']:,}" for name, entry in impute["filled"].items())
        typer.echo(f"Missing feature values filled with the {impute['strategy'].replace('_', ' ')} for the checkers "
                   f"(the snapshot keeps them missing): {filled}")
    typer.echo(f"Report: {result.html_path}")


stage_command("clean", "clean", _show_clean, json_help="Print the report summary as JSON.")


# -- ocr-eval -------------------------------------------------------------------------------------------------------


def _show_ocr_eval(result: Any, spec: Any, as_json: bool) -> None:
    payload: dict[str, Any] = result.to_dict()
    if as_json:
        if not spec.per_image:
            for part in ("popeval", "cascade"):
                if payload.get(part):
                    payload[part].pop("images", None)
        print_json(payload)
        return
    typer.echo(f"{payload['n_images']} images")
    if payload.get("popeval"):
        p = payload["popeval"]
        typer.echo(
            f"PopEval  P {p['precision']:.4f}  R {p['recall']:.4f}  H {p['hmean']:.4f}  "
            f"(popped {p['popped']} of {p['pred_chars']} predicted / {p['gt_chars']} GT chars; "
            f"splits {p['splits']}, merges {p['merges']})"
        )
    if payload.get("cascade"):
        c = payload["cascade"]
        for key, label in (("detection", "IoU>=0.5"), ("wem", "WEM"), ("ned", "1-NED")):
            typer.echo(f"{label:<8} P {c[key]['precision']:.4f}  R {c[key]['recall']:.4f}  H {c[key]['hmean']:.4f}")
    if spec.per_image:
        for part in ("popeval", "cascade"):
            for name, counts in ((payload.get(part) or {}).get("images") or {}).items():
                typer.echo(f"  {part:<8}{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


stage_command("ocr-eval", "evaluate", _show_ocr_eval, json_help="Print everything as JSON.")


# -- snapshots ------------------------------------------------------------------------------------------------------


@snapshots_app.command("list")
def snapshots_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only the versions of this snapshot.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List snapshots, oldest version first.

    Example: aiforge snapshots list --json
    """
    snapshots = workspace_of(ctx).list_snapshots(name)
    if as_json:
        print_json([s.summary() for s in snapshots])
        return
    if not snapshots:
        if name is None or not (others := workspace_of(ctx).list_snapshots()):
            typer.echo("No snapshots yet; create one with `aiforge dump`.")
        else:
            names = sorted({s.name for s in others})
            typer.echo(f"No snapshot named {name!r}; the workspace has: {', '.join(names)}.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("snapshot", "rows", "columns", "size", "created", "source", box=None)
    for s in snapshots:
        table.add_row(
            s.ref, f"{s.rows:,}", str(len(s.columns)), human_bytes(s.manifest["bytes"]), s.created,
            str(s.manifest.get("source", "")),
        )
    Console(width=160).print(table)


@snapshots_app.command("show")
def snapshots_show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME (latest version) or NAME@vN.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole manifest as JSON.")] = False,
) -> None:
    """Show a snapshot's manifest: source, query, schema, rows, bytes, hash.

    Example: aiforge snapshots show orders@v2
    """
    snapshot = workspace_of(ctx).get_snapshot(ref)
    if as_json:
        print_json({**snapshot.summary(), **snapshot.manifest, "ref": snapshot.ref, "columns": snapshot.columns})
        return
    m = snapshot.manifest
    typer.echo(f"{snapshot.ref}  ({snapshot.path})")
    for key in ("source", "query", "engine", "rows", "bytes", "content_hash", "created", "aiforge_version"):
        typer.echo(f"  {key:<16}{m.get(key)}")
    if m.get("sample"):
        typer.echo(f"  {'sample':<16}{m['sample']}")
    typer.echo("  schema:")
    for column in m["schema"]:
        note = f"  ({column['note']})" if column.get("note") else ""  # e.g. a NUMERIC stored as float64, and why
        typer.echo(f"    {column['name']:<30}{column['type']}{note}")


@snapshots_app.command("rm")
def snapshots_rm(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@vN; the version is required.")],
) -> None:
    """Remove one snapshot version (its files and its catalog entry).

    Example: aiforge snapshots rm orders@v1
    """
    snapshot = workspace_of(ctx).remove_snapshot(ref)
    typer.echo(f"Removed {snapshot.ref}")


# -- analyze --------------------------------------------------------------------------------------------------------


def _show_analyze(saved: Any, spec: Any, as_json: bool) -> None:
    # When a file went to stdout ('-'), stdout holds that file alone: the summary goes to stderr.
    on_stdout = [str(p) == "-" if p is not None else False for p in (saved.html_path, saved.json_path)]
    err = any(on_stdout)
    typer.echo(saved.report.summary_text(), err=err)
    for label, path, piped in zip(("Report:", "Stats: "), (saved.html_path, saved.json_path), on_stdout, strict=True):
        if path is not None:
            typer.echo(f"{label} {'stdout' if piped else path}", err=err)


stage_command("analyze", "analyze", _show_analyze)


# -- reports --------------------------------------------------------------------------------------------------------


@reports_app.command("list")
def reports_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List the reports stored in the workspace, oldest first.

    A report whose files were all deleted or moved is marked "(missing)" ("missing": true in JSON); it stays listed,
    since listing never deletes anything and the files may come back (a drive that is not mounted).

    Example: aiforge reports list
    """
    reports = workspace_of(ctx).list_reports()
    if as_json:
        print_json(reports)
        return
    if not reports:
        typer.echo("No reports yet; create one with `aiforge analyze`.")
    for r in reports:
        files = [path for path in (r["html"], r["json"]) if path]
        shown = next((path for path in files if os.path.exists(path)), files[0] if files else "")
        typer.echo(f"{r['id']:>4}  {r['created']}  {r['subject']}  {shown}{' (missing)' if r['missing'] else ''}")


# -- nlp ------------------------------------------------------------------------------------------------------------


@nlp_app.command("serve")
def nlp_serve(
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    user_dict: Annotated[
        Path | None, typer.Option("--user-dict", help="User dictionary: word<TAB>TAG[<TAB>score] per line.")
    ] = None,
    max_texts: Annotated[int, typer.Option("--max-texts", min=1, help="Most texts in one request.")] = 2000,
    token_env: Annotated[
        str | None,
        typer.Option("--token-env", metavar="NAME",
                     help="Require 'Authorization: Bearer <token>', the token read from environment variable NAME."),
    ] = None,
    metrics_public: MetricsPublicOption = True,
) -> None:
    """Serve the tokenizing NLP API (Kiwi for Korean, a Unicode splitter for other text) until Ctrl-C.

    POST /v1/tokenize with {"texts": [...], "pos": false} answers {"tokens": [[...], ...]}.

    Example: aiforge nlp serve --port 8000 --user-dict words.tsv
    """
    from aiforge.nlp import serve_nlp
    from aiforge.serve.deploy.settings import token_from_env

    token = token_from_env(token_env)
    serve_nlp(host, port, user_dict, max_texts=max_texts, token=token, metrics_public=metrics_public)


@nlp_app.command("proxy")
def nlp_proxy(
    ctx: typer.Context,
    upstream: Annotated[str, typer.Option("--upstream", help="URL of the NLP API, e.g. http://127.0.0.1:8000.")],
    rate: Annotated[str, typer.Option("--rate", help="Most requests let through, e.g. 200/s or 30/m.")] = "200/s",
    burst: Annotated[int, typer.Option("--burst", min=0, help="Requests allowed above the rate in a burst.")] = 50,
    port: Annotated[int, typer.Option("--port", "-p", help="Port the proxy listens on.")] = 8080,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where nginx's config, pid file and logs go [default: WORKSPACE/nginx]."),
    ] = None,
) -> None:
    """Run a real nginx in front of the NLP API that answers 429 above --rate, until Ctrl-C.

    Example: aiforge nlp proxy --upstream http://127.0.0.1:8000 --rate 200/s --burst 50
    """
    from aiforge.nlp import run_proxy

    raise typer.Exit(run_proxy(upstream, rate, burst, port, workdir or workspace_of(ctx).home / "nginx"))


# -- stages ---------------------------------------------------------------------------------------------------------


@stages_app.command("list")
def stages_list(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """List the stages, in the order of the flow, with their command and what they do.

    Example: aiforge stages list
    """
    from aiforge import stages

    found = [stages.get(name) for name in stages.names()]
    rows = [{"name": s.name, "command": s.command or s.name, "summary": s.summary} for s in found]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['name']:<10}aiforge {row['command']:<10}{row['summary']}")


@stages_app.command("schema")
def stages_schema(name: Annotated[str, typer.Argument(help="A stage name from `aiforge stages list`.")]) -> None:
    """Print a stage's spec as JSON Schema: its fields, types, defaults, limits and help.

    Example: aiforge stages schema dump
    """
    from aiforge import stages

    print_json(stages.get(name).json_schema())
