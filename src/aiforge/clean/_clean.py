"""CLEAN: find and correct noisy labels in a snapshot; write the corrected snapshot and a report.

The label column of the new snapshot holds the corrected labels and ``label_given`` the labels it was given; every
other column is copied unchanged. The snapshot is built in a staging folder and committed like a DUMP.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aiforge import reprs
from aiforge.clean._features import GIVEN_COLUMN, IMPUTE, feature_columns, feature_matrix, is_number, is_vector
from aiforge.clean._report import render_html, summarise
from aiforge.clean.checkers import make_checker
from aiforge.clean.pico import PICO
from aiforge.clean.vote import MultiSplitVote, SplitTrainCheck
from aiforge.engines import Engine, resolve_engine
from aiforge.errors import ColumnNotFound, InvalidInput, WorkspaceError
from aiforge.progress import progress as progress_bar
from aiforge.validation import RANDOM_STATE, validate_params
from aiforge.workspace import Snapshot, Workspace, check_name, write_atomic
from aiforge.workspace.writer import PartWriter, data_manifest

__all__ = ["METHODS", "CleanResult", "clean"]

METHODS = ("pico", "vote", "split")


@dataclass
class CleanResult:
    """What :func:`clean` made: the new snapshot, the report files and the fitted cleaner."""

    snapshot: Snapshot
    report: dict[str, Any] = field(repr=False)
    html_path: Path
    json_path: Path
    cleaner: Any = field(repr=False)

    @property
    def changed(self) -> int:
        """How many labels were changed."""
        return int(self.report["changed"])

    def _repr_html_(self) -> str:
        """A compact summary for Jupyter: labels changed, method, the top confusions and where the report is."""
        report = self.report
        facts = [
            ("label", report.get("label")),
            ("changed", f"{self.changed:,} of {report['rows']:,} labels ({100 * report['changed_fraction']:.2f}%)"),
            ("method", f"{report.get('method')} (checker {report.get('checker')}, seed {report.get('seed')})"),
            ("iterations", report.get("iterations")),
            ("engine", report.get("engine")),
            ("report", str(self.html_path)),
        ]
        impute = report.get("impute") or {}
        if impute.get("filled"):  # only when the checkers saw filled values
            filled = ", ".join(f"{name} {entry['missing']:,}" for name, entry in impute["filled"].items())
            facts.insert(3, ("imputed", f"{filled} ({impute['strategy']}, for the checkers only)"))
        confusions = report.get("top_confusions", [])
        rows = ((c["given"], c["suggested"], c["count"]) for c in confusions)
        top = reprs.table(("given", "suggested", "rows"), rows, total=len(confusions), limit=10, noun="pairs")
        return reprs.summary(f"CLEAN {report.get('subject')} → {self.snapshot.ref}", facts,
                             reprs.section("top confusions", top) if confusions else "")


def clean(
    data: Any,
    *,
    label: str,
    features: list[str] | None = None,
    impute: str | None = "median",
    method: str = "pico",
    checker: Any = None,
    out: str | None = None,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    seed: int = 0,
    n_jobs: int | None = 1,
    engine: str | Engine = "local",
    master: str | None = None,
    progress: bool = False,
) -> CleanResult:
    """Correct the labels of a snapshot and store the result as a new snapshot with a report.

    Parameters
    ----------
    data : str, Snapshot or pyarrow.Table
        A snapshot reference (``NAME`` or ``NAME@vN``), a :class:`~aiforge.Snapshot`, or an Arrow table (or a
        pandas DataFrame).
    label : str
        The label column.
    features : list of str, optional
        Feature columns: numbers, booleans, or vectors of numbers (list columns, spread into one feature per
        position). Default: the ``features`` vector of a BATCH feature snapshot; otherwise every numeric, boolean or
        vector column except the label, ``label_given``, integer identifiers (a different value in every row) and
        columns without a value. A single string column is text (use ``checker="text"``).
    impute : {'median', 'mean', 'most_frequent'} or None, default 'median'
        How the checkers see a missing feature value (null, NaN or +/-inf): the column's median, mean or most
        frequent value (the smallest on ties) over the rows being cleaned. The new snapshot keeps the values as they
        were; the manifest and the report say what was filled. None refuses missing values, as before.
    method : {'pico', 'vote', 'split'}, default 'pico'
        :class:`PICO`, :class:`MultiSplitVote` or :class:`SplitTrainCheck`.
    checker : str or scikit-learn classifier, optional
        See :func:`aiforge.clean.make_checker`.
    out : str, optional
        Name of the new snapshot. Default: ``<snapshot name>_clean`` (``clean`` for a table).
    workspace : Workspace or path, optional
        Default: ``Workspace()``.
    seed : int, default 0
        The cleaner's ``random_state``: the same seed gives the same snapshot.
    engine : {'local', 'spark'} or Engine, default 'local'
        Where PICO trains each iteration's checkers: processes on this machine, or Spark tasks (``method="pico"``
        only); resolved with :func:`aiforge.engines.resolve_engine`. The manifest records the engine that ran.
    master : str, optional
        Spark master URL with ``engine="spark"`` (default ``local[*]``).
    n_jobs : int, default 1
        Processes fitting checkers (``pico`` and ``vote``).
    progress : bool, default False
        Show a progress bar on a terminal.

    Returns
    -------
    CleanResult
        ``snapshot`` (the new snapshot), ``report`` (the JSON summary), ``html_path``, ``json_path``, ``cleaner``.

    Raises
    ------
    SnapshotNotFound, ColumnNotFound, InvalidInput, WorkspaceError

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> table = pa.table({**{f"f{i}": X[:, i] for i in range(64)}, "digit": y})
    >>> result = clean(table, label="digit", method="split", workspace=tempfile.mkdtemp())
    >>> result.snapshot.ref, GIVEN_COLUMN in result.snapshot.columns
    ('clean@v1', True)
    """
    started = time.perf_counter()
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if method not in METHODS:
        raise InvalidInput(f"unknown method {method!r}; use one of: {', '.join(METHODS)}")
    validate_params({"seed": seed}, {"seed": [RANDOM_STATE[0]]})  # named as the caller knows it, not random_state
    if impute is not None and impute not in IMPUTE:
        raise InvalidInput(
            f"unknown impute {impute!r}; use one of: {', '.join(IMPUTE)}, or None to refuse missing values"
        )
    where = resolve_engine(engine, master)
    if where.name == "spark" and method != "pico":
        raise InvalidInput(f"engine='spark' trains PICO's checkers on Spark; method {method!r} runs locally only")
    table, subject, default_out, source, batch_label = _read(data, ws)
    name = check_name(out if out is not None else default_out)
    if batch_label is not None:  # a BATCH feature snapshot: its label is the column 'label', its features 'features'
        label = "label" if label == batch_label and label not in table.column_names else label
        features = ["features"] if features is None and label != "features" else features
    if label not in table.column_names:
        raise ColumnNotFound(
            f"label column {label!r} not found in {subject}; available columns: {', '.join(table.column_names)}"
        )
    make_checker(checker)  # an unknown checker name fails before the features are judged by what it reads
    columns = feature_columns(table, label, features, subject)
    X, imputed = _features(table, columns, checker, subject, impute)
    given = table.column(label).to_numpy(zero_copy_only=False)
    if table.column(label).null_count:
        raise InvalidInput(
            f"label column {label!r} has {table.column(label).null_count} missing values; drop or fill them first"
        )
    cleaner = {"pico": PICO, "vote": MultiSplitVote, "split": SplitTrainCheck}[method]
    params: dict[str, Any] = {"checker": checker, "random_state": seed}
    if method != "split":
        params["n_jobs"] = n_jobs
    if method == "pico":
        params["engine"] = where
    with progress_bar(f"clean: {method}", total=None, enabled=progress):
        fitted = cleaner(**params).fit(X, given)
    corrected = pa.array(fitted.corrected_labels_, type=table.schema.field(label).type)
    output = table.set_column(table.column_names.index(label), label, corrected)
    given_type = table.schema.field(label).type
    if GIVEN_COLUMN in output.column_names:
        output = output.drop_columns([GIVEN_COLUMN])
    output = output.append_column(pa.field(GIVEN_COLUMN, given_type), table.column(label))
    checker_name = checker if isinstance(checker, str) or checker is None else type(checker).__name__
    meta = {
        "method": method,
        "checker": checker_name or "knn",
        "label": label,
        "features": columns,
        "impute": {"strategy": impute, "filled": imputed},
        "seed": seed,
        "engine": fitted.engine_.name,
    }
    report = summarise(fitted, np.asarray(given), subject, meta)
    with ws.staging("clean") as staged:
        writer = PartWriter(staged, output.schema)
        try:
            for batch in output.to_batches(max_chunksize=131_072):
                writer.write(batch)
            writer.close()
        except OSError as exc:
            writer.abort()
            raise WorkspaceError(f"cannot write snapshot {name} in {ws.home}: {exc}") from exc
        manifest = {
            "source": source,
            "query": None,
            **fitted.engine_.describe(),  # the engine that really ran: {"engine": ..., "master": ...}
            **data_manifest(staged, output.schema),
            "sample": None,
            "clean": {**meta, "changed": report["changed"], "iterations": report["iterations"]},
            "duration_s": round(time.perf_counter() - started, 3),
        }
        snapshot = ws.commit_snapshot(name, staged, manifest)
    created = snapshot.created
    report["output"] = snapshot.ref
    folder = ws.report_dir(f"clean-{snapshot.ref}", created.replace(":", "").replace("-", ""))
    html_path, json_path = folder / "report.html", folder / "stats.json"  # every report's layout (docs/guide.md)
    try:
        write_atomic(html_path, render_html(report))
        write_atomic(json_path, json.dumps(report, indent=2, default=str))
    except OSError as exc:
        raise WorkspaceError(f"cannot write the clean report to {folder}: {exc}") from exc
    ws.record_report(snapshot.ref, html_path, json_path, created)
    return CleanResult(snapshot, report, html_path, json_path, fitted)


def _read(data: Any, ws: Workspace) -> tuple[pa.Table, str, str, str, str | None]:
    """The table, a subject for messages, the default output name, the manifest's source and, for a BATCH feature
    snapshot, the name its spec gave the label (None otherwise)."""
    if isinstance(data, str):
        data = ws.get_snapshot(data)
    if isinstance(data, Snapshot):
        manifest = data.manifest
        batch_label = None
        if "feature_names" in manifest and "features" in data.columns:
            batch_label = str(manifest.get("label") or "label")
        return data.to_arrow(), data.ref, f"{data.name}_clean", f"snapshot:{data.ref}", batch_label
    if isinstance(data, pa.Table):
        return data, "table", "clean", "table", None
    if hasattr(data, "to_arrow") or type(data).__name__ == "DataFrame":
        return pa.Table.from_pandas(data, preserve_index=False), "dataframe", "clean", "dataframe", None
    raise InvalidInput(
        f"data must be a snapshot reference, a Snapshot, a pyarrow.Table or a DataFrame; got {type(data).__name__}"
    )


def _features(
    table: pa.Table, columns: list[str], checker: Any, subject: str, impute: str | None
) -> tuple[Any, dict[str, Any]]:
    """What the checkers read (one text column as an object array, or the numeric matrix (N, D) with missing values
    imputed) and what was imputed."""
    kinds = [table.schema.field(c).type for c in columns]
    # a named checker reads either numbers or one text column; an estimator of the caller's own may read either
    named = checker if isinstance(checker, str) else "knn" if checker is None else None
    if len(columns) == 1 and (pa.types.is_string(kinds[0]) or pa.types.is_large_string(kinds[0])):
        if named is not None and named != "text":
            raise InvalidInput(
                f"feature column {columns[0]!r} of {subject} has type {kinds[0]}; checker {named!r} needs numeric "
                "features: add checker='text' to judge the labels from this text, or encode it first (aiforge batch)"
            )
        return np.asarray(table.column(columns[0]).to_pylist(), dtype=object), {}
    bad = [(c, t) for c, t in zip(columns, kinds, strict=True) if not (is_number(t) or is_vector(t))]
    if bad:
        raise InvalidInput(
            f"feature column(s) {', '.join(f'{c!r} ({t})' for c, t in bad)} of {subject} are not numeric; encode "
            "them first (aiforge batch) or pass one text column alone with checker='text'"
        )
    if named == "text":
        raise InvalidInput(
            f"checker 'text' judges one string feature column; features "
            f"{', '.join(f'{c!r} ({t})' for c, t in zip(columns, kinds, strict=True))} of {subject} are not text: "
            "name one string column with features=[...], or use another checker"
        )
    return feature_matrix(table, columns, subject, impute)
