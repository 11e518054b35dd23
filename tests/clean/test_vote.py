"""SplitTrainCheck and MultiSplitVote; the input checks all cleaners share."""

from __future__ import annotations

import numpy as np
import pytest

from aiforge.clean import PICO, MultiSplitVote, SplitTrainCheck
from aiforge.errors import InvalidInput, NotFittedError


def _noisy(y: np.ndarray) -> np.ndarray:
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    return noisy


def test_split_train_check_judges_only_held_out_rows(blobs):
    X, y = blobs
    noisy = _noisy(y)
    stc = SplitTrainCheck(random_state=0).fit(X, noisy)
    assert stc.checked_.sum() == 150  # half of each class of 100
    changed = stc.corrected_labels_ != noisy
    assert not changed[~stc.checked_].any()
    flipped = np.flatnonzero(noisy != y)
    held_flips = flipped[stc.checked_[flipped]]
    assert (stc.corrected_labels_[held_flips] == y[held_flips]).mean() >= 0.9
    np.testing.assert_array_equal(
        stc.label_posterior_[~stc.checked_], np.eye(3, dtype=np.float32)[noisy[~stc.checked_]]
    )
    assert len(stc.history_) == 2 and stc.n_iter_ == 1


def test_multi_split_vote_fixes_the_flips(blobs):
    X, y = blobs
    noisy = _noisy(y)
    vote = MultiSplitVote(n_repeats=3, random_state=0).fit(X, noisy)
    assert (vote.corrected_labels_ == y).mean() >= 0.98
    # vote shares: multiples of 1/3 summing to 1
    np.testing.assert_allclose(vote.label_posterior_.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(vote.label_posterior_ * 3, np.round(vote.label_posterior_ * 3), atol=1e-5)
    expected = np.zeros((3, 3))
    np.add.at(expected, (noisy, vote.corrected_labels_), 1)
    np.testing.assert_allclose(vote.transition_, expected / expected.sum(axis=1, keepdims=True))


def test_vote_is_reproducible_across_n_jobs(blobs):
    X, y = blobs
    noisy = _noisy(y)
    one = MultiSplitVote(n_repeats=2, random_state=1, n_jobs=1).fit(X, noisy)
    two = MultiSplitVote(n_repeats=2, random_state=1, n_jobs=2).fit(X, noisy)
    np.testing.assert_array_equal(one.label_posterior_, two.label_posterior_)
    np.testing.assert_array_equal(one.corrected_labels_, two.corrected_labels_)


@pytest.mark.parametrize("cls", [SplitTrainCheck, MultiSplitVote])
def test_seed_still_works_for_one_release(cls, blobs):
    X, y = blobs
    noisy = _noisy(y)
    new = cls(random_state=4).fit(X, noisy)
    with pytest.warns(FutureWarning, match=rf"^{cls.__name__}: seed= is deprecated .*; use random_state=4 instead$"):
        old = cls(seed=4).fit(X, noisy)
    np.testing.assert_array_equal(old.label_posterior_, new.label_posterior_)


def test_declared_constraints_name_the_parameter(blobs):
    X, y = blobs
    with pytest.raises(InvalidInput, match=r"^held_out must be a number with 0 < held_out < 1; got 1$"):
        SplitTrainCheck(held_out=1).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^min_votes must be a number with 0 < min_votes < 1; got nan$"):
        MultiSplitVote(min_votes=float("nan")).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^n_repeats must be a positive integer; got 2.0$"):
        MultiSplitVote(n_repeats=2.0).fit(X, y)


@pytest.mark.parametrize("cls", [SplitTrainCheck, MultiSplitVote])
def test_not_fitted(cls):
    with pytest.raises(NotFittedError, match=rf"this {cls.__name__} is not fitted yet"):
        _ = cls().label_posterior_


@pytest.mark.parametrize("cls", [SplitTrainCheck, MultiSplitVote, PICO])
def test_one_class_only(cls):
    with pytest.raises(InvalidInput, match=r"^y has only one class \(1\); "):
        cls().fit(np.zeros((10, 2)), np.ones(10, dtype=int))


def test_one_class_message():
    with pytest.raises(
        InvalidInput, match=r"^y has only one class \('a'\); label cleaning needs at least two classes to compare$"
    ):
        PICO().fit(np.zeros((10, 2)), np.array(["a"] * 10))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(blobs, bad):
    X, y = blobs
    X = X.copy()
    X[7, 1] = bad
    nan, inf = (1, 0) if np.isnan(bad) else (0, 1)
    with pytest.raises(
        InvalidInput,
        match=rf"^X has {nan} NaN and {inf} infinite values \(rows 7, \.\.\.\); impute or drop them before cleaning",
    ):
        MultiSplitVote().fit(X, y)


def test_different_lengths(blobs):
    X, y = blobs
    with pytest.raises(
        InvalidInput,
        match=r"^X and y have different lengths: X has 300 rows, y has 299 labels; pass one label per row$",
    ):
        PICO().fit(X, y[:-1])


def test_class_too_small_for_the_split(blobs):
    X, y = blobs
    y = y.copy()
    y[:3] = 7  # class 7 has 3 examples; 4 folds need 4
    with pytest.raises(
        InvalidInput,
        match=r"^classes with fewer than 4 examples: 7 \(3\); "
        r"PICO with n_folds=4 needs at least 4 examples of every class: drop or merge the rare classes, or use fewer "
        r"folds \(n_folds\)$",
    ):
        PICO().fit(X, y)
    PICO(n_folds=3, n_iter=1).fit(X, y)  # three folds are enough


def test_unknown_checker(blobs):
    X, y = blobs
    with pytest.raises(
        InvalidInput,
        match=r"^unknown checker 'svm'; use one of: knn, logreg, forest, hgb, nb, ensemble, text, or pass a "
        r"scikit-learn classifier with predict_proba$",
    ):
        PICO(checker="svm").fit(X, y)


def test_features_not_two_dimensional():
    with pytest.raises(InvalidInput, match=r"^X must be a 2-D array of features \(N, D\); got shape \(10,\)$"):
        PICO().fit(np.arange(10.0), np.arange(10) % 2)
