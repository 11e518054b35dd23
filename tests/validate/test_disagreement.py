"""Prediction disagreement: exact counts on hand-made arrays, Clopper-Pearson against known values, invariants."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiforge.errors import InvalidInput
from aiforge.validate import Disagreement, Rate, binomial_interval, churn_baseline, compare_predictions

PRODUCTION = np.array([0, 1, 1, 0, 2, 2, 1, 0])
CANDIDATE = np.array([0, 1, 0, 0, 2, 1, 1, 1])
TRUTH = np.array([0, 1, 1, 1, 2, 1, 0, 0])


def test_binomial_interval_matches_known_clopper_pearson_values() -> None:
    assert binomial_interval(0, 10) == (0.0, pytest.approx(0.3085, abs=1e-4))
    assert binomial_interval(5, 10) == (pytest.approx(0.1871, abs=1e-4), pytest.approx(0.8129, abs=1e-4))
    assert binomial_interval(10, 10) == (pytest.approx(0.6915, abs=1e-4), 1.0)
    # 1/20 at 95%: the textbook 0.0013-0.2487; a wider confidence gives a wider interval
    assert binomial_interval(1, 20) == (pytest.approx(0.0013, abs=1e-4), pytest.approx(0.2487, abs=1e-4))
    low99, high99 = binomial_interval(5, 10, confidence=0.99)
    assert low99 < 0.1871 and high99 > 0.8129


@pytest.mark.parametrize(
    ("successes", "trials", "confidence", "match"),
    [
        (0, 0, 0.95, r"trials must be at least 1, got 0"),
        (11, 10, 0.95, r"successes must be between 0 and trials \(10\), got 11"),
        (-1, 10, 0.95, r"successes must be between 0 and trials \(10\), got -1"),
        (1, 10, 1.0, r"confidence must be strictly between 0 and 1 \(e.g. 0.95\), got 1.0"),
        (1, 10, 0.0, r"confidence must be strictly between 0 and 1"),
    ],
)
def test_binomial_interval_refuses_bad_arguments(successes: int, trials: int, confidence: float, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        binomial_interval(successes, trials, confidence)


def test_flips_negative_and_positive_flips_and_accuracy_are_exact() -> None:
    d = compare_predictions(PRODUCTION, CANDIDATE, y_true=TRUTH)
    # rows 2, 5, 7 differ
    assert (d.n, d.flips.count, d.flips.total, d.flips.rate) == (8, 3, 8, 0.375)
    assert (d.flips.low, d.flips.high) == binomial_interval(3, 8)
    # row 2 and row 7: right before, wrong now; row 5: wrong before (2 vs 1), right now
    assert d.negative_flips is not None and d.positive_flips is not None
    assert (d.negative_flips.count, d.positive_flips.count) == (2, 1)
    assert d.accuracy is not None
    assert (d.accuracy[0].count, d.accuracy[1].count) == (5, 4)
    assert d.accuracy[1].count - d.accuracy[0].count == d.positive_flips.count - d.negative_flips.count
    assert d.mean_abs_change is None


def test_per_class_groups_by_truth_or_by_production_without_it() -> None:
    with_truth = compare_predictions(PRODUCTION, CANDIDATE, y_true=TRUTH)
    # truth 0: rows 0, 6, 7 -> row 7 flipped; truth 1: rows 1, 2, 3, 5 -> rows 2, 5; truth 2: row 4 -> none
    assert {k: (r.count, r.total) for k, r in with_truth.per_class.items()} == {"0": (1, 3), "1": (2, 4), "2": (0, 1)}
    without = compare_predictions(PRODUCTION, CANDIDATE)
    # production 0: rows 0, 3, 7 -> row 7; production 1: rows 1, 2, 6 -> row 2; production 2: rows 4, 5 -> row 5
    assert {k: (r.count, r.total) for k, r in without.per_class.items()} == {"0": (1, 3), "1": (1, 3), "2": (1, 2)}
    assert without.negative_flips is None and without.positive_flips is None and without.accuracy is None


def test_string_labels_and_per_slice_flip_rates() -> None:
    production = ["cat", "dog", "dog", "cat", "bird", "bird"]
    candidate = ["cat", "cat", "dog", "cat", "dog", "bird"]
    slices = {"country": ["fr", "fr", "de", "de", "de", "us"], "age": [20, 30, 20, 30, 20, 30]}
    d = compare_predictions(production, candidate, slices=slices)
    assert d.flips.count == 2  # rows 1 and 4
    assert {k: (r.count, r.total) for k, r in d.per_slice["country"].items()} == {
        "de": (1, 3), "fr": (1, 2), "us": (0, 1)
    }
    assert {k: (r.count, r.total) for k, r in d.per_slice["age"].items()} == {"20": (1, 3), "30": (1, 3)}
    assert set(d.per_class) == {"bird", "cat", "dog"}


def test_regression_outputs_flip_on_any_change_and_report_the_mean_absolute_change() -> None:
    production = np.array([1.0, 2.0, 3.0, 4.0])
    candidate = np.array([1.0, 2.5, 3.0, 3.0])
    d = compare_predictions(production, candidate, y_true=[1.0, 2.0, 3.0, 4.0])
    assert d.flips.count == 2
    assert d.mean_abs_change == pytest.approx(0.375)
    assert d.negative_flips is None and d.accuracy is None and d.per_class == {}


def test_summary_is_json_ready_and_worst_slices_rank_by_lower_bound() -> None:
    # slice "big": 30 of 100 flipped (rate 0.30, tight); "tiny": 1 of 2 (rate 0.50, wide); "calm": 0 of 50
    production = np.zeros(152, dtype=int)
    candidate = production.copy()
    candidate[:30] = 1
    candidate[100] = 1
    region = np.array(["big"] * 100 + ["tiny"] * 2 + ["calm"] * 50)
    d = compare_predictions(production, candidate, slices={"region": region})
    assert json.loads(json.dumps(d.summary())) == d.summary()
    assert d.summary()["per_slice"]["region"]["tiny"]["count"] == 1
    assert [row["value"] for row in d.worst_slices(min_rows=1)] == ["big", "tiny", "calm"]
    assert [row["value"] for row in d.worst_slices(k=5, min_rows=20)] == ["big", "calm"]
    big = d.per_slice["region"]["big"]
    assert d.worst_slices(k=1, min_rows=20)[0] == {"column": "region", "value": "big", **big.as_dict()}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"production": [0, 1, 1], "candidate": [0, 1]}, r"production has 3 predictions but candidate has 2"),
        ({"production": [], "candidate": []}, r"production is empty"),
        ({"production": [0.0, float("nan")], "candidate": [0.0, 1.0]},
         r"production holds 1 missing value\(s\) \(NaN or None\), first at rows \[1\]: drop those rows"),
        ({"production": ["a", None], "candidate": ["a", "b"]}, r"production holds 1 missing value"),
        ({"production": ["a", "b"], "candidate": ["a", float("nan")]}, r"candidate holds 1 missing value"),
        ({"production": [0, 1], "candidate": [0, 1], "y_true": [0.0, float("nan")]}, r"y_true holds 1 missing"),
        ({"production": [0, 1], "candidate": [0, 1], "y_true": [0]}, r"y_true has 1 labels but the predictions have 2"),
        ({"production": [0, 1], "candidate": [0, 1], "slices": {"country": ["fr"]}},
         r"slice column 'country' has 1 values \(shape \(1,\)\) but the predictions have 2 rows"),
        ({"production": [0, 1], "candidate": [0, 1], "confidence": 1.5}, r"confidence must be strictly between 0 and"),
        ({"production": ["a", "b"], "candidate": [0, 1]}, r"text labels cannot be compared with numbers"),
        ({"production": [[0, 1]], "candidate": [[0, 1]]}, r"production must be a 1-D array"),
    ],
)
def test_compare_predictions_refuses_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        compare_predictions(**kwargs)


labels = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=200)


@settings(max_examples=150, deadline=None)
@given(labels)
def test_rates_lie_in_their_intervals_and_flip_kinds_add_up(rows: list[tuple[int, int, int]]) -> None:
    production, candidate, truth = (np.array(column) for column in zip(*rows, strict=True))
    d = compare_predictions(production, candidate, y_true=truth)
    assert d.negative_flips is not None and d.positive_flips is not None
    rates = [d.flips, d.negative_flips, d.positive_flips, *d.per_class.values()]
    for rate in rates:
        assert 0.0 <= rate.low <= rate.rate <= rate.high <= 1.0
    assert d.negative_flips.count + d.positive_flips.count <= d.flips.count
    assert sum(rate.count for rate in d.per_class.values()) == d.flips.count
    assert d.flips.count == int(np.sum(production != candidate))


def test_identical_predictions_give_no_flips_with_a_bound_that_shrinks_with_n() -> None:
    highs = []
    for n in (10, 100, 1000):
        d = compare_predictions(np.arange(n) % 3, np.arange(n) % 3)
        assert (d.flips.count, d.flips.low) == (0, 0.0)
        highs.append(d.flips.high)
    assert highs[0] > highs[1] > highs[2] > 0.0
    assert highs[0] == pytest.approx(0.3085, abs=1e-4)


def test_churn_baseline_pools_all_pairs() -> None:
    rate = churn_baseline([[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
    # pairs (0,1): 1 flip, (0,2): 2, (1,2): 1 -> 4 of 12
    assert isinstance(rate, Rate)
    assert (rate.count, rate.total) == (4, 12)
    assert (rate.low, rate.high) == binomial_interval(4, 12)


@pytest.mark.parametrize(
    ("predictions", "match"),
    [
        ([[0, 1]], r"needs predictions of at least 2 retrains, got 1"),
        ([[0, 1], [0, 1, 1]], r"the retrains predicted different numbers of rows \(\[2, 3\]\)"),
        ([[], []], r"predictions\[0\] is empty"),
    ],
)
def test_churn_baseline_refuses_bad_input(predictions: list, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        churn_baseline(predictions)


def test_churn_baseline_of_seeded_retrains_on_digits() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    runs = [
        RandomForestClassifier(n_estimators=20, random_state=seed, n_jobs=1).fit(X_train, y_train).predict(X_test)
        for seed in (0, 1, 2)
    ]
    rate = churn_baseline(runs)
    assert rate.total == 3 * len(X_test)
    assert 0.0 < rate.rate < 0.2
    assert rate.low <= rate.rate <= rate.high
    assert isinstance(compare_predictions(runs[0], runs[1]), Disagreement)
