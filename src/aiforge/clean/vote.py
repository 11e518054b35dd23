"""The simpler label checks PICO grew from: one train/held-out split, and a majority vote over many splits."""

from __future__ import annotations

from typing import Any

import numpy as np

from aiforge.clean import _engine
from aiforge.clean._base import LabelCleaner

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
    seed : int, default 0

    Attributes
    ----------
    classes_, corrected_labels_, label_posterior_ (N, K), transition_ (K, K), history_, issues_
        As in :class:`PICO`; ``label_posterior_`` is the checker's probabilities on held-out rows and the given
        label (one-hot) elsewhere; ``transition_`` counts given -> corrected.
    checked_ : ndarray of bool (N,)
        The held-out rows, the only ones judged.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> SplitTrainCheck(seed=0).fit(X, y).checked_.mean().round(1)
    np.float64(0.5)
    """

    def __init__(self, *, checker: Any = None, held_out: float = 0.5, threshold: float = 0.5, seed: int = 0) -> None:
        self.checker = checker
        self.held_out = held_out
        self.threshold = threshold
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
        held_out = _engine.check_fraction("held_out", self.held_out, closed=False)
        threshold = _engine.check_fraction("threshold", self.threshold)
        seed = _engine.check_int("seed", self.seed, 0)
        from aiforge.clean.checkers import make_checker

        make_checker(self.checker)
        X, classes, given = _engine.check_xy(X, y, min_per_class=2, need="a train/held-out split")
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
        self._fitted = True
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
    seed : int, default 0
    n_jobs : int, default 1

    Attributes
    ----------
    classes_, corrected_labels_, label_posterior_ (N, K), transition_ (K, K), history_, issues_
        As in :class:`PICO`; ``label_posterior_`` holds the vote shares.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> vote = MultiSplitVote(n_repeats=3, seed=0).fit(X, y)
    >>> vote.label_posterior_.shape
    (1797, 10)
    """

    def __init__(
        self,
        *,
        checker: Any = None,
        n_folds: int = 4,
        n_repeats: int = 5,
        min_votes: float = 0.5,
        seed: int = 0,
        n_jobs: int | None = 1,
    ) -> None:
        self.checker = checker
        self.n_folds = n_folds
        self.n_repeats = n_repeats
        self.min_votes = min_votes
        self.seed = seed
        self.n_jobs = n_jobs

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
        n_folds = _engine.check_int("n_folds", self.n_folds, 2)
        n_repeats = _engine.check_int("n_repeats", self.n_repeats, 1)
        min_votes = _engine.check_fraction("min_votes", self.min_votes, closed=False)
        seed = _engine.check_int("seed", self.seed, 0)
        from aiforge.clean.checkers import make_checker

        make_checker(self.checker)
        X, classes, given = _engine.check_xy(X, y, min_per_class=n_folds, need=f"MultiSplitVote with n_folds={n_folds}")
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
        self._fitted = True
        return self
