"""BATCH: drop bad rows from a snapshot and turn it into feature vectors, with the same output on every engine.

One spec (:mod:`aiforge.batch.spec`) runs on the local engine (DuckDB + Arrow, the default) or on Spark. The
statistics are fitted on the train split only and saved as ``transform.json`` beside the feature snapshot, so
:class:`~aiforge.batch.transform.Transform` can transform one record at serving time exactly as in training.
Everything is written in a staging folder and committed with its catalog row at the end: a failed job leaves no
feature snapshot.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aiforge import reprs
from aiforge.batch import _plan as plan
from aiforge.batch._encoders import SPLITS
from aiforge.batch._feature_ops import check_types, expand_columns
from aiforge.batch.spec import BatchSpec, load_spec
from aiforge.batch.transform import FORMAT_VERSION, Transform
from aiforge.engines import Engine, LocalEngine, SparkEngine, resolve_engine
from aiforge.errors import ColumnNotFound, EmptyResult, InvalidInput
from aiforge.validation import Interval, validate_params
from aiforge.workspace import Snapshot, Workspace, check_name
from aiforge.workspace.writer import data_manifest

__all__ = ["FeatureSnapshot", "batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSnapshot(Snapshot):
    """A feature snapshot: columns ``id``, ``split``, ``label`` (if any) and ``features`` (float32 x D).

    Examples
    --------
    >>> feats = FeatureSnapshot.from_snapshot(Workspace().get_snapshot("orders_features"))  # doctest: +SKIP
    >>> X, y = feats.to_numpy("train")  # doctest: +SKIP
    """

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> FeatureSnapshot:
        """View a snapshot made by :func:`batch` as a feature snapshot."""
        if snapshot.manifest.get("kind") != "features":
            raise InvalidInput(f"snapshot {snapshot.ref} is not a feature snapshot; make one with `aiforge batch`")
        return cls(snapshot.name, snapshot.version, snapshot.path, snapshot.manifest)

    @property
    def feature_names(self) -> list[str]:
        """The name of each of the ``D`` feature columns, in order."""
        return list(self.manifest["feature_names"])

    @property
    def dropped(self) -> list[dict[str, Any]]:
        """Rows dropped by each rule, in order: ``{"rule": ..., "rows": n}``."""
        return list(self.manifest["drops"])

    def _repr_html_(self) -> str:
        """A compact summary for Jupyter: a snapshot's facts plus features, splits and the rows each rule dropped."""
        splits = self.manifest.get("splits") or {}
        facts = [
            *self._html_facts(),
            ("rows in", self.manifest.get("rows_in")),
            ("label", self.manifest.get("label")),
            ("features", f"{self.manifest['n_features']:,}: {reprs.listing(self.feature_names, limit=10)}"),
            ("splits", " · ".join(f"{name} {rows:,}" for name, rows in splits.items())),
            ("dropped", sum(drop["rows"] for drop in self.dropped)),
        ]
        drops = reprs.table(("drop rule", "rows"), ((d["rule"], d["rows"]) for d in self.dropped),
                            total=len(self.dropped), noun="rules")
        return reprs.summary(f"Feature snapshot {self.ref}", facts, drops if self.dropped else "",
                             self._html_columns())

    def transform(self) -> Transform:
        """The fitted :class:`Transform` saved with this snapshot."""
        return Transform.load(self)

    def _table(self, split: str | None) -> pa.Table:
        if split is not None and split not in SPLITS:
            raise InvalidInput(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)} (or None for all)")
        dataset = self.dataset()
        return dataset.to_table(filter=pc.field("split") == split) if split else dataset.to_table()

    def to_numpy(self, split: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Features and labels as numpy arrays, in file order.

        Parameters
        ----------
        split : {'train', 'valid', 'test'}, optional
            Only the rows of this split; default every row.

        Returns
        -------
        X : ndarray of shape (N, D), float32
        y : ndarray of shape (N,), or None when the spec has no label
        """
        table = self._table(split)
        width = int(self.manifest["n_features"])
        column = table.column("features").combine_chunks()
        values = column.flatten().to_numpy(zero_copy_only=False) if len(column) else np.zeros(0, np.float32)
        X = np.asarray(values, dtype=np.float32).reshape(len(column), width)
        y = table.column("label").to_numpy() if "label" in table.column_names else None
        return X, y

    def to_torch(self, split: str | None = None) -> Any:
        """A :class:`torch.utils.data.TensorDataset` of ``(features, label)`` (or features only).

        Raises
        ------
        InvalidInput
            PyTorch is not installed, or the label is not numeric.
        """
        try:
            import torch
            from torch.utils.data import TensorDataset
        except ImportError as exc:
            raise InvalidInput(
                "to_torch() needs PyTorch, which is not installed: pip install torch (or use to_numpy())"
            ) from exc
        X, y = self.to_numpy(split)
        # Arrow hands out read-only buffers; tensors may be written to (in-place ops), so they get their own copy
        X = np.require(X, requirements=["C", "W"])
        if y is None:
            return TensorDataset(torch.from_numpy(X))
        if y.dtype.kind not in "biuf":
            raise InvalidInput(
                f"label of {self.ref} has type {y.dtype}; to_torch() needs numeric labels: encode them first, "
                "or use to_numpy()"
            )
        return TensorDataset(torch.from_numpy(X), torch.from_numpy(np.require(y, requirements=["C", "W"])))


def batch(
    spec: BatchSpec | Mapping[str, Any] | str | os.PathLike[str],
    *,
    engine: str | Engine = "local",
    master: str | None = None,
    sample: int | None = None,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> FeatureSnapshot:
    """Build a feature snapshot from a spec: drop rows, fit on the train split, transform every kept row.

    Parameters
    ----------
    spec : BatchSpec, mapping or path
        The spec, or a YAML file holding it (see :mod:`aiforge.batch.spec`).
    engine : {'local', 'spark'} or Engine, default 'local'
        ``local``: DuckDB and Arrow in this process, streaming. ``spark``: Spark SQL and ``mapInArrow``.
        Both give the same rows, splits and features (floats within 1e-6).
    master : str, optional
        Spark master URL for ``engine="spark"`` (default ``local[*]``).
    sample : int, optional
        Use only the first ``sample`` rows of the input snapshot (in file order), e.g. in a notebook.
    workspace : Workspace or path, optional
        Default: ``Workspace()``.
    progress : bool, default False
        Progress bars on a terminal.

    Returns
    -------
    FeatureSnapshot
        The next version of the spec's ``output``; its folder also holds ``transform.json``, and its manifest
        lists the dropped rows per rule (``drops``), ``splits``, ``feature_names`` and ``transform``.

    Raises
    ------
    InvalidInput
        A bad spec or option, a drop predicate that does not run, a label with one class, an unusable id type, or a
        feature or label over a column of a type it cannot use (a numeric feature over strings, a text feature over
        numbers, a list or bytes as a category or label), found before any row is read.
    SnapshotNotFound
        The input snapshot does not exist.
    ColumnNotFound
        A column of the spec is not in the snapshot; lists the available columns.
    EmptyResult
        The drop rules leave no row.
    ServiceError
        The NLP API is down or answered 5xx after all retries.

    Examples
    --------
    >>> import aiforge
    >>> feats = aiforge.batch("features.yaml")  # doctest: +SKIP
    >>> X, y = feats.to_numpy("train")  # doctest: +SKIP
    """
    started = time.perf_counter()
    spec = load_spec(spec)
    runs_on = resolve_engine(engine, master)
    validate_params({"sample": sample}, {"sample": [Interval(Integral, 1, None, closed="left"), None]})
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    check_name(spec.output)
    source = ws.get_snapshot(spec.input)
    files = source.files
    types = {f.name: f.type for f in pq.read_schema(files[0])} if files else {}
    spec = expand_columns(spec, types, source=f" of snapshot {source.ref}")  # columns: "pixel_*" -> one per column
    _check_columns(spec, source, types)
    transform = Transform(features=spec.features, nlp=spec.nlp)
    log.info("batch %s -> %s with the %s engine", source.ref, spec.output, runs_on.name)
    with ws.staging("batch") as staged:
        if sample is not None:
            files = [_sample(source, int(sample), staged / "sample.parquet")]
        runner: plan.Runner | None = None
        try:
            runner = _runner(runs_on, spec, transform, files, types, staged, ws.home)
            scan = runner.scan(progress)
            _check_fit(spec, source, scan)
            transform.fit_statistics(scan.stats, {name: str(kind) for name, kind in types.items()})
            width = len(transform.feature_names_)
            if width == 0:
                raise InvalidInput("the features give no output column (e.g. a TF-IDF feature with no token)")
            schema = plan.output_schema(types, spec, width)
            splits = runner.write(schema, staged, progress)
        finally:
            if runner is not None:
                runner.close()
            transform.close()
        for leftover in ("spill", "sample.parquet"):
            _remove(staged / leftover)
        artifact = transform.save(staged / "transform.json")
        manifest: dict[str, Any] = {
            "kind": "features",
            "source": source.ref,
            "spec": spec.model_dump(mode="json", exclude_none=True),
            **runs_on.describe(),
            **data_manifest(staged, schema),
            "sample": sample,
            "rows_in": scan.rows_in,
            "drops": [{"rule": r.label, "rows": n} for r, n in zip(spec.drop, scan.dropped, strict=True)],
            "splits": splits,
            "id": spec.id,
            "label": spec.label,
            "n_features": width,
            "feature_names": transform.feature_names_,
            "transform": {
                "path": "transform.json",
                "version": FORMAT_VERSION,
                "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
            },
            "duration_s": round(time.perf_counter() - started, 3),
        }
        snapshot = ws.commit_snapshot(spec.output, staged, manifest)
    log.info("wrote %s: %d rows x %d features", snapshot.ref, snapshot.rows, width)
    return FeatureSnapshot.from_snapshot(snapshot)


def _check_columns(spec: BatchSpec, source: Snapshot, types: Mapping[str, pa.DataType]) -> None:
    wanted = [("id", spec.id)] + ([("label", spec.label)] if spec.label else [])
    wanted += [(f"features[{i}].{f.kind}.column", f.column) for i, f in enumerate(spec.features)]
    for i, rule in enumerate(spec.drop):
        wanted += [(f"drop[{i}].columns", c) for c in rule.columns or []]
    for where, column in wanted:
        if column not in types:
            raise ColumnNotFound(
                f"column {column!r} ({where}) not found in snapshot {source.ref}; available columns: {', '.join(types)}"
            )
    check_types(spec.features, types, label=spec.label, source=f" of snapshot {source.ref}")
    kind = types[spec.id]
    if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InvalidInput(
            f"id column {spec.id!r} has type {kind}; the split hashes integer or string ids: cast it in the dump query"
        )


def _runner(
    engine: Engine,
    spec: BatchSpec,
    transform: Transform,
    files: list[Path],
    types: dict[str, pa.DataType],
    staged: Path,
    home: Path,
) -> plan.Runner:
    if isinstance(engine, SparkEngine):
        from aiforge.batch._spark import SparkRunner

        return SparkRunner(spec, transform, files, types, master=engine.master, home=home)
    if isinstance(engine, LocalEngine):
        from aiforge.batch._local import LocalRunner

        return LocalRunner(spec, transform, files, types, staged)
    raise InvalidInput(f"BATCH cannot run on the {engine.name} engine; use 'local' or 'spark'")


def _check_fit(spec: BatchSpec, source: Snapshot, scan: plan.Scan) -> None:
    if scan.kept == 0:
        raise EmptyResult(
            f"the drop rules removed all {scan.rows_in:,} rows of {source.ref}; nothing was written. Check the "
            "drop rules"
        )
    stats = scan.stats
    if stats["rows"] == 0:
        raise InvalidInput(f"no row of {source.ref} falls in the train split after the drop rules; raise split.train")
    if spec.label is not None and stats["label_classes"] < 2:
        found = f"only one class ({stats['label_example']!r})" if stats["label_classes"] else "no non-null value"
        raise InvalidInput(
            f"label {spec.label!r} has {found} in the train split of {source.ref} after the drop rules; a model "
            "needs at least two distinct labels: check the label column and the drop rules"
        )


def _sample(source: Snapshot, rows: int, path: Path) -> Path:
    pq.write_table(source.dataset().head(rows), path)
    return path


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
