"""PICO: the Bayes combination, the HMM prior and the transition estimate against hand computations; invariants."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator, ClassifierMixin

from aiforge.clean import PICO
from aiforge.clean.pico import (
    bayes_posterior,
    combine_likelihoods,
    estimate_transition,
    hmm_prior,
    initial_transition,
)
from aiforge.engines import LocalEngine, SparkEngine
from aiforge.errors import InvalidInput, NotFittedError
from conftest import flip


def test_combine_likelihoods_is_the_tempered_mean_of_scaled_log_probs():
    # two checkers on one example: (0.6, 0.4) and (0.8, 0.2); classes trained at frequencies (0.5, 0.5)
    logp = np.log(np.array([[[0.6, 0.4], [0.8, 0.2]]]))
    got = combine_likelihoods(logp, np.array([0.5, 0.5]), temperature=0.5)
    hand = np.array([[(np.log(0.6) + np.log(0.8)) / 2 - np.log(0.5), (np.log(0.4) + np.log(0.2)) / 2 - np.log(0.5)]])
    np.testing.assert_allclose(got, hand / 0.5)


def test_hmm_prior_sums_over_the_previous_state():
    transition = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.0, 0.5, 0.5]])
    previous = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    # p(c_t=j) = sum_i T[i, j] p(c_{t-1}=i)
    hand = np.array([[0.5 * 0.7 + 0.5 * 0.1, 0.5 * 0.2 + 0.5 * 0.8, 0.5 * 0.1 + 0.5 * 0.1], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(hmm_prior(previous, transition), hand)


def test_posterior_is_prior_times_likelihood_normalised():
    prior = np.array([[0.9, 0.1], [0.5, 0.5]])
    likelihood = np.array([[0.2, 0.8], [0.25, 0.75]])
    got = bayes_posterior(prior, np.log(likelihood))
    np.testing.assert_allclose(got, [[0.18 / 0.26, 0.08 / 0.26], [0.25, 0.75]])


def test_full_bayes_step_by_hand():
    # given label 0, initial transition stay=0.8 over 2 classes; one checker says (0.2, 0.8), class freq (0.5, 0.5)
    transition = initial_transition(2, 0.8)
    prior = hmm_prior(np.array([[1.0, 0.0]]), transition)
    loglik = combine_likelihoods(np.log(np.array([[[0.2, 0.8]]])), np.array([0.5, 0.5]), 1.0)
    post = bayes_posterior(prior, loglik)
    np.testing.assert_allclose(post, [[0.8 * 0.2 / (0.8 * 0.2 + 0.2 * 0.8), 0.5]])


def test_transition_estimate_on_a_known_history():
    # history of hard labels: 0->0 three times, 0->1 once, 1->1 twice, 2->0 once, 2->2 once
    before = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    after = np.array([0, 0, 0, 1, 1, 1, 0, 2])
    eye = np.eye(3)
    counts = eye[before].T @ eye[after]
    got = estimate_transition(counts, initial_transition(3, 0.8), strength=0.0)
    np.testing.assert_allclose(got, [[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    smoothed = estimate_transition(counts, initial_transition(3, 0.8), strength=2.0)
    np.testing.assert_allclose(smoothed[1], [0.2 / 4, (2 + 1.6) / 4, 0.2 / 4])


def test_initial_transition_is_diagonal_heavy_and_stochastic():
    t = initial_transition(4, 0.7)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    assert t[0, 0] == pytest.approx(0.7) and t[0, 1] == pytest.approx(0.1)


class _Oracle(ClassifierMixin, BaseEstimator):
    """A checker that learns nothing: p(class 1 | x) is the row's first feature, so each likelihood is known."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.column_stack([1.0 - X[:, 0], X[:, 0]])


def test_the_history_prior_starts_from_the_given_labels_by_hand():
    # 8 examples, 2 classes; checker p(1 | x): 0.9 for row 0 (given 0), 0.2 for rows 1-3 (given 0), 0.8 for rows
    # 4-7 (given 1). stay=0.5 makes the first prior flat, so iteration 1's posterior is the checker's (frequencies
    # 0.5, 0.5 cancel): row 0 moves to 1. The hard counts (given -> argmax) are [[3, 1], [0, 4]]; with 2 pseudo-
    # examples per row spread like the initial matrix (0.5 each), T = [[4, 2], [1, 5]] / 6.
    # Iteration 2: the labels hold 3 zeros and 5 ones, so the checker's probabilities are divided by (3/8, 5/8),
    # and with carry=0 every prior is the GIVEN label's row of T. Row 0 (given 0): (2/3 * 0.1 / (3/8),
    # 1/3 * 0.9 / (5/8)) = (8/45, 12/25) -> (10/37, 27/37); a prior from its current label 1 would give
    # (1/6 * 0.1 / (3/8), 5/6 * 0.9 / (5/8)) = (2/45, 6/5) -> (1/28, 27/28). Rows 1-3: (64/45, 8/75) -> (40/43, 3/43);
    # rows 4-7: (4/45, 16/15) -> (1/13, 12/13). No label moves, and the counts give T again.
    X = np.array([[0.9], [0.2], [0.2], [0.2], [0.8], [0.8], [0.8], [0.8]])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pico = PICO(checker=_Oracle(), n_iter=2, n_folds=2, n_repeats=1, stay=0.5, smoothing=2.0, temperature=1.0,
                em_steps=0, deconvolve=False, carry=0.0).fit(X, y)
    assert pico.corrected_labels_.tolist() == [1, 0, 0, 0, 1, 1, 1, 1]
    assert [h.tolist() for h in pico.history_] == [y.tolist(), [1, 0, 0, 0, 1, 1, 1, 1], [1, 0, 0, 0, 1, 1, 1, 1]]
    hand = np.array([[10 / 37, 27 / 37]] + [[40 / 43, 3 / 43]] * 3 + [[1 / 13, 12 / 13]] * 4)
    np.testing.assert_allclose(pico.label_posterior_, hand, rtol=1e-6)  # float32 log-probabilities
    np.testing.assert_allclose(pico.transition_, [[4 / 6, 2 / 6], [1 / 6, 5 / 6]], rtol=1e-12)


def test_recovers_most_flips_on_digits_with_20_percent_noise(digits):
    X, y = digits
    noisy = flip(y, 0.2, seed=0)
    pico = PICO(random_state=0, n_jobs=2).fit(X, noisy)
    assert (noisy == y).mean() < 0.82
    assert (pico.corrected_labels_ == y).mean() >= 0.95
    issues = pico.issues_
    assert list(issues.columns) == ["index", "given_label", "suggested_label", "confidence", "iteration"]
    changed = np.flatnonzero(pico.corrected_labels_ != noisy)
    assert sorted(issues["index"]) == changed.tolist()
    assert issues["confidence"].between(0, 1).all() and issues["iteration"].between(1, pico.n_iter_).all()
    np.testing.assert_array_equal(pico.history_[0], noisy)
    np.testing.assert_array_equal(pico.history_[-1], pico.corrected_labels_)
    assert pico.label_posterior_.shape == (len(y), 10) and pico.label_posterior_.dtype == np.float32
    np.testing.assert_allclose(pico.label_posterior_.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pico.transition_.sum(axis=1), 1.0)


def test_same_seed_same_result_and_n_jobs_do_not_matter(blobs):
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    kwargs = {"n_iter": 2, "n_repeats": 2, "random_state": 3}
    one = PICO(n_jobs=1, **kwargs).fit(X, noisy)
    two = PICO(n_jobs=2, **kwargs).fit(X, noisy)
    again = PICO(n_jobs=1, **kwargs).fit(X, noisy)
    np.testing.assert_array_equal(one.corrected_labels_, two.corrected_labels_)
    np.testing.assert_array_equal(one.label_posterior_, two.label_posterior_)
    np.testing.assert_array_equal(one.label_posterior_, again.label_posterior_)
    np.testing.assert_array_equal(one.transition_, two.transition_)
    assert (one.corrected_labels_ == y).mean() >= 0.98


def test_top_k_posteriors_are_sparse_and_agree_with_dense(blobs):
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    dense = PICO(n_iter=2, random_state=0).fit(X, noisy)
    sparse = PICO(n_iter=2, random_state=0, top_k=2).fit(X, noisy)
    assert isinstance(sparse.label_posterior_, csr_matrix)
    assert sparse.label_posterior_.nnz <= 2 * len(y)
    agree = (dense.corrected_labels_ == sparse.corrected_labels_).mean()
    assert agree >= 0.99


def test_string_labels_come_back_as_strings(blobs):
    X, y = blobs
    names = np.array(["cat", "dog", "eel"])[y]
    pico = PICO(n_iter=1, random_state=0).fit(X, names)
    assert pico.corrected_labels_.dtype.kind == "U"
    assert list(pico.classes_) == ["cat", "dog", "eel"]


def test_not_fitted():
    with pytest.raises(NotFittedError, match=r"this PICO is not fitted yet; call fit\(X, y\) before using issues_"):
        _ = PICO().issues_
    with pytest.raises(AttributeError):
        _ = PICO().corrected_labels_


def test_bad_parameters(blobs):
    X, y = blobs
    with pytest.raises(InvalidInput, match=r"^threshold must be a number with 0 < threshold <= 1; got 1.5$"):
        PICO(threshold=1.5).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^n_folds must be an integer >= 2; got 1$"):
        PICO(n_folds=1).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^temperature must be a positive number; got 0$"):
        PICO(temperature=0).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^deconvolve_steps must be an integer >= 0 or None; got -1$"):
        PICO(deconvolve_steps=-1).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^n_iter must be a positive integer; got True$"):
        PICO(n_iter=True).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^random_state must be an integer >= 0 or None; got -1$"):
        PICO(random_state=-1).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^n_jobs must be a positive integer, an integer <= -1 or None; got 0$"):
        PICO(n_jobs=0).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^flat_start must be True or False; got 'yes'$"):
        PICO(flat_start="yes").fit(X, y)
    with pytest.raises(
        InvalidInput, match=r"^checker must be a string, an object with fit and predict_proba methods or None; got 3$"
    ):
        PICO(checker=3).fit(X, y)


def test_deconvolution_undoes_a_known_noise_channel():
    from aiforge.clean.pico import _deconvolved, _unmixing

    # soft counts (training label, true class): true 0 is labelled 0 60 times and 1 40 times; true 1 always 1
    channel, unmix = _unmixing(np.array([[60.0, 0.0], [40.0, 100.0]]), smoothing=0.0)
    np.testing.assert_allclose(channel, [[0.6, 0.4], [0.0, 1.0]], atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(unmix), [[0.6, 0.4], [0.0, 1.0]], atol=1e-12)
    # a checker trained on those labels says (0.6, 0.4) where the true class is surely 0
    got = np.exp(_deconvolved(np.log(np.array([[[0.6, 0.4]]])), (channel, unmix)))
    np.testing.assert_allclose(got, [[[1 / 1.001, 0.001 / 1.001]]], rtol=1e-9)


def test_non_negative_deconvolution_by_hand_and_towards_the_true_class():
    from aiforge.clean.pico import _deconvolved, _unmixing

    channel, unmix = _unmixing(np.array([[60.0, 0.0], [40.0, 100.0]]), smoothing=0.0)
    q = np.array([[[0.6, 0.4]]])
    # one Richardson-Lucy step from p = q: p @ C = (0.36, 0.64); ratio r = q / (p @ C); p <- p * (r @ C.T)
    r = np.array([0.6 / 0.36, 0.4 / 0.64])
    hand = q[0, 0] * np.array([0.6 * r[0] + 0.4 * r[1], r[1]])
    hand /= hand.sum()
    got = np.exp(_deconvolved(np.log(q), (channel, unmix), steps=1))
    np.testing.assert_allclose(got[0, 0], hand, rtol=1e-6)
    # more steps move towards the true class 0 and always stay a distribution
    many = np.exp(_deconvolved(np.log(q), (channel, unmix), steps=50))
    assert many[0, 0, 0] > got[0, 0, 0] > 0.6
    np.testing.assert_allclose(many.sum(axis=2), 1.0)


def test_carry_must_be_a_fraction(blobs):
    X, y = blobs
    with pytest.raises(InvalidInput, match=r"^carry must be a number with 0 <= carry <= 1; got 2$"):
        PICO(carry=2).fit(X, y)


@pytest.mark.spark
def test_spark_engine_gives_the_same_result_as_local_processes(spark, blobs):
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    local = PICO(n_iter=2, random_state=1, n_jobs=2).fit(X, noisy)
    on_spark = PICO(n_iter=2, random_state=1, engine="spark").fit(X, noisy)
    assert local.engine_ == LocalEngine() and on_spark.engine_ == SparkEngine("local[*]")
    np.testing.assert_array_equal(local.corrected_labels_, on_spark.corrected_labels_)
    np.testing.assert_array_equal(local.label_posterior_, on_spark.label_posterior_)
    np.testing.assert_array_equal(local.transition_, on_spark.transition_)
    with pytest.warns(FutureWarning, match=r"^PICO: backend= is deprecated .*; use engine='spark' instead$"):
        old = PICO(n_iter=2, random_state=1, backend="spark").fit(X, noisy)
    assert old.engine_ == SparkEngine("local[*]")
    np.testing.assert_array_equal(old.label_posterior_, on_spark.label_posterior_)


def test_engine_errors_come_from_resolve_engine(blobs):
    X, y = blobs
    with pytest.raises(InvalidInput, match=r"^unknown engine 'ray'; expected one of: local, spark$"):
        PICO(engine="ray").fit(X, y)
    with pytest.raises(InvalidInput, match=r"^--master 'spark://h:7077' only applies to --engine spark; drop it or "):
        PICO(master="spark://h:7077").fit(X, y)
    with pytest.raises(InvalidInput, match=r"^engine must be a string or an instance of Engine; got 3$"):
        PICO(engine=3).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^backend must be 'loky' or 'spark'; got 'ray'$"):
        PICO(backend="ray").fit(X, y)
    with pytest.raises(InvalidInput, match=r"^PICO got both engine='spark' and backend='loky'; backend is the old "):
        PICO(engine="spark", backend="loky").fit(X, y)


def test_old_names_still_work_for_one_release_with_a_future_warning(blobs):
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    new = PICO(n_iter=1, random_state=5).fit(X, noisy)
    with pytest.warns(FutureWarning, match=r"^PICO: seed= is deprecated and will stop working in the next aiforge "
                      r"release; use random_state=5 instead$"):
        old = PICO(n_iter=1, seed=5).fit(X, noisy)
    np.testing.assert_array_equal(old.label_posterior_, new.label_posterior_)
    with pytest.warns(FutureWarning, match=r"use engine='local' instead$"):
        loky = PICO(n_iter=1, random_state=5, backend="loky").fit(X, noisy)
    assert loky.engine_ == LocalEngine()
    np.testing.assert_array_equal(loky.label_posterior_, new.label_posterior_)
    with pytest.raises(InvalidInput, match=r"^PICO got both random_state=2 and seed=5; seed is the old name of "):
        PICO(random_state=2, seed=5).fit(X, noisy)


def test_random_state_none_draws_a_fresh_seed_per_fit(blobs):
    from aiforge.clean._engine import seed_of

    draws = {seed_of(None) for _ in range(3)}
    assert len(draws) == 3 and all(0 <= d < 2**32 for d in draws)
    assert seed_of(7) == 7
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    assert (PICO(n_iter=2, random_state=None).fit(X, noisy).corrected_labels_ == y).mean() >= 0.98
