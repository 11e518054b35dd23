"""The simpler label checks PICO grew from: one train/held-out split, and a majority vote over many splits."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from aiforge.clean import _engine
from aiforge.clean._base import LabelCleaner
from aiforge.clean.checkers import CHECKER, SEEDS, check_input, make_checker
from aiforge.engines import LocalEngine
from aiforge.validation import DEPRECATED, Interval

__all__ = ["MultiSplitVote", "SplitTrainCheck"]


def _empirical_transition(given: np.ndarray, final: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (given, final), 1.0)
    counts[counts.sum(axis=1) == 0] = np.eye(n_classes)[counts.sum(axis=1) == 0]
    return counts / counts.sum(axis=1, keepdims=True)


class SplitTrainCheck(LabelCleaner):
    """One train/held-out split: a checker trained on one part flags the held-out labels it disagrees with.

    Only held-out examples are judged; a flagged label becomes the checker's prediction when its probability is at
    least ``threshold``.

    Parameters
    ----------
    checker : str or scikit-learn classifier, optional
        See :func:`aiforge.clean.make_checker` (default ``"knn"``).
    held_out : float, default 0.5
        Fraction of each class held out (0 < held_out < 1).
    threshold : float, default 0.5
    random_state : int or None, default 0
        Seeds the split and the checker: the same value gives the same result. ``None`` draws a fresh seed on
        every fit.
    seed : int, optional
        The old name of ``random_state``, accepted until the next release with a ``FutureWarning``.

    Attributes
    ----------
    classes_, corrected_labels_, label_posterior_ (N, K), transition_ (K, K), history_, issues_
        As in :class:`PICO`; ``label_posterior_`` is the checker's probabilities on held-out rows and the given
        label (one-hot) elsewhere; ``transition_`` counts given -> corrected.
    checked_ : ndarray of bool (N,)
        The held-out rows, the only ones judged.
    engine_ : Engine
        Always :class:`~aiforge.engines.LocalEngine`: the one checker trains in this process.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> SplitTrainCheck(random_state=0).fit(X, y).checked_.mean().round(1)
    np.float64(0.5)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "checker": [*CHECKER],
        "held_out": [Interval(Real, 0, 1, closed="neither")],
        "threshold": [Interval(Real, 0, 1, closed="right")],
        **SEEDS,
    }

    def __init__(
        self,
        *,
        checker: Any = None,
        held_out: float = 0.5,
        threshold: float = 0.5,
        random_state: int | None = 0,
        seed: int | str | None = DEPRECATED,
    ) -> None:
        self.checker = checker
        self.held_out = held_out
        self.threshold = threshold
        self.random_state = random_state
        self.seed = seed

    def fit(self, X: Any, y: Any) -> SplitTrainCheck:
        """Fit one checker on the training part and judge the held-out part.

        Parameters
        ----------
        X : array-like (N, D), sparse matrix or list of N texts
        y : array-like (N,), at least 2 examples of every class

        Returns
        -------
        self
        """
        self._validate_params()
        held_out, threshold = float(self.held_out), float(self.threshold)
        seed = self._seed()
        make_checker(self.checker)
        X, classes, given = _engine.check_xy(X, y, min_per_class=2, need="a train/held-out split")
        check_input(self.checker, X)
        n, k = len(given), len(classes)
        rng = np.random.default_rng(seed)
        held = np.zeros(n, dtype=bool)
        for c in range(k):
            members = rng.permutation(np.flatnonzero(given == c))
            take = min(max(1, round(len(members) * held_out)), len(members) - 1)
            held[members[:take]] = True
        (hold,) = _engine.fit_predict_splits(
            X,
            given,
            k,
            self.checker,
            [[(np.flatnonzero(~held), np.flatnonzero(held))]],
            seed=seed,
            n_jobs=1,
            top_k=k,
        )
        posterior = np.eye(k, dtype=np.float32)[given]
        posterior[hold.rows] = np.exp(hold.logp)
        best = posterior.argmax(axis=1)
        move = held & (best != given) & (posterior[np.arange(n), best] >= threshold)
        final = np.where(move, best, given)
        self.checked_ = held
        self._finish(
            classes, given, [given, final], move.astype(np.int64), posterior, _empirical_transition(given, final, k)
        )
        self.engine_ = LocalEngine()
        return self


class MultiSplitVote(LabelCleaner):
    """Many random splits, every example held out ``n_repeats`` times; the checkers' majority vote decides.

    Parameters
    ----------
    checker : str or scikit-learn classifier, optional
    n_folds : int, default 4
        Each repeat splits the data into ``n_folds`` class-stratified folds, each held out once.
    n_repeats : int, default 5
        Votes per example.
    min_votes : float, default 0.5
        A label changes to the most voted other class when its share of the votes is above this.
    random_state : int or None, default 0
        Seeds the splits and the checkers: the same value gives the same result, whatever ``n_jobs``. ``None``
        draws a fresh seed on every fit.
    n_jobs : int, default 1
        Processes that fit checkers (joblib loky). ``-1``: all cores.
    seed : int, optional
        The old name of ``random_state``, accepted until the next release with a ``FutureWarning``.

    Attributes
    ----------
    classes_, corrected_labels_, label_posterior_ (N, K), transition_ (K, K), history_, issues_
        As in :class:`PICO`; ``label_posterior_`` holds the vote shares.
    engine_ : Engine
        Always :class:`~aiforge.engines.LocalEngine`: the checkers train in processes on this machine.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> vote = MultiSplitVote(n_repeats=3, random_state=0).fit(X, y)
    >>> vote.label_posterior_.shape
    (1797, 10)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "checker": [*CHECKER],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "n_repeats": [Interval(Integral, 1, None, closed="left")],
        "min_votes": [Interval(Real, 0, 1, closed="neither")],
        **SEEDS,
        "n_jobs": [Interval(Integral, 1, None, closed="left"), Interval(Integral, None, -1, closed="right"), None],
    }

    def __init__(
        self,
        *,
        checker: Any = None,
        n_folds: int = 4,
        n_repeats: int = 5,
        min_votes: float = 0.5,
        random_state: int | None = 0,
        n_jobs: int | None = 1,
        seed: int | str | None = DEPRECATED,
    ) -> None:
        self.checker = checker
        self.n_folds = n_folds
        self.n_repeats = n_repeats
        self.min_votes = min_votes
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.seed = seed

    def fit(self, X: Any, y: Any) -> MultiSplitVote:
        """Fit ``n_folds x n_repeats`` checkers and let them vote on the labels they did not see.

        Parameters
        ----------
        X : array-like (N, D), sparse matrix or list of N texts
        y : array-like (N,), at least ``n_folds`` examples of every class

        Returns
        -------
        self
        """
        self._validate_params()
        n_folds, n_repeats, min_votes = int(self.n_folds), int(self.n_repeats), float(self.min_votes)
        seed = self._seed()
        make_checker(self.checker)
        X, classes, given = _engine.check_xy(X, y, min_per_class=n_folds, need=f"MultiSplitVote with n_folds={n_folds}")
        check_input(self.checker, X)
        n, k = len(given), len(classes)
        rng = np.random.default_rng(seed)
        splits = []
        for _ in range(n_repeats):
            folds = _engine.stratified_folds(given, n_folds, rng)
            splits.append([(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(n_folds)])
        holdouts = _engine.fit_predict_splits(X, given, k, self.checker, splits, seed=seed, n_jobs=self.n_jobs, top_k=1)
        votes = np.zeros((n, k), dtype=np.float32)
        for hold in holdouts:
            np.add.at(votes, (hold.rows, hold.top[:, 0].astype(np.int64)), 1.0)
        votes /= n_repeats
        best = votes.argmax(axis=1)
        move = (best != given) & (votes[np.arange(n), best] > min_votes)
        final = np.where(move, best, given)
        self._finish(
            classes, given, [given, final], move.astype(np.int64), votes, _empirical_transition(given, final, k)
        )
        self.engine_ = LocalEngine()
        return self
