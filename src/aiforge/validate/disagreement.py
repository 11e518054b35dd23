"""Prediction disagreement between a production model and a candidate, with exact binomial confidence bounds.

A gate that blocks a candidate because 3 of 40 rows flipped would block on noise; every proportion here carries its
Clopper-Pearson interval so a gate can block on the interval's lower bound instead (evidence, not chance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from aiforge.errors import InvalidInput

__all__ = ["Disagreement", "Rate", "binomial_interval", "churn_baseline", "compare_predictions"]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidInput(f"confidence must be strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")


def _intervals(counts: np.ndarray, totals: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Clopper-Pearson bounds for ``counts`` successes out of ``totals`` trials (totals >= 1)."""
    counts = np.asarray(counts, dtype=float)
    totals = np.asarray(totals, dtype=float)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        # beta.ppf is nan when a shape parameter is 0: those are exactly the bounds pinned at 0 and 1
        low = stats.beta.ppf(alpha / 2, counts, totals - counts + 1)
        high = stats.beta.ppf(1 - alpha / 2, counts + 1, totals - counts)
    low = np.where(counts == 0, 0.0, low)
    high = np.where(counts == totals, 1.0, high)
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def binomial_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion.

    Parameters
    ----------
    successes : int
        Number of successes, ``0 <= successes <= trials``.
    trials : int
        Number of trials, at least 1.
    confidence : float, default 0.95
        Coverage of the interval, strictly between 0 and 1.

    Returns
    -------
    (low, high) : tuple of float
        ``low`` is 0 at 0 successes and ``high`` is 1 when every trial succeeded.

    Raises
    ------
    InvalidInput
        If ``trials < 1``, ``successes`` is outside ``[0, trials]`` or ``confidence`` is outside (0, 1).

    Examples
    --------
    >>> low, high = binomial_interval(5, 10)
    >>> round(low, 4), round(high, 4)
    (0.1871, 0.8129)
    >>> binomial_interval(0, 10)[0]
    0.0
    """
    _check_confidence(confidence)
    if trials < 1:
        raise InvalidInput(f"trials must be at least 1, got {trials}")
    if not 0 <= successes <= trials:
        raise InvalidInput(f"successes must be between 0 and trials ({trials}), got {successes}")
    low, high = _intervals(np.array([successes]), np.array([trials]), confidence)
    return float(low[0]), float(high[0])


@dataclass(frozen=True)
class Rate:
    """A proportion ``count / total`` with its exact confidence interval ``[low, high]``."""

    count: int
    total: int
    rate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        """The rate as a JSON-ready dict."""
        return {"count": self.count, "total": self.total, "rate": self.rate, "low": self.low, "high": self.high}


def _rates(counts: np.ndarray, totals: np.ndarray, confidence: float) -> list[Rate]:
    low, high = _intervals(counts, totals, confidence)
    return [
        Rate(count=int(c), total=int(t), rate=float(c) / float(t), low=float(lo), high=float(hi))
        for c, t, lo, hi in zip(counts, totals, low, high, strict=True)
    ]


def _rate(count: int, total: int, confidence: float) -> Rate:
    return _rates(np.array([count]), np.array([total]), confidence)[0]


@dataclass(frozen=True)
class Disagreement:
    """How a candidate's predictions differ from production's on the same rows (see :func:`compare_predictions`).

    Attributes
    ----------
    n : int
        Number of rows compared.
    flips : Rate
        Rows whose two predictions differ (the Hamming distance over ``n``).
    negative_flips, positive_flips : Rate or None
        Right before and wrong now / wrong before and right now; None without true labels or for regression.
    accuracy : (Rate, Rate) or None
        Production's and the candidate's accuracy; None without true labels or for regression.
    per_class : dict of str to Rate
        Flip rate among the rows of each class (the true label, or production's label without truth); empty for
        regression.
    per_slice : dict of str to dict of str to Rate
        Column -> value -> flip rate among the rows holding that value.
    mean_abs_change : float or None
        Regression only: mean ``|candidate - production|``.
    """

    n: int
    flips: Rate
    negative_flips: Rate | None
    positive_flips: Rate | None
    accuracy: tuple[Rate, Rate] | None
    per_class: dict[str, Rate]
    per_slice: dict[str, dict[str, Rate]]
    mean_abs_change: float | None

    def summary(self) -> dict[str, Any]:
        """All the numbers as a JSON-ready dict (rates as ``{count, total, rate, low, high}``)."""
        return {
            "n": self.n,
            "flips": self.flips.as_dict(),
            "negative_flips": None if self.negative_flips is None else self.negative_flips.as_dict(),
            "positive_flips": None if self.positive_flips is None else self.positive_flips.as_dict(),
            "accuracy": None
            if self.accuracy is None
            else {"production": self.accuracy[0].as_dict(), "candidate": self.accuracy[1].as_dict()},
            "per_class": {label: rate.as_dict() for label, rate in self.per_class.items()},
            "per_slice": {
                column: {value: rate.as_dict() for value, rate in values.items()}
                for column, values in self.per_slice.items()
            },
            "mean_abs_change": self.mean_abs_change,
        }

    def worst_slices(self, k: int = 5, min_rows: int = 20) -> list[dict[str, Any]]:
        """The ``k`` slices of at least ``min_rows`` rows whose flip rate has the highest lower bound.

        Ranking by the lower bound puts a slice where many rows flipped ahead of a tiny slice where 1 of 2 did.

        Returns
        -------
        list of dict
            ``{"column", "value", "count", "total", "rate", "low", "high"}``, worst first.
        """
        rows = [
            {"column": column, "value": value, **rate.as_dict()}
            for column, values in self.per_slice.items()
            for value, rate in values.items()
            if rate.total >= min_rows
        ]
        rows.sort(key=lambda row: (-row["low"], -row["rate"], row["column"], row["value"]))
        return rows[: max(k, 0)]


# NaN is the one value unequal to itself
_is_missing = np.frompyfunc(lambda value: value is None or value != value, 1, 1)


def _as_1d(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInput(f"{name} must be a 1-D array of predictions, got shape {array.shape}")
    if array.size == 0:
        raise InvalidInput(f"{name} is empty: compare predictions on at least one row")
    missing = None
    if array.dtype.kind == "f":
        missing = np.isnan(array)
    elif array.dtype.kind == "O":
        missing = _is_missing(array).astype(bool)
    elif array.dtype.kind in "US" and not isinstance(values, np.ndarray):
        # numpy turns ["a", nan] into the text "nan": look at the values as given
        missing = _is_missing(np.asarray(values, dtype=object)).astype(bool)
    if missing is not None and missing.any():
        raise InvalidInput(
            f"{name} holds {int(missing.sum())} missing value(s) (NaN or None), first at rows "
            f"{np.flatnonzero(missing)[:5].tolist()}: drop those rows or fill them before comparing"
        )
    return array


def _is_text(array: np.ndarray) -> bool:
    return array.dtype.kind in "USO"


def _keys(array: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct values of ``array`` as strings, and each row's index into them."""
    if array.dtype.kind == "O":
        array = array.astype(str)  # mixed Python objects do not sort; their text does
    values, inverse = np.unique(array, return_inverse=True)
    return [str(value) for value in values.tolist()], inverse.reshape(-1)


def _grouped(flipped: np.ndarray, groups: np.ndarray, confidence: float) -> dict[str, Rate]:
    keys, inverse = _keys(groups)
    counts = np.bincount(inverse, weights=flipped, minlength=len(keys)).round().astype(int)
    totals = np.bincount(inverse, minlength=len(keys))
    return dict(zip(keys, _rates(counts, totals, confidence), strict=True))


def compare_predictions(
    production: Any,
    candidate: Any,
    *,
    y_true: Any = None,
    slices: Mapping[str, Sequence[Any]] | None = None,
    confidence: float = 0.95,
) -> Disagreement:
    """Compare two models' predictions on the same rows: flips, negative flips, per class and per slice.

    Parameters
    ----------
    production, candidate : array-like of shape (N,)
        Predicted labels (int or str) of the model in production and of the candidate, row for row. Float arrays
        are regression outputs: a flip is any inequality and ``mean_abs_change`` is set.
    y_true : array-like of shape (N,), optional
        True labels: enables negative/positive flips and accuracy, and groups ``per_class`` by truth.
    slices : mapping of str to sequence of length N, optional
        Column name -> that column's value on each row (e.g. from the evaluation snapshot).
    confidence : float, default 0.95
        Coverage of every exact (Clopper-Pearson) interval.

    Returns
    -------
    Disagreement

    Raises
    ------
    InvalidInput
        Lengths differ, input is empty or not 1-D, labels hold NaN, a slice has the wrong length, text labels are
        compared with numbers, or ``confidence`` is outside (0, 1).

    Examples
    --------
    >>> d = compare_predictions([0, 1, 1, 0], [0, 1, 0, 0], y_true=[0, 1, 1, 1])
    >>> d.flips.count, d.flips.rate
    (1, 0.25)
    >>> d.negative_flips.count, d.positive_flips.count
    (1, 0)
    >>> {label: rate.rate for label, rate in d.per_class.items()}
    {'0': 0.0, '1': 0.3333333333333333}
    """
    _check_confidence(confidence)
    before = _as_1d(production, "production")
    after = _as_1d(candidate, "candidate")
    if before.shape != after.shape:
        raise InvalidInput(
            f"production has {before.size} predictions but candidate has {after.size}: "
            "predict both on the same rows"
        )
    if _is_text(before) != _is_text(after):
        raise InvalidInput(
            f"production predictions are {before.dtype} but candidate predictions are {after.dtype}: "
            "text labels cannot be compared with numbers; encode both the same way"
        )
    n = int(before.size)
    regression = before.dtype.kind == "f" or after.dtype.kind == "f"
    flipped = before != after

    truth = None
    if y_true is not None:
        truth = _as_1d(y_true, "y_true")
        if truth.size != n:
            raise InvalidInput(f"y_true has {truth.size} labels but the predictions have {n} rows: pass one per row")

    columns: dict[str, np.ndarray] = {}
    for column, values in (slices or {}).items():
        array = np.asarray(values)
        if array.ndim != 1 or array.size != n:
            raise InvalidInput(
                f"slice column {column!r} has {array.size} values (shape {array.shape}) but the predictions have "
                f"{n} rows: pass one value per row"
            )
        columns[column] = array

    negative = positive = None
    accuracy = None
    per_class: dict[str, Rate] = {}
    if not regression:
        if truth is not None:
            right_before = before == truth
            right_after = after == truth
            negative = _rate(int(np.sum(right_before & ~right_after)), n, confidence)
            positive = _rate(int(np.sum(~right_before & right_after)), n, confidence)
            accuracy = (
                _rate(int(right_before.sum()), n, confidence),
                _rate(int(right_after.sum()), n, confidence),
            )
        per_class = _grouped(flipped, truth if truth is not None else before, confidence)

    mean_abs_change = None
    if regression:
        mean_abs_change = float(np.mean(np.abs(after.astype(float) - before.astype(float))))

    return Disagreement(
        n=n,
        flips=_rate(int(flipped.sum()), n, confidence),
        negative_flips=negative,
        positive_flips=positive,
        accuracy=accuracy,
        per_class=per_class,
        per_slice={column: _grouped(flipped, array, confidence) for column, array in columns.items()},
        mean_abs_change=mean_abs_change,
    )


def churn_baseline(predictions: Sequence[Any], confidence: float = 0.95) -> Rate:
    """Flip rate between retrains of the same model (different seeds) on the same rows, pooled over all pairs.

    This is what retraining alone changes: set a gate's flip threshold relative to it, not to zero. The pairs share
    rows, so they are not independent and the pooled interval is narrower than the truth; treat it as a guide.

    Parameters
    ----------
    predictions : sequence of array-like of shape (N,)
        At least two runs' predictions on the same N rows.
    confidence : float, default 0.95
        Coverage of the exact interval.

    Returns
    -------
    Rate
        Flipped row-pairs over ``N * R * (R - 1) / 2`` for R runs.

    Raises
    ------
    InvalidInput
        Fewer than two runs, runs of different lengths, empty runs, NaN, or ``confidence`` outside (0, 1).

    Examples
    --------
    >>> churn_baseline([[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0]]).count
    2
    """
    _check_confidence(confidence)
    if len(predictions) < 2:
        raise InvalidInput(f"churn_baseline needs predictions of at least 2 retrains, got {len(predictions)}")
    runs = [_as_1d(run, f"predictions[{i}]") for i, run in enumerate(predictions)]
    sizes = sorted({run.size for run in runs})
    if len(sizes) > 1:
        raise InvalidInput(f"the retrains predicted different numbers of rows ({sizes}): predict all on the same rows")
    stacked = np.stack(runs)
    first, second = np.triu_indices(len(runs), k=1)
    flips = int(np.sum(stacked[first] != stacked[second]))
    return _rate(flips, int(first.size) * int(sizes[0]), confidence)
