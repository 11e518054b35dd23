"""A single outlier does not flatten a histogram to one bar (issue 12): robust bins, outliers counted apart."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from aiforge import analyze


def _histogram(values: np.ndarray) -> dict:
    report = analyze(pa.table({"age": values}))
    (column,) = report._stats["columns"]
    return column["histogram"]["value"]


def test_one_huge_value_among_ages_keeps_the_ages_bins_and_is_counted_apart() -> None:
    ages = np.random.default_rng(0).integers(18, 81, 5_000).astype(np.float64)
    hist = _histogram(np.r_[ages, 1e9])
    assert len(hist["counts"]) == 20 and hist["above"] == 1 and "below" not in hist
    assert (hist["edges"][0], hist["edges"][-1]) == (18, 80)  # the ages, not up to a fence
    assert sum(hist["counts"]) == 5_000  # every age is in a bin; the outlier is not
    assert max(hist["counts"]) < 0.1 * 5_000  # before: one bar held 5,000 of 5,001 rows


def test_without_outliers_the_bins_span_min_to_max_and_nothing_is_apart() -> None:
    values = np.linspace(-3.0, 7.0, 1_000)
    hist = _histogram(values)
    assert (hist["edges"][0], hist["edges"][-1]) == (-3.0, 7.0)
    assert "below" not in hist and "above" not in hist and sum(hist["counts"]) == 1_000


def test_the_report_draws_the_outliers_as_end_bars() -> None:
    values = np.r_[np.random.default_rng(1).normal(50, 5, 2_000), -1e6, -2e6, 3e7]
    report = analyze(pa.table({"x": values}))
    hist = report._stats["columns"][0]["histogram"]["value"]
    assert (hist["below"], hist["above"]) == (2, 1)
    page = report.to_html()
    assert "below " in page and "(outliers): 2</title>" in page and "(outliers): 1</title>" in page
