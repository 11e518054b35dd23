"""Commands of the data stages: dump, analyze, batch, clean, ocr-eval, snapshots, reports and nlp."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from aiforge.cli._app import CommandGroup, EngineName, MasterOption, app, human_bytes, print_json, workspace_of

snapshots_app = typer.Typer(cls=CommandGroup, help="List, show and remove snapshots.", no_args_is_help=True)
reports_app = typer.Typer(cls=CommandGroup, help="List the reports in the workspace.", no_args_is_help=True)
nlp_app = typer.Typer(cls=CommandGroup, help="The tokenizing NLP API and its throttling proxy.", no_args_is_help=True)
app.add_typer(snapshots_app, name="snapshots")
app.add_typer(reports_app, name="reports")
app.add_typer(nlp_app, name="nlp")

# -- dump -----------------------------------------------------------------------------------------------------------


@app.command()
def dump(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="postgresql://, mysql://, sqlite:///, duckdb:/// URL; a Parquet/CSV path or glob; or 'spark' "
            "(the Spark/Hive catalog, with --engine spark).",
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Snapshot name; each dump adds version NAME@vN.")],
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="SQL to run. For files the data is the table 'source' (default: all rows)."),
    ] = None,
    sample_fraction: Annotated[
        float | None, typer.Option("--sample-fraction", min=0.0, max=1.0, help="Keep this fraction of rows (0-1].")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --sample-fraction.")] = 0,
    engine: Annotated[EngineName, typer.Option("--engine", help="Where the query runs.")] = EngineName.local,
    master: MasterOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the snapshot summary as JSON.")] = False,
) -> None:
    """Dump a query result into a new immutable snapshot version NAME@vN.

    Example: aiforge dump sqlite:///shop.db -q "SELECT * FROM orders" -n orders
    """
    from aiforge.dump._dump import dump as run_dump

    snapshot = run_dump(
        source,
        query=query,
        name=name,
        sample_fraction=sample_fraction,
        seed=seed,
        engine=engine.value,
        master=master,
        workspace=workspace_of(ctx),
        progress=not as_json,
    )
    if as_json:
        print_json(snapshot.summary())
    else:
        typer.echo(
            f"{snapshot.ref}: {snapshot.rows:,} rows x {len(snapshot.columns)} columns, "
            f"{human_bytes(snapshot.manifest['bytes'])} -> {snapshot.path}"
        )


# -- batch ----------------------------------------------------------------------------------------------------------


@app.command()
def batch(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="The feature spec (YAML): input, drop rules, features, split, output.")],
    engine: Annotated[EngineName, typer.Option("--engine", help="Where the job runs.")] = EngineName.local,
    master: MasterOption = None,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Use only the first N rows of the input snapshot.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the feature snapshot summary as JSON.")] = False,
) -> None:
    """Build a feature snapshot from a spec: drop bad rows, fit on the train split, transform every row.

    The fitted statistics are saved as transform.json beside the features, for serving.

    Example: aiforge batch features.yaml --engine spark
    """
    from aiforge.batch._batch import batch as run_batch

    features = run_batch(
        spec, engine=engine.value, master=master, sample=sample, workspace=workspace_of(ctx), progress=not as_json
    )
    if as_json:
        print_json({**features.summary(), "splits": features.manifest.get("splits"), "dropped": features.dropped})
        return
    splits = ", ".join(f"{k} {v:,}" for k, v in (features.manifest.get("splits") or {}).items())
    typer.echo(
        f"{features.ref}: {features.rows:,} rows x {len(features.feature_names)} features ({splits}) -> {features.path}"
    )
    for rule in features.dropped:
        typer.echo(f"  dropped {rule.get('rows', 0):,} rows: {rule.get('rule')}")


# -- clean ----------------------------------------------------------------------------------------------------------


class CleanMethod(StrEnum):
    PICO = "pico"
    VOTE = "vote"
    SPLIT = "split"


@app.command()
def clean(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="The snapshot to clean: NAME or NAME@vN.")],
    label: Annotated[str, typer.Option("--label", "-l", help="The label column to correct.")],
    features: Annotated[
        str | None,
        typer.Option("--features", "-f", help="Comma-separated feature columns [default: numeric, not ids]."),
    ] = None,
    method: Annotated[
        CleanMethod, typer.Option("--method", help="pico, or the simpler vote/split.")
    ] = CleanMethod.PICO,
    checker: Annotated[
        str | None, typer.Option("--checker", help="knn (default), logreg, forest, hgb, nb, ensemble or text.")
    ] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Output snapshot name [default: NAME_clean].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the splits.")] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", "-j", min=1, help="Processes training checkers.")] = 2,
    engine: Annotated[
        EngineName, typer.Option("--engine", help="Where PICO trains its checkers: processes here, or Spark tasks.")
    ] = EngineName.local,
    master: MasterOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report summary as JSON.")] = False,
) -> None:
    """Find and correct noisy labels; write a new snapshot (given labels kept in label_given) and a report.

    Example: aiforge clean digits --label label --method pico
    """
    from aiforge.clean import clean as run_clean

    columns = [c.strip() for c in features.split(",") if c.strip()] if features else None
    result = run_clean(
        snapshot, label=label, features=columns, method=method.value, checker=checker, out=out,
        workspace=workspace_of(ctx), seed=seed, n_jobs=n_jobs, engine=engine.value, master=master,
        progress=not as_json,
    )
    report = result.report
    if as_json:
        keys = ("subject", "output", "method", "checker", "rows", "changed", "changed_fraction", "top_confusions")
        print_json({k: report.get(k) for k in keys} | {"html": str(result.html_path), "json": str(result.json_path)})
        return
    typer.echo(
        f"{result.snapshot.ref}: {result.changed:,} of {report['rows']:,} labels changed "
        f"({100 * report['changed_fraction']:.2f}%) by {report['method']}"
    )
    for confusion in report["top_confusions"][:5]:
        typer.echo(f"  {confusion['given']} -> {confusion['suggested']}: {confusion['count']:,} rows")
    typer.echo(f"Report: {result.html_path}")


# -- ocr-eval -------------------------------------------------------------------------------------------------------


class OcrMetric(StrEnum):
    POPEVAL = "popeval"
    CASCADE = "cascade"
    ALL = "all"


@app.command("ocr-eval")
def ocr_eval(
    gt_dir: Annotated[Path, typer.Argument(help="Folder of ground-truth files, one per image.")],
    pred_dir: Annotated[Path, typer.Argument(help="Folder of prediction files, paired with the GT by file name.")],
    metric: Annotated[OcrMetric, typer.Option("--metric", help="PopEval, the IoU cascade, or both.")] = (
        OcrMetric.POPEVAL
    ),
    mode: Annotated[
        str, typer.Option("--mode", help="reference (the authors' popEval.py, exactly) or paper (ties 1/n, area>0).")
    ] = "reference",
    fmt: Annotated[str, typer.Option("--format", help="auto, reference, ic13, ic15 or polygon.")] = "auto",
    ignore_case: Annotated[bool, typer.Option("--ignore-case", help="Compare characters case-insensitively.")] = False,
    normalize: Annotated[
        str | None, typer.Option("--normalize", help="Unicode normalisation before comparing: NFC or NFKC.")
    ] = None,
    strip_special: Annotated[
        bool, typer.Option("--strip-special", help="Drop ICDAR's special characters before comparing.")
    ] = False,
    ordered: Annotated[bool, typer.Option("--ordered", help="Order-aware popping ('CBA' no longer matches 'ABC').")] = (
        False
    ),
    per_image: Annotated[bool, typer.Option("--per-image", help="Also print the counts of every image.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
) -> None:
    """Score OCR predictions end to end: PopEval (character level) and/or the IoU >= 0.5 cascade (WEM, 1-NED).

    Example: aiforge ocr-eval gt/ pred/ --metric all --per-image
    """
    import warnings

    from aiforge.evaluate.ocr import evaluate_dirs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_dirs(
            gt_dir, pred_dir, metric=metric.value, fmt=fmt, mode=mode, ordered=ordered,  # type: ignore[arg-type]
            case_sensitive=not ignore_case, normalization=normalize, strip_special=strip_special,  # type: ignore[arg-type]
        )
    for warning in caught:  # a GT file without predictions is scored as all missed, and said loudly
        typer.echo(f"Warning: {warning.message}", err=True)
    payload: dict[str, Any] = result.to_dict()
    if as_json:
        if not per_image:
            for part in ("popeval", "cascade"):
                if payload.get(part):
                    payload[part].pop("images", None)
        print_json(payload)
        return
    typer.echo(f"{payload['n_images']} images")
    if payload.get("popeval"):
        p = payload["popeval"]
        typer.echo(
            f"PopEval  P {p['precision']!r}  R {p['recall']!r}  H {p['hmean']!r}  "
            f"(popped {p['popped']} of {p['pred_chars']} predicted / {p['gt_chars']} GT chars; "
            f"splits {p['splits']}, merges {p['merges']})"
        )
    if payload.get("cascade"):
        c = payload["cascade"]
        for key, label in (("detection", "IoU>=0.5"), ("wem", "WEM"), ("ned", "1-NED")):
            typer.echo(f"{label:<8} P {c[key]['precision']!r}  R {c[key]['recall']!r}  H {c[key]['hmean']!r}")
    if per_image:
        for part in ("popeval", "cascade"):
            for name, counts in ((payload.get(part) or {}).get("images") or {}).items():
                typer.echo(f"  {part:<8}{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


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
        typer.echo("No snapshots yet; create one with `aiforge dump`.")
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
        typer.echo(f"    {column['name']:<30}{column['type']}")


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


@app.command()
def analyze(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A snapshot (NAME or NAME@vN), or a Parquet/CSV path or glob.")],
    label: Annotated[
        str | None, typer.Option("--label", "-l", help="The label column (for balance, bias, leaks).")
    ] = None,
    sample_rows: Annotated[
        int, typer.Option("--sample-rows", min=1, help="Rows in the random sample for sampled statistics.")
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    exact: Annotated[bool, typer.Option("--exact", help="Scan every row; no sampling.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the HTML report here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the statistics as JSON here.")] = None,
) -> None:
    """Profile data: statistics, label balance and bias, and the issues found, as an HTML report and JSON.

    Without --out/--json the report goes into the workspace and is listed by `aiforge reports list`.

    Example: aiforge analyze orders@v2 --label returned --out orders.html
    """
    from aiforge.analyze._analyze import analyze as run_analyze

    workspace = workspace_of(ctx)
    report = run_analyze(
        target, label=label, sample_rows=sample_rows, seed=seed, exact=exact, workspace=workspace, progress=True
    )
    html_path, json_path = report.save(html=out, json=json_out, workspace=workspace)
    typer.echo(report.summary_text())
    if html_path:
        typer.echo(f"Report: {html_path}")
    if json_path:
        typer.echo(f"Stats:  {json_path}")


# -- reports --------------------------------------------------------------------------------------------------------


@reports_app.command("list")
def reports_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List the reports stored in the workspace, oldest first.

    Example: aiforge reports list
    """
    reports = workspace_of(ctx).list_reports()
    if as_json:
        print_json(reports)
        return
    if not reports:
        typer.echo("No reports yet; create one with `aiforge analyze`.")
    for r in reports:
        typer.echo(f"{r['id']:>4}  {r['created']}  {r['subject']}  {r['html'] or r['json']}")


# -- nlp ------------------------------------------------------------------------------------------------------------


@nlp_app.command("serve")
def nlp_serve(
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    user_dict: Annotated[
        Path | None, typer.Option("--user-dict", help="User dictionary: word<TAB>TAG[<TAB>score] per line.")
    ] = None,
    max_texts: Annotated[int, typer.Option("--max-texts", min=1, help="Most texts in one request.")] = 2000,
) -> None:
    """Serve the tokenizing NLP API (Kiwi for Korean, a Unicode splitter for other text) until Ctrl-C.

    POST /v1/tokenize with {"texts": [...], "pos": false} answers {"tokens": [[...], ...]}.

    Example: aiforge nlp serve --port 8000 --user-dict words.tsv
    """
    from aiforge.nlp import serve_nlp

    serve_nlp(host, port, user_dict, max_texts=max_texts)


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
