"""What a training job's code gets: its data, params, a place for artifacts, metrics, progress and ``save_model``.

An entrypoint function takes the context and returns a model (or saves one)::

    def fit(ctx):
        X, y = ctx.data["features"].numpy("train")
        model = LogisticRegression(C=ctx.params.get("C", 1.0)).fit(X, y)
        ctx.log_metric("train_accuracy", model.score(X, y))
        return model                     # exported to ONNX, checked against the model, registered

A script entrypoint gets the same object from :func:`current`. Data is read from the workspace at the versions the
run pinned. When the planner calibrates a job it runs it on a fraction of the rows (``ctx.fraction``): every data
accessor returns that fraction, evenly spaced through the table, so the code needs no change.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiforge.errors import InvalidInput

__all__ = ["Context", "Data", "current"]

_CURRENT: Context | None = None
_PROGRESS_EVERY_S = 0.2


class Data:
    """One data reference of the job, pinned to a version: read it as Arrow, pandas or NumPy.

    Attributes
    ----------
    ref : str
        ``name@vN``.
    fraction : float
        The share of rows every accessor returns (1.0 outside calibration).
    """

    def __init__(self, ref: str, *, workspace: Any, fraction: float = 1.0, on_numpy: Any = None) -> None:
        self.ref = ref
        self.fraction = fraction
        self._workspace = workspace
        self._snapshot: Any = None
        self._on_numpy = on_numpy

    def __repr__(self) -> str:
        return f"Data({self.ref!r}, fraction={self.fraction})"

    @property
    def snapshot(self) -> Any:
        """The :class:`~aiforge.Snapshot` (a :class:`~aiforge.FeatureSnapshot` for features)."""
        if self._snapshot is None:
            snapshot = self._workspace.get_snapshot(self.ref)
            if snapshot.manifest.get("kind") == "features":
                from aiforge.batch import FeatureSnapshot

                snapshot = FeatureSnapshot.from_snapshot(snapshot)
            self._snapshot = snapshot
        return self._snapshot

    def arrow(self) -> Any:
        """The rows as a :class:`pyarrow.Table` (the calibration fraction of them)."""
        return self._subset(self.snapshot.to_arrow())

    def pandas(self) -> Any:
        """The rows as a :class:`pandas.DataFrame`."""
        return self.arrow().to_pandas()

    def numpy(self, split: str | None = None) -> tuple[Any, Any]:
        """``(X, y)`` of a feature snapshot, optionally of one split (``"train"``); ``y`` is ``None`` without a label.

        Raises
        ------
        InvalidInput
            The reference is a plain table (use :meth:`pandas` or :meth:`arrow`).
        """
        snapshot = self.snapshot
        if not hasattr(snapshot, "to_numpy"):
            raise InvalidInput(
                f"{self.ref} is a table, not a feature snapshot; read it with .pandas() or .arrow(), or build features "
                "with `aiforge batch` and reference those"
            )
        X, y = snapshot.to_numpy(split)
        if self.fraction < 1.0:
            keep = _spaced(len(X), self.fraction)
            X, y = X[keep], (None if y is None else y[keep])
        if self._on_numpy is not None:
            self._on_numpy(X)
        return X, y

    def _subset(self, table: Any) -> Any:
        if self.fraction >= 1.0:
            return table
        return table.take(_spaced(table.num_rows, self.fraction))


def _spaced(rows: int, fraction: float) -> Any:
    """Indices of ``fraction`` of ``rows``, evenly spread (a sorted table still gives every class)."""
    import numpy as np

    keep = max(1, math.ceil(rows * fraction)) if rows else 0
    return np.floor(np.arange(keep) * (rows / max(keep, 1))).astype(np.int64)


class Context:
    """The job's view of its run (see the module docstring).

    Attributes
    ----------
    run_id : str
    params : dict
        The spec's ``params``.
    data : mapping of str to Data
        The spec's ``data``, pinned.
    artifacts : Path
        A folder for files to keep with the run (plots, vocabularies...).
    fraction : float
        The share of the data this run sees (below 1 only in the planner's calibration runs).
    """

    def __init__(
        self, run_dir: Path, *, run_id: str, params: Mapping[str, Any], data: Mapping[str, str], workspace: Any,
        fraction: float = 1.0,
    ) -> None:
        self.run_id = run_id
        self.params = dict(params)
        self.fraction = fraction
        self._dir = run_dir
        self._start = time.monotonic()
        self._last_progress = -math.inf
        self._sample: Any = None
        self.data: dict[str, Data] = {
            name: Data(ref, workspace=workspace, fraction=fraction, on_numpy=self._remember)
            for name, ref in data.items()
        }
        self.artifacts = run_dir / "out" / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.model_path: Path | None = None

    def __repr__(self) -> str:
        return f"Context(run_id={self.run_id!r}, data={list(self.data)}, params={self.params})"

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Record a metric; the last value of each name is stored with the run and the registered model."""
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(float(value)):
            raise InvalidInput(f"metric {name!r} must be a finite number; got {value!r}")
        self._append("metrics.jsonl", {"name": str(name), "value": float(value), "step": step})

    def progress(self, step: float, total: float) -> None:
        """Report that ``step`` of ``total`` units of work are done; the planner compares it with its prediction.

        Calls are cheap: at most five a second reach the run folder (and always the last one).
        """
        if total <= 0:
            raise InvalidInput(f"progress total must be positive; got {total!r}")
        now = time.monotonic()
        if now - self._last_progress < _PROGRESS_EVERY_S and step < total:
            return
        self._last_progress = now
        self._append("progress.jsonl", {"step": float(step), "total": float(total)})

    def save_model(self, model: Any, *, sample: Any = None, example: Any = None) -> Path:
        """Export ``model`` (scikit-learn or PyTorch) to ONNX in the run, checked against the model.

        Parameters
        ----------
        model : estimator or torch.nn.Module
            A fitted scikit-learn estimator or pipeline, or a PyTorch module.
        sample : array-like, optional
            scikit-learn: rows to check the export on; default the first rows the job read with ``numpy()``.
        example : tensor, optional
            PyTorch: an example input (default the first rows read with ``numpy()``, as float32).

        Raises
        ------
        InvalidInput
            The model is neither kind, or its ONNX export differs from it (see :mod:`aiforge.serve.deploy.export`).
        """
        from aiforge.serve import export_sklearn, export_torch

        out = self._dir / "out" / "model.onnx"
        out.unlink(missing_ok=True)
        framework = _framework(model)
        if framework == "torch":
            import torch

            if example is None:
                if self._sample is None:
                    raise InvalidInput("save_model(module) needs example= (an input tensor) when no data was read")
                example = torch.as_tensor(self._sample[:8], dtype=torch.float32)
            export_torch(model, example, out)
            info: dict[str, Any] = {"framework": "torch", "class": type(model).__name__,
                                    "input_shape": list(example.shape)}
        else:
            n_features = int(getattr(model, "n_features_in_", 0) or 0)
            if not n_features:
                raise InvalidInput(f"{type(model).__name__} has no n_features_in_: fit it before save_model")
            rows = sample if sample is not None else (None if self._sample is None else self._sample[:32])
            export_sklearn(model, out, n_features=n_features, sample=rows)
            info = {"framework": "sklearn", "class": type(model).__name__, "n_features": n_features}
        info["checked"] = "ONNX Runtime outputs equal the model's within 1e-4"
        (self._dir / "out" / "model.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        self.model_path = out
        return out

    def _remember(self, X: Any) -> None:
        if self._sample is None and len(X):
            self._sample = X[:32]

    def _append(self, name: str, record: dict[str, Any]) -> None:
        record = {"t": round(time.monotonic() - self._start, 4), **record}
        with (self._dir / name).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def _framework(model: Any) -> str:
    module = type(model).__module__
    if module.startswith("torch") or any(c.__module__.startswith("torch.nn") for c in type(model).__mro__):
        return "torch"
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        return "sklearn"
    raise InvalidInput(
        f"save_model takes a fitted scikit-learn estimator or a torch.nn.Module; got {type(model).__name__}"
    )


def current() -> Context:
    """The running job's context (for script entrypoints).

    Raises
    ------
    InvalidInput
        Not inside a job started by ``aiforge train``.
    """
    if _CURRENT is None:
        raise InvalidInput("aiforge.train.current() is only available inside a job started by `aiforge train`")
    return _CURRENT


def _set_current(context: Context | None) -> None:
    global _CURRENT
    _CURRENT = context
