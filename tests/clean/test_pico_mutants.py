"""Exact cases that kill the mutants scripts/mutate.py found surviving in clean/pico.py (issue 11).

Most cases are worked out by hand with a checker whose probabilities are fixed by the data (``_Oracle``), so every
prior, likelihood, posterior and transition count below can be followed on paper.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from aiforge.clean import PICO
from aiforge.clean.pico import _deconvolved, _dense, _keep_top, _one_hot_top, _unmixing, bayes_posterior
from aiforge.errors import InvalidInput


class _Oracle(ClassifierMixin, BaseEstimator):
    """Learns nothing and knows both classes: p(class 1 | x) is the row's first feature."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        return np.column_stack([1.0 - X[:, 0], X[:, 0]])


def _hand_pico(**kwargs) -> PICO:
    params = {
        "checker": _Oracle(),
        "n_folds": 2,
        "n_repeats": 1,
        "smoothing": 2.0,
        "temperature": 1.0,
        "em_steps": 0,
        "deconvolve": False,
        "carry": 0.0,
    }
    return PICO(**{**params, **kwargs})


# checker p(1 | x): 0.9 for row 0 (given 0), 0.2 for rows 1-3 (given 0), 0.8 for rows 4-7 (given 1)
X8 = np.array([[0.9], [0.2], [0.2], [0.2], [0.8], [0.8], [0.8], [0.8]])
Y8 = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_bayes_posterior_stays_finite_for_huge_log_likelihoods():
    # the row maximum is subtracted before exp: exp(1000) alone overflows
    got = bayes_posterior(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[1000.0, 0.0], [0.0, -1000.0]]))
    np.testing.assert_array_equal(got, [[1.0, 0.0], [1.0, 0.0]])


def test_deconvolution_renormalises_the_checkers_probabilities_first():
    # top-k rows rebuilt with a floored rest need not sum to 1; (1.2, 0.8) is (0.6, 0.4) twice over, and with the
    # channel [[0.6, 0.4], [0, 1]] the pseudo-inverse gives (1, 0) -> floored at 0.001 -> (1, 0.001) / 1.001
    channel, unmix = _unmixing(np.array([[60.0, 0.0], [40.0, 100.0]]), smoothing=0.0)
    got = np.exp(_deconvolved(np.log(np.array([[[1.2, 0.8]]])), (channel, unmix), steps=0))
    np.testing.assert_allclose(got, [[[1 / 1.001, 0.001 / 1.001]]], rtol=1e-9)


def test_the_noise_channel_adds_the_smoothing_to_the_diagonal_by_hand():
    # counts (training label, true class) + smoothing * I / K = [[61, 0], [40, 101]]; columns (true class) sum
    # to 101 and 101; the channel's rows are the true classes
    channel, inverse = _unmixing(np.array([[60.0, 0.0], [40.0, 100.0]]), smoothing=2.0)
    np.testing.assert_allclose(channel, [[61 / 101, 40 / 101], [0.0, 1.0]], rtol=1e-12)
    np.testing.assert_allclose(inverse @ channel, np.eye(2), atol=1e-12)


def test_one_hot_beliefs_in_top_k_form_by_hand():
    top, val = _one_hot_top(np.array([0, 2]), k=2, n_classes=3)
    assert top.tolist() == [[0, 1], [2, 0]] and val.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    np.testing.assert_array_equal(_dense(top, val, 3), [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def test_keep_top_keeps_the_k_largest_renormalised_by_hand():
    post = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    top, val = _keep_top(post, 2)
    assert val.dtype == np.float32
    np.testing.assert_allclose(
        _dense(top, val, 3), [[0.0, 0.5 / 0.8, 0.3 / 0.8], [0.6 / 0.9, 0.0, 0.3 / 0.9]], rtol=1e-6
    )
    top, val = _keep_top(post, 3)
    np.testing.assert_array_equal(_dense(top, val, 3), post.astype(np.float32))


def test_em_steps_0_uses_the_initial_matrix_without_a_flat_start_and_stops_after_n_iter():
    # stay=0.8, frequencies (0.5, 0.5) cancel, and with em_steps=0 there is no flat-start pass: each prior is the
    # given label's row of the initial matrix. Row 0: (0.8 * 0.1, 0.2 * 0.9) = (0.08, 0.18) -> (4/13, 9/13), moves
    # to 1. Rows 1-3: (0.8 * 0.8, 0.2 * 0.2) -> (16/17, 1/17). Rows 4-7: (0.2 * 0.2, 0.8 * 0.8) -> (1/17, 16/17).
    # Hard counts (given -> argmax) [[3, 1], [0, 4]] + 2 * initial -> [[4.6, 1.4], [0.4, 5.6]] / 6.
    pico = _hand_pico(n_iter=1, stay=0.8).fit(X8, Y8)
    assert pico.n_iter_ == 1 and len(pico.history_) == 2
    assert pico.corrected_labels_.tolist() == [1, 0, 0, 0, 1, 1, 1, 1]
    assert type(pico.label_posterior_) is np.ndarray
    hand = np.array([[4 / 13, 9 / 13]] + [[16 / 17, 1 / 17]] * 3 + [[1 / 17, 16 / 17]] * 4)
    np.testing.assert_allclose(pico.label_posterior_, hand, rtol=1e-6)
    np.testing.assert_allclose(pico.transition_, [[4.6 / 6, 1.4 / 6], [0.4 / 6, 5.6 / 6]], rtol=1e-12)
    # top_k as large as the number of classes keeps the dense array
    same = _hand_pico(n_iter=1, stay=0.8, top_k=2).fit(X8, Y8)
    assert type(same.label_posterior_) is np.ndarray
    np.testing.assert_array_equal(same.label_posterior_, pico.label_posterior_)


def test_carry_mixes_the_previous_posterior_with_the_given_label_by_hand():
    # stay=0.5: iteration 1's prior is flat, its posteriors are the checker's: row 0 (0.1, 0.9) (moves to 1),
    # rows 1-3 (0.8, 0.2), rows 4-7 (0.2, 0.8); T = ([[3, 1], [0, 4]] + 1) / row sums = [[4, 2], [1, 5]] / 6.
    # Iteration 2 with carry=0.5: previous = 0.5 * posterior + 0.5 * onehot(given): row 0 (0.55, 0.45),
    # rows 1-3 (0.9, 0.1), rows 4-7 (0.1, 0.9); prior = previous @ T; likelihoods divided by the label
    # frequencies (3/8, 5/8).
    pico = _hand_pico(n_iter=2, stay=0.5, carry=0.5).fit(X8, Y8)
    t = np.array([[4 / 6, 2 / 6], [1 / 6, 5 / 6]])
    previous = np.array([[0.55, 0.45]] + [[0.9, 0.1]] * 3 + [[0.1, 0.9]] * 4)
    lik = np.column_stack([1 - X8[:, 0], X8[:, 0]]) / np.array([3 / 8, 5 / 8])
    unnormalised = (previous @ t) * lik
    # row 0 by hand: prior (53/120, 67/120), likelihood (4/15, 36/25)
    np.testing.assert_allclose(unnormalised[0], [53 / 120 * 4 / 15, 67 / 120 * 36 / 25])
    hand = unnormalised / unnormalised.sum(axis=1, keepdims=True)
    assert pico.corrected_labels_.tolist() == [1, 0, 0, 0, 1, 1, 1, 1] and pico.n_iter_ == 2
    np.testing.assert_allclose(pico.label_posterior_, hand, rtol=1e-6)
    # counts = previous.T @ onehot(argmax) = [[2.7, 0.95], [0.3, 4.05]], + 1 pseudo-example per cell
    np.testing.assert_allclose(pico.transition_, [[3.7 / 5.65, 1.95 / 5.65], [1.3 / 6.35, 5.05 / 6.35]], rtol=1e-6)


def test_a_label_moves_when_another_class_reaches_the_threshold_exactly():
    # row 0 is given 1 and the checker says (0.5, 0.5); with a flat prior (stay=0.5) and equal frequencies its
    # posterior is exactly (0.5, 0.5): class 0 reaches threshold 0.5, so the label moves to it
    X = np.array([[0.5], [0.2], [0.2], [0.2], [0.2], [0.8], [0.8], [0.8]])
    y = np.array([1, 0, 0, 0, 0, 1, 1, 1])
    pico = _hand_pico(n_iter=1, stay=0.5, threshold=0.5).fit(X, y)
    assert pico.label_posterior_[0].tolist() == [0.5, 0.5]
    assert pico.corrected_labels_.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


def test_a_class_no_label_holds_any_more_keeps_the_frequency_floor_by_hand():
    # checker p(1 | x): 0.9 for rows 0-1 (given 0), 0.8 for rows 2-7 (given 1); stay=0.5 (flat first prior).
    # Iteration 1: frequencies (1/4, 3/4): rows 0-1 (0.4, 1.2) -> (1/4, 3/4), move to 1; rows 2-7 (0.8, 16/15)
    # stay 1. Hard counts [[0, 2], [0, 6]] + 1 -> T = [[1/4, 3/4], [1/8, 7/8]].
    # Iteration 2: every label is 1, so class 0's frequency is the floor 1/n = 1/8 and class 1's is 1.
    # Rows 0-1 (prior (1/4, 3/4), likelihood (0.8, 0.9)) -> (8/35, 27/35); rows 2-7 (prior (1/8, 7/8),
    # likelihood (1.6, 0.8)) -> (2/9, 7/9). Nothing moves; the counts give T again.
    X = np.array([[0.9], [0.9], [0.8], [0.8], [0.8], [0.8], [0.8], [0.8]])
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    pico = _hand_pico(n_iter=2, stay=0.5).fit(X, y)
    assert [h.tolist() for h in pico.history_] == [y.tolist(), [1] * 8, [1] * 8]
    hand = np.array([[8 / 35, 27 / 35]] * 2 + [[2 / 9, 7 / 9]] * 6)
    np.testing.assert_allclose(pico.label_posterior_, hand, rtol=1e-6)
    np.testing.assert_allclose(pico.transition_, [[1 / 4, 3 / 4], [1 / 8, 7 / 8]], rtol=1e-12)


def _many_classes(k: int) -> tuple[np.ndarray, np.ndarray]:
    """4 points per class around k centres on a line, every 4th label moved to the next class."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(k), 4)
    X = np.column_stack([y * 3.0, np.zeros(len(y))]) + rng.normal(size=(len(y), 2))
    noisy = y.copy()
    noisy[::4] = (noisy[::4] + 1) % k
    return X, noisy


def test_the_default_deconvolution_is_10_steps_up_to_32_classes_and_the_pseudo_inverse_above():
    for k, same_as, other in ((32, 10, 0), (33, 0, 10)):
        X, y = _many_classes(k)
        kwargs = {"n_iter": 1, "n_folds": 2, "n_repeats": 1, "em_steps": 1}
        default = PICO(**kwargs).fit(X, y).label_posterior_
        np.testing.assert_array_equal(default, PICO(deconvolve_steps=same_as, **kwargs).fit(X, y).label_posterior_)
        assert not np.array_equal(default, PICO(deconvolve_steps=other, **kwargs).fit(X, y).label_posterior_)


def test_the_old_backend_name_alone_picks_spark_without_a_conflict():
    # engine keeps its default 'local', so backend='spark' is no clash; the one-class error comes before any
    # Spark work starts
    with (
        pytest.warns(FutureWarning, match=r"^PICO: backend= is deprecated .*; use engine='spark' instead$"),
        pytest.raises(InvalidInput, match=r"^y has only one class \('a'\); label cleaning needs at least two"),
    ):
        PICO(backend="spark").fit(np.zeros((10, 2)), np.array(["a"] * 10))


def test_deconvolution_inside_pico_by_hand():
    # stay=0.5, em_steps=1 without a flat start: the EM pass sees the checker alone (flat prior), so its hard
    # evidence is row 0 -> 1, rows 1-3 -> 0, rows 4-7 -> 1. Counts (given -> argmax) and (training label -> argmax)
    # are both [[3, 1], [0, 4]]: T = [[4, 2], [1, 5]] / 6, and the channel from [[3, 1], [0, 4]] + 2 * I / 2 =
    # [[4, 1], [0, 5]] (columns sum to 4, 6) is [[1, 0], [1/6, 5/6]] (rows: true class), inverse
    # [[1, 0], [-1/5, 6/5]]. The pseudo-inverse undoes it: row 0 (0.1, 0.9) -> (-0.08, 1.08) -> floor 0.001 ->
    # (0.001, 1.08) / 1.081; rows 1-3 (0.8, 0.2) -> (0.76, 0.24); rows 4-7 (0.2, 0.8) -> (0.04, 0.96).
    # Priors (given 0: (4/6, 2/6), given 1: (1/6, 5/6)) times those: row 0 (0.004, 2.16) / 2.164 (moves to 1),
    # rows 1-3 (3.04, 0.48) / 3.52, rows 4-7 (0.04, 4.8) / 4.84.
    pico = _hand_pico(n_iter=1, stay=0.5, em_steps=1, flat_start=False, deconvolve=True, deconvolve_steps=0).fit(X8, Y8)
    assert pico.corrected_labels_.tolist() == [1, 0, 0, 0, 1, 1, 1, 1]
    rows = [[0.004 / 2.164, 2.16 / 2.164]] + [[3.04 / 3.52, 0.48 / 3.52]] * 3 + [[0.04 / 4.84, 4.8 / 4.84]] * 4
    np.testing.assert_allclose(pico.label_posterior_, np.array(rows), rtol=1e-6)
    np.testing.assert_allclose(pico.transition_, [[4 / 6, 2 / 6], [1 / 6, 5 / 6]], rtol=1e-12)


def test_the_chunked_pass_matches_one_pass_with_a_last_chunk_smaller_than_top_k(monkeypatch):
    import aiforge.clean.pico as pico_module

    rng = np.random.default_rng(0)
    y = np.array([0] * 14 + [1] * 14 + [2] * 13)  # 41 rows: chunks of 4 leave a last one of 1 row, below top_k=2
    X = rng.normal(size=(41, 2)) + np.array([[0, 0], [3, 0], [0, 3]])[y]
    y[::5] = (y[::5] + 1) % 3
    kwargs = {"n_iter": 2, "n_folds": 2, "n_repeats": 1, "top_k": 2, "checker": "knn"}
    whole = PICO(**kwargs).fit(X, y)
    monkeypatch.setattr(pico_module, "CHUNK_ROWS", 4)
    chunked = PICO(**kwargs).fit(X, y)
    np.testing.assert_array_equal(chunked.corrected_labels_, whole.corrected_labels_)
    np.testing.assert_allclose(chunked.label_posterior_.toarray(), whole.label_posterior_.toarray(), rtol=1e-6)
    np.testing.assert_allclose(chunked.transition_, whole.transition_, rtol=1e-12)
