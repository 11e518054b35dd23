"""What the label cleaners share: input checks, class-stratified splits, and checkers fitted in parallel processes.

Each held-out prediction comes back as the top ``k`` log-probabilities of a row plus one "floor" log-probability
shared by the other classes, so memory stays O(N x k) however many classes there are (``k = K`` keeps them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aiforge.engines import Engine, LocalEngine, SparkEngine
from aiforge.errors import InvalidInput

__all__ = ["Holdout", "check_xy", "fit_predict_splits", "seed_of", "stratified_folds"]

MIN_PROB = 1e-3
PREDICT_CHUNK = 65_536


@dataclass
class Holdout:
    """Held-out predictions of one repeat: for rows ``rows``, classes ``top`` (n, k), log-probs ``logp`` (n, k)
    and the log-prob ``floor`` (n,) of every class not in ``top``."""

    rows: np.ndarray
    top: np.ndarray
    logp: np.ndarray
    floor: np.ndarray


def check_xy(X: Any, y: Any, *, min_per_class: int, need: str) -> tuple[Any, np.ndarray, np.ndarray]:
    """Validate ``X`` and ``y``; return ``X`` (array or list of texts), the classes and ``y`` as codes 0..K-1."""
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise InvalidInput(f"y must be one label per example (a 1-D array); got shape {y_arr.shape}")
    n_x = X.shape[0] if hasattr(X, "shape") else len(X)
    if n_x != len(y_arr):
        raise InvalidInput(
            f"X and y have different lengths: X has {n_x} rows, y has {len(y_arr)} labels; pass one label per row"
        )
    if len(y_arr) == 0:
        raise InvalidInput("no examples: X and y are empty")
    if y_arr.dtype.kind == "f" and not np.isfinite(y_arr).all():
        raise InvalidInput("y has missing (NaN) labels; drop those rows or fill them before cleaning")
    if y_arr.dtype == object and any(v is None for v in y_arr):
        raise InvalidInput("y has missing (None) labels; drop those rows or fill them before cleaning")
    classes, codes = np.unique(y_arr, return_inverse=True)
    if len(classes) < 2:
        raise InvalidInput(
            f"y has only one class ({_show(classes[0])}); label cleaning needs at least two classes to compare"
        )
    counts = np.bincount(codes, minlength=len(classes))
    if counts.min() < min_per_class:
        small = ", ".join(f"{_show(classes[i])} ({counts[i]})" for i in np.flatnonzero(counts < min_per_class)[:5])
        raise InvalidInput(
            f"classes with fewer than {min_per_class} examples: {small}; {need} needs at least {min_per_class} "
            "examples of every class: drop or merge the rare classes, or use fewer folds (n_folds)"
        )
    X_out = _check_x(X)
    return X_out, classes, codes.astype(np.int64)


def _show(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _check_x(X: Any) -> Any:
    if isinstance(X, list | tuple) or getattr(getattr(X, "dtype", None), "kind", "") == "O":
        arr = np.asarray(X, dtype=object)
        if arr.ndim == 1:  # texts, for the "text" checker
            return arr
    if hasattr(X, "tocsr"):  # scipy sparse
        data = X.tocsr()
        if not np.isfinite(data.data).all():
            raise InvalidInput(_nonfinite_message(data.data))
        return data
    try:
        arr = np.asarray(X, dtype=np.float64 if getattr(X, "dtype", None) != np.float32 else np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"X must be numeric features (N, D) or a list of texts; it could not be read as numbers: {exc}"
        ) from exc
    if arr.ndim != 2:
        raise InvalidInput(f"X must be a 2-D array of features (N, D); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInput(_nonfinite_message(arr))
    return arr


def _nonfinite_message(arr: np.ndarray) -> str:
    nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    rows: list[int] = []
    if arr.ndim == 2:
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))[:5].tolist()
    where = f" (rows {', '.join(map(str, rows))}, ...)" if len(rows) else ""
    return (
        f"X has {nan} NaN and {inf} infinite values{where}; impute or drop them before cleaning "
        "(for example sklearn.impute.SimpleImputer)"
    )


def seed_of(random_state: int | None) -> int:
    """The integer seed behind ``random_state``: the value itself, or a fresh one from the operating system for
    ``None`` (as in scikit-learn, each fit then differs)."""
    if random_state is None:
        entropy: int = np.random.SeedSequence().entropy  # type: ignore[assignment]  # an int when drawn
        return entropy % 2**32
    return int(random_state)


def stratified_folds(codes: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number 0..n_folds-1 per example, every class spread evenly over the folds (a random permutation)."""
    folds = np.empty(len(codes), dtype=np.int64)
    order = rng.permutation(len(codes))
    # stable sort by class keeps the random order inside each class; dealing round-robin balances the folds
    by_class = order[np.argsort(codes[order], kind="stable")]
    start = rng.integers(n_folds)
    folds[by_class] = (np.arange(len(codes)) + start) % n_folds
    return folds


def _fit_predict(
    checker: Any, X: Any, codes: np.ndarray, train: np.ndarray, held: np.ndarray, n_classes: int, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit on ``train``; top-k log-probs on ``held``. Runs in a worker process with BLAS/OpenMP on one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        try:
            checker.fit(X[train], codes[train])
        except ValueError as exc:
            # check_input found a word in the whole set, but a training part can still hold none of them
            if not str(exc).startswith("empty vocabulary"):
                raise
            from aiforge.clean.checkers import NO_WORD

            raise InvalidInput(
                f"checker 'text' found no word in the {len(train)} training texts of one split ({NO_WORD}); too "
                "few texts hold words to judge the labels: add texts with words, or use fewer folds"
            ) from exc
        known = np.asarray(checker.classes_, dtype=np.int64)
        tops, logps, floors = [], [], []
        for start in range(0, len(held), PREDICT_CHUNK):
            part = held[start : start + PREDICT_CHUNK]
            proba = np.full((len(part), n_classes), 0.0, dtype=np.float32)
            proba[:, known] = checker.predict_proba(X[part])
            top, logp, floor = _top_k(proba, top_k)
            tops.append(top)
            logps.append(logp)
            floors.append(floor)
    return held, np.concatenate(tops), np.concatenate(logps), np.concatenate(floors)


def _top_k(proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    proba = np.maximum(proba, MIN_PROB)
    proba /= proba.sum(axis=1, keepdims=True)
    n_classes = proba.shape[1]
    if k >= n_classes:
        top = np.broadcast_to(np.arange(n_classes, dtype=np.int32), proba.shape).copy()
        return top, np.log(proba).astype(np.float32), np.zeros(len(proba), dtype=np.float32)
    top = np.argpartition(-proba, k - 1, axis=1)[:, :k].astype(np.int32)
    kept = np.take_along_axis(proba, top, axis=1)
    rest = np.maximum(1.0 - kept.sum(axis=1), MIN_PROB * (n_classes - k)) / (n_classes - k)
    return top, np.log(kept).astype(np.float32), np.log(rest).astype(np.float32)


def fit_predict_splits(
    X: Any,
    codes: np.ndarray,
    n_classes: int,
    checker: Any,
    splits: list[list[tuple[np.ndarray, np.ndarray]]],
    *,
    seed: int,
    n_jobs: int | None,
    top_k: int,
    engine: Engine | None = None,
) -> list[Holdout]:
    """Fit one checker per (train, held-out) split, in parallel processes; one :class:`Holdout` per repeat.

    ``splits[r]`` are the splits of repeat ``r``; their held-out parts must not overlap. Each checker is seeded
    from ``seed``, the repeat and the fold, so results do not depend on ``n_jobs`` or the engine. ``engine``: a
    :class:`~aiforge.engines.LocalEngine` (the default: joblib processes on this machine) or a
    :class:`~aiforge.engines.SparkEngine` (one Spark task per checker; ``X`` is broadcast).
    """
    from aiforge.clean.checkers import make_checker

    specs = []
    for r, repeat in enumerate(splits):
        for f, (train, held) in enumerate(repeat):
            estimator = make_checker(checker, random_state=int(seed * 7919 + r * 101 + f) % (2**31 - 1))
            specs.append((estimator, train, held))
    engine = engine if engine is not None else LocalEngine()
    if isinstance(engine, SparkEngine):
        results = _run_spark(specs, X, codes, n_classes, top_k, engine.master)
    elif not isinstance(engine, LocalEngine):
        raise InvalidInput(f"label cleaning trains its checkers on the local or the spark engine; got {engine!r}")
    else:
        from joblib import Parallel, delayed

        tasks = [delayed(_fit_predict)(est, X, codes, train, held, n_classes, top_k) for est, train, held in specs]
        results = Parallel(n_jobs=n_jobs, backend="loky")(tasks)
    out, i = [], 0
    for repeat in splits:
        parts = results[i : i + len(repeat)]
        i += len(repeat)
        out.append(
            Holdout(
                rows=np.concatenate([p[0] for p in parts]),
                top=np.concatenate([p[1] for p in parts]),
                logp=np.concatenate([p[2] for p in parts]),
                floor=np.concatenate([p[3] for p in parts]),
            )
        )
    return out


def _run_spark(
    specs: list[tuple[Any, np.ndarray, np.ndarray]],
    X: Any,
    codes: np.ndarray,
    n_classes: int,
    top_k: int,
    master: str | None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """One Spark task per checker; results come back in the order of ``specs``."""
    import os
    import sys

    from aiforge.engines.spark import get_session

    context = get_session(master).sparkContext
    if not os.environ.get("PYSPARK_PYTHON") and str(context.master).startswith("local"):
        context.pythonExec = sys.executable  # local workers must run the interpreter that has aiforge
    shared = context.broadcast((X, codes))

    def run(item: tuple[int, tuple[Any, np.ndarray, np.ndarray]]) -> tuple[int, Any]:
        index, (estimator, train, held) = item
        data, labels = shared.value
        return index, _fit_predict(estimator, data, labels, train, held, n_classes, top_k)

    try:
        pairs = context.parallelize(list(enumerate(specs)), numSlices=len(specs)).map(run).collect()
    finally:
        shared.unpersist()
    return [result for _, result in sorted(pairs, key=lambda pair: pair[0])]


def dense_loglik(holdouts: list[Holdout], positions: list[np.ndarray], rows: slice, n_classes: int) -> np.ndarray:
    """Log-probs (n, R, K) of the rows ``rows`` from each repeat, rebuilt from top-k + floor (float32).

    ``positions[r][i]`` is where row ``i`` sits in ``holdouts[r]`` (every row is held out once per repeat).
    """
    idx = np.arange(rows.start, rows.stop)
    out = np.empty((len(idx), len(holdouts), n_classes), dtype=np.float32)
    for r, (hold, pos) in enumerate(zip(holdouts, positions, strict=True)):
        where = pos[idx]
        out[:, r, :] = hold.floor[where][:, None]
        np.put_along_axis(out[:, r, :], hold.top[where].astype(np.int64), hold.logp[where], axis=1)
    return out


def positions_of(holdouts: list[Holdout], n_rows: int) -> list[np.ndarray]:
    """For each repeat, the position of every row in that repeat's held-out arrays."""
    positions = []
    for hold in holdouts:
        pos = np.empty(n_rows, dtype=np.int64)
        pos[hold.rows] = np.arange(len(hold.rows))
        positions.append(pos)
    return positions
