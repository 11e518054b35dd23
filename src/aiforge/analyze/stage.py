"""ANALYZE as a stage: its spec, and the run that profiles data and saves the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import Field

from aiforge.stages import Cli, Stage, StageSpec

__all__ = ["STAGE", "AnalyzeSpec", "SavedReport"]


class AnalyzeSpec(StageSpec):
    """What to profile and where the report goes (see :func:`aiforge.analyze.analyze`)."""

    target: Annotated[
        str, Field(description="A snapshot (NAME or NAME@vN), or a Parquet/CSV path or glob."), Cli(argument=True)
    ]
    label: Annotated[
        str | None, Field(description="The label column (for balance, bias, leaks)."), Cli(("--label", "-l"))
    ] = None
    sample_rows: Annotated[
        int, Field(description="Rows in the random sample for sampled statistics.", ge=1), Cli(min=1)
    ] = 100_000
    seed: Annotated[int, Field(description="Seed of the sample.")] = 0
    exact: Annotated[bool, Field(description="Scan every row; no sampling.")] = False
    out: Annotated[
        Path | None, Field(description="Write the HTML report here ('-': stdout)."), Cli(("--out", "-o"))
    ] = None
    json_out: Annotated[
        Path | None, Field(description="Write the statistics as JSON here ('-': stdout)."), Cli(("--json",))
    ] = None


class SavedReport(NamedTuple):
    """The report and the files it was saved to (``None`` for a file not asked for, ``Path("-")`` for stdout)."""

    report: Any
    html_path: Path | None
    json_path: Path | None


def _run(spec: AnalyzeSpec, *, workspace: Any = None, progress: bool = False) -> SavedReport:
    from aiforge.analyze._analyze import analyze
    from aiforge.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    report = analyze(
        spec.target, label=spec.label, sample_rows=spec.sample_rows, seed=spec.seed, exact=spec.exact,
        workspace=ws, progress=progress,
    )
    html_path, json_path = report.save(html=spec.out, json=spec.json_out, workspace=ws)
    return SavedReport(report, html_path, json_path)


STAGE = Stage(
    name="analyze",
    spec=AnalyzeSpec,
    run=_run,
    summary="Profile data: statistics, label balance and bias, and the issues found, as an HTML report and JSON.",
    details=(
        "Without --out/--json the report goes into the workspace and is listed by `aiforge reports list`. A path "
        "that is a symlink, FIFO or device is written through, not replaced; '-' is stdout, and the summary then "
        "goes to stderr."
    ),
    example="aiforge analyze orders@v2 --label returned --out orders.html",
    command="analyze",
)
