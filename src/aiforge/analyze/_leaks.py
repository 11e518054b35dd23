"""Label leaks: columns that predict the label alone on held-out rows, so they may be derived from it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aiforge.analyze._issues import encode
from aiforge.analyze._stats import numeric_values, sort_values
from aiforge.analyze._values import normalise

__all__ = ["leak_scores"]

LEAK_ACCURACY = 0.95
LEAK_GAIN = 0.9


def leak_scores(
    table: pa.Table, columns: list[dict[str, Any]], label: dict[str, Any], seed: int
) -> dict[str, Any]:
    """How well each column alone predicts the label on held-out rows of the sample.

    Half the rows (seeded) fit a lookup from the column's value (numbers: up to 100 quantile bins) to the
    majority
    class (classification) or mean (regression); the other half scores it. ID-like columns never repeat across
    the
    halves, so they fall back to the baseline and do not count as leaks.
    """
    y = table.column(label["name"])
    keep = pc.is_valid(y).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(keep)
    if rows.size < 4:
        return {}
    order = np.random.default_rng(seed).permutation(rows)
    train, test = order[: order.size // 2], order[order.size // 2 :]
    classify = label["task"] == "classification"
    target = encode(y)[0] if classify else np.asarray(numeric_values(y.fill_null(0)), dtype=np.float64)
    if not classify:  # NaN/inf labels cannot be scored
        finite = np.isfinite(target)
        train, test = train[finite[train]], test[finite[test]]
        if train.size < 2 or test.size < 2:
            return {}
    # The same halves as masks: a mask reads the rows in order, where the permutation's indices jump about memory.
    # Bin edges (quantiles) and the classification figures (integer counts) do not depend on the rows' order; the
    # regression sums do, so regression keeps gathering in the permutation's order.
    in_train = np.zeros(len(y), dtype=bool)
    in_train[train] = True
    fit, score_on = (in_train, _mask(test, len(y))) if classify else (train, test)
    scores: dict[str, Any] = {}
    for stats in columns:
        if stats["name"] == label["name"] or stats["kind"] == "other":
            continue
        x = _feature_codes(table.column(stats["name"]), stats, in_train)
        scores[stats["name"]] = _score(x, target, fit, score_on, classify)
    return scores


def _mask(rows: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    return mask


def _feature_codes(column: pa.ChunkedArray, stats: dict[str, Any], train: np.ndarray) -> np.ndarray:
    """Integer codes of a column's values: quantile bins (fitted on ``train``, indices or a mask) for numbers and
    times with over 100 distinct values, else one code per value."""
    if stats["kind"] in ("numeric", "datetime") and stats["distinct"]["value"] > 100:
        normalised = normalise(column)
        if pa.types.is_temporal(normalised.type):
            normalised = (
                normalised.cast(pa.int64())
                if not pa.types.is_date(normalised.type)
                else normalised.cast(pa.int32())
            )
        values = np.asarray(normalised.to_numpy(zero_copy_only=False), dtype=np.float64)
        fitted = values[train]
        finite = fitted[np.isfinite(fitted)]
        if finite.size:
            bins = min(100, max(2, finite.size // 20))
            # sorted first: the quantiles are the same, and ~100 of them cost one sort instead of ~200 partitions
            edges = np.unique(np.quantile(sort_values(finite), np.linspace(0, 1, bins + 1)))[1:-1]
            codes = np.searchsorted(edges, values, side="right")
            return np.where(np.isfinite(values), codes, len(edges) + 1)
    return encode(column)[0]


def _score(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, classify: bool
) -> dict[str, Any]:
    """``train``/``test``: row indices, or boolean masks (then only for classification, whose counts do not depend
    on the rows' order)."""
    size = int(x.max()) + 1
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]  # each gathered once
    counts = np.bincount(x_train, minlength=size)
    seen = counts > 0
    if classify:
        k = int(y.max()) + 1
        table = np.bincount(x_train * k + y_train, minlength=size * k).reshape(size, k)
        fallback = int(np.bincount(y_train, minlength=k).argmax())
        predict = np.where(seen, table.argmax(axis=1), fallback)
        score = float((predict[x_test] == y_test).mean())
        baseline = float((y_test == fallback).mean())
        gain = (score - baseline) / (1 - baseline) if baseline < 1 else 0.0
        leak = score >= LEAK_ACCURACY and gain >= LEAK_GAIN
        return {"metric": "accuracy", "score": score, "baseline": baseline, "leak": bool(leak)}
    sums = np.bincount(x_train, weights=y_train, minlength=size)
    fallback_mean = float(y_train.mean())
    predict = np.where(seen, sums / np.maximum(counts, 1), fallback_mean)
    residual = float(((y_test - predict[x_test]) ** 2).sum())
    total = float(((y_test - y_test.mean()) ** 2).sum())
    r2 = 1 - residual / total if total > 0 else 0.0
    return {"metric": "R²", "score": r2, "baseline": 0.0, "leak": bool(r2 >= LEAK_ACCURACY)}
