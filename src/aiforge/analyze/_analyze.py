"""ANALYZE: profile a snapshot, a file or a table into a :class:`Report` of statistics, bias and issues.

Cheap exact figures (row count, missing, min/max) come from Parquet metadata or one pass; everything else
comes from
a reproducible block sample whose size and seed the report states. See :mod:`aiforge.analyze._sampling`.
"""

from __future__ import annotations

import datetime as dt
import html as htmllib
import json as jsonlib
import os
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aiforge.analyze import _issues, _leaks, _sampling, _stats, _values
from aiforge.errors import ColumnNotFound, InvalidInput, WorkspaceError
from aiforge.progress import progress as progress_bar
from aiforge.validation import Interval, validate_params
from aiforge.version import __version__
from aiforge.workspace import write_output
from aiforge.workspace.files import STDOUT

__all__ = ["Report", "analyze"]

SCATTER_POINTS = 5_000
_CONSTRAINTS: dict[str, list[Any]] = {
    "sample_rows": [Interval(Integral, 1, None, closed="left")],
    "seed": [Interval(Integral, 0, None, closed="left")],
    "exact": ["boolean"],
}


class Report:
    """The result of :func:`analyze`: statistics, label balance, bias slices and issues, as JSON or one HTML
    file.

    Parameters
    ----------
    stats : dict
        The JSON-ready statistics (what :meth:`to_dict` returns).
    scatter : dict, optional
        Sampled rows for the interactive scatter (at most 5,000); kept out of the JSON.

    Examples
    --------
    >>> import pyarrow as pa
    >>> report = analyze(pa.table({"x": [1, 2, 3], "y": ["a", "b", "a"]}), label="y")
    >>> report.rows, len(report.columns)
    (3, 2)
    """

    def __init__(self, stats: dict[str, Any], scatter: dict[str, Any] | None = None) -> None:
        self._stats = stats
        self._scatter = scatter or {}

    def __repr__(self) -> str:
        shape = f"{self.rows:,} rows, {len(self.columns)} columns"
        return f"<Report {self.subject!r}: {shape}, {len(self.issues)} issues>"

    @property
    def subject(self) -> str:
        """What was analyzed: a snapshot ref, a file name, ``table`` or ``dataframe``."""
        return str(self._stats["subject"])

    @property
    def rows(self) -> int:
        """Rows in the whole data (exact)."""
        return int(self._stats["rows"]["value"])

    @property
    def columns(self) -> list[dict[str, Any]]:
        """Per-column statistics, in column order."""
        return list(self._stats["columns"])

    @property
    def issues(self) -> list[dict[str, Any]]:
        """Issues found, most severe first: ``type``, ``column``, ``rows``, ``exact``, ``severity``,
        ``message``.
        """
        return list(self._stats["issues"])

    @property
    def sample(self) -> dict[str, Any]:
        """How the estimated figures were sampled: ``rows``, ``seed``, ``method``, ``exact``, ``warnings``."""
        return dict(self._stats["sample"])

    @property
    def label(self) -> dict[str, Any] | None:
        """The label's distribution and imbalance, or None without a label."""
        return self._stats.get("label")

    @property
    def bias(self) -> list[dict[str, Any]]:
        """Label balance per slice of each categorical column."""
        return list(self._stats.get("bias", []))

    def column(self, name: str) -> dict[str, Any]:
        """The statistics of one column; :class:`ColumnNotFound` if there is no such column."""
        for stats in self._stats["columns"]:
            if stats["name"] == name:
                return dict(stats)
        raise ColumnNotFound(f"column {name!r} not in the report; columns: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self._stats["columns"]]

    def to_dict(self) -> dict[str, Any]:
        """The statistics as plain JSON-ready data."""
        return jsonlib.loads(self.to_json())

    def to_json(self) -> str:
        """The statistics as a JSON document."""
        return jsonlib.dumps(self._stats, indent=2, default=str, allow_nan=False)

    def to_html(self) -> str:
        """One self-contained HTML page (inline SVG and a small canvas script; works offline)."""
        from aiforge.analyze._report_html import render

        return render(self._stats, self._scatter)

    def _repr_html_(self) -> str:
        page = htmllib.escape(self.to_html(), quote=True)
        style = "width:100%;height:720px;border:0"
        return f'<iframe srcdoc="{page}" style="{style}" sandbox="allow-scripts"></iframe>'

    def summary_text(self) -> str:
        """A few lines for a terminal: rows, sample, and the top issues."""
        sample = self._stats["sample"]
        how = (
            "every row (exact)"
            if sample["exact"]
            else f"{sample['rows']:,}-row sample, seed {sample['seed']}"
        )
        lines = [f"{self.subject}: {self.rows:,} rows x {len(self.columns)} columns; statistics from {how}"]
        issues = self.issues
        lines.append(f"{len(issues)} issue{'s' if len(issues) != 1 else ''} found" + (":" if issues else ""))
        for item in issues[:5]:
            where = f"{item['column']}: " if item["column"] else ""
            approx = "" if item["exact"] else "~"
            lines.append(
                f"  [{item['severity']}] {where}{item['type']} ({approx}{item['rows']:,} rows) "
                f"{item['message']}"
            )
        if len(issues) > 5:
            lines.append(f"  ... and {len(issues) - 5} more in the report")
        for warning in sample.get("warnings", []):
            lines.append(f"  sampling: column {warning['column']} {warning['reason']}")
        return "\n".join(lines)

    def save(
        self,
        html: str | os.PathLike[str] | None = None,
        json: str | os.PathLike[str] | None = None,
        workspace: Any = None,
    ) -> tuple[Path | None, Path | None]:
        """Write the report and record it in the workspace catalog.

        With neither ``html`` nor ``json`` both go into the workspace (``reports/SUBJECT/STAMP/report.html`` and
        ``stats.json``); otherwise only the files asked for, written with :func:`aiforge.workspace.write_output`: a
        new or regular file is written to a temporary file and renamed, a symlink, FIFO or device is written
        through, and ``-`` is standard output (for one of the two). Files are recorded in the catalog; stdout is not.

        Returns
        -------
        (html_path, json_path)
            Where each went: a path, ``Path("-")`` for stdout, or None when it was not asked for.

        Examples
        --------
        >>> import os, tempfile
        >>> import pyarrow as pa
        >>> from aiforge import Workspace
        >>> out = os.path.join(tempfile.mkdtemp(), "r.json")
        >>> analyze(pa.table({"x": [1, 2]})).save(json=out, workspace=Workspace(tempfile.mkdtemp()))[1].name
        'r.json'
        """
        from aiforge.workspace import Workspace

        workspace = workspace or Workspace()
        created = self._stats["created"]
        if html is None and json is None:
            stamp = created.replace(":", "").replace("-", "").replace("+0000", "Z")
            folder = workspace.report_dir(self.subject, stamp)
            html_path: Path | None = folder / "report.html"
            json_path: Path | None = folder / "stats.json"
        else:
            html_path, json_path = _user_path(html), _user_path(json)
            if html_path == json_path == Path(STDOUT):
                raise InvalidInput(
                    "the HTML report and the JSON statistics cannot both go to stdout ('-'); "
                    "write one of them to a file"
                )
        if html_path is not None:
            _write(html_path, self.to_html())
        if json_path is not None:
            _write(json_path, self.to_json() + "\n")
        files = [p if p != Path(STDOUT) else None for p in (html_path, json_path)]
        if any(files):
            workspace.record_report(self.subject, files[0], files[1], created)
        return html_path, json_path


def _user_path(path: str | os.PathLike[str] | None) -> Path | None:
    if path is None:
        return None
    return Path(STDOUT) if os.fspath(path) == STDOUT else Path(path).absolute()


def _write(path: Path, text: str) -> None:
    try:
        write_output(path, text)
    except OSError as exc:
        raise WorkspaceError(f"cannot write the report to {path}: {exc}") from exc


def analyze(
    data: Any,
    *,
    label: str | None = None,
    sample_rows: int = 100_000,
    seed: int = 0,
    exact: bool = False,
    workspace: Any = None,
    progress: bool = False,
) -> Report:
    """Profile data: per-column statistics, the label's balance and bias, and the issues found.

    Parameters
    ----------
    data : str, Snapshot, path, pyarrow.Table or pandas.DataFrame
        A snapshot reference (``NAME`` for the latest version or ``NAME@vN``), a :class:`~aiforge.Snapshot`, a
        Parquet/CSV path, folder or glob, an Arrow table or a DataFrame. A string that names an existing path
        or a
        glob that matches files is a file; any other string is a snapshot reference.
    label : str, optional
        The label column: enables the label distribution, bias slices and leak checks.
    sample_rows : int, default 100_000
        Rows in the reproducible sample for the estimated figures. Data with at most this many rows is
        analyzed
        exactly.
    seed : int, default 0
        Seed of the sample; the same seed gives the same report.
    exact : bool, default False
        Scan every row (memory grows with the data).
    workspace : Workspace, optional
        Where snapshot references are resolved (default: ``AIFORGE_HOME``).
    progress : bool, default False
        Show a progress bar on a terminal.

    Returns
    -------
    Report

    Raises
    ------
    SnapshotNotFound, UnknownSource, SourceError, EmptyResult, ColumnNotFound, InvalidInput

    Examples
    --------
    >>> import pyarrow as pa
    >>> table = pa.table({"age": [20, 30, 30, 40], "churn": [0, 1, 1, 0]})
    >>> report = analyze(table, label="churn")
    >>> report.column("age")["mean"]["value"], report.sample["exact"]
    (30.0, True)
    """
    validate_params({"sample_rows": sample_rows, "seed": seed, "exact": exact}, _CONSTRAINTS)
    with progress_bar("analyze", total=5, enabled=progress) as bar:
        bar.update(description="reading metadata")
        source = _sampling.open_source(data, workspace)
        if label is not None and label not in source.schema.names:
            raise ColumnNotFound(
                f"label column {label!r} not found in {source.subject}; "
                f"available columns: {', '.join(source.schema.names)}"
            )
        figures = _sampling.exact_figures(source) if not exact and source.rows > sample_rows else {}
        bar.advance()
        bar.update(description="sampling")
        sample = _sampling.draw_sample(source, sample_rows, seed, exact)
        bar.advance()
        bar.update(description="statistics")
        table = sample.table
        columns = [
            {
                "name": name,
                **_stats.column_stats(
                    table.column(name), total_rows=source.rows, exact=sample.exact, figures=figures.get(name)
                ),
            }
            for name in source.schema.names
        ]
        bar.advance()
        bar.update(description="issues")
        # the checks below see plain values: no extension, run-end, view or dictionary types to special-case
        table = pa.Table.from_arrays([_values.normalise(c) for c in table.columns], names=table.column_names)
        label_info = bias = None
        leaks: dict[str, Any] = {}
        if label is not None:
            label_stats = next(c for c in columns if c["name"] == label)
            label_info = _issues.label_summary(label_stats, table.column(label), source.rows, sample.exact)
            bias = _issues.bias_slices(table, columns, label_info)
            leaks = _leaks.leak_scores(table, columns, label_info, seed)
            label_info["top_biased_slices"] = _issues.top_biased(bias)
        # every row of the data is here and one column differs on every row: no row repeats another
        key = sample.exact and _issues.has_key_column(columns, table)
        duplicates = np.zeros(0, dtype=np.int64) if key else _issues.duplicate_positions(table)
        issues = _issues.find_issues(
            columns,
            table,
            total_rows=source.rows,
            exact=sample.exact,
            duplicates=int(duplicates.size),
            leaks=leaks,
            label=label,
        )
        if label_info is not None:
            issues += _issues.imbalance_issues(label_info, sample.exact)
        _issues.add_examples(issues, table, sample.positions(), duplicates)
        bar.advance()
        stats = {
            "aiforge_version": __version__,
            "subject": source.subject,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
            "rows": {"value": source.rows, "exact": True},
            "sample": {
                "rows": table.num_rows,
                "seed": seed,
                "method": sample.method,
                "exact": sample.exact,
                "blocks_read": sample.blocks_read,
                "blocks_total": sample.blocks_total,
                "warnings": _sampling.clustering_warnings(source, figures, sample),
            },
            "columns": columns,
            "label": label_info,
            "bias": bias or [],
            "leak_scores": {name: {**score, "exact": sample.exact} for name, score in leaks.items()},
            "issues": issues,
        }
        scatter = _scatter_rows(table, columns, label, seed, leaks)
        bar.advance()
    return Report(_clean(stats), scatter)


def _scatter_rows(
    table: pa.Table,
    columns: list[dict[str, Any]],
    label: str | None,
    seed: int,
    leaks: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """At most 5,000 seeded rows of the plottable columns, for the Dive-like scatter.

    Columns come most useful first, since the page plots the first two: those that tell the most about the label
    on held-out rows; the label itself (it is the colour), row ids (integers all different) and constant columns
    last, since a scatter on them shows nothing.
    """
    leaks = leaks or {}

    def usefulness(stats: dict[str, Any]) -> tuple[bool, bool, bool, float]:
        score = leaks.get(stats["name"], {})
        gain = float(score.get("score", 0.0)) - float(score.get("baseline", 0.0))
        distinct = stats["distinct"]["value"]
        row_id = pa.types.is_integer(table.schema.field(stats["name"]).type) and distinct > 1 and (
            distinct == stats["count"]["value"] - stats["missing"]["value"])
        return distinct <= 1, stats["name"] == label, row_id, -gain

    columns = sorted(columns, key=usefulness)  # stable: otherwise in table order
    rows = table.num_rows
    pick = np.sort(
        np.random.default_rng(seed + 1).choice(rows, size=min(rows, SCATTER_POINTS), replace=False)
    )
    subset = table.take(pa.array(pick))
    out: dict[str, Any] = {"columns": {}, "kinds": {}, "label": label}
    for stats in columns:
        if stats["kind"] in ("numeric", "boolean", "datetime", "categorical") or stats["name"] == label:
            out["columns"][stats["name"]] = _plain_list(_values.hashable(subset.column(stats["name"])))
            out["kinds"][stats["name"]] = stats["kind"]
    return out


def _plain_list(column: pa.ChunkedArray) -> list[Any]:
    """JSON-ready values, converted by Arrow rather than per value in Python.

    Non-finite floats become None, times ISO strings and long strings are cut (:func:`_values.short_values`).
    """
    dtype = column.type
    if pa.types.is_floating(dtype):
        column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, dtype))
    elif pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        column = pc.strftime(column, "%Y-%m-%dT%H:%M:%S")
    elif pa.types.is_integer(dtype) or pa.types.is_boolean(dtype) or dtype == pa.null():
        pass
    elif not (pa.types.is_string(dtype) or pa.types.is_binary(dtype)):
        try:
            column = column.cast(pa.string())
        except pa.ArrowNotImplementedError:  # intervals and the like: shown as their JSON text
            column = _values.canonical_text(column)
    return _values.short_values(column)


def _clean(value: Any) -> Any:
    """Make the statistics strict JSON: no NaN/inf floats, no numpy scalars, no dates."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dt.datetime | dt.date | dt.time | bytes | dt.timedelta):
        return _values.jsonable(value) if not isinstance(value, dt.timedelta) else str(value)
    return value
