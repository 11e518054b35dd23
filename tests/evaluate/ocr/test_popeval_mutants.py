"""Exact cases that kill the mutants scripts/mutate.py found surviving in popeval.py and _text.py (issue 11)."""

from __future__ import annotations

from aiforge.evaluate.ocr import Box, PopEval, popeval


def rect(x0: float, x1: float, text: str, y0: float = 0, y1: float = 10) -> Box:
    return Box(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), text)


def test_an_image_with_nothing_to_match_has_no_splits_or_merges() -> None:
    m = PopEval()
    assert m.update([rect(0, 10, "AB")], []) == m.images["0"]
    counts = m.images["0"]
    assert (counts.popped, counts.pred_chars, counts.gt_chars, counts.splits, counts.merges) == (0, 0, 2, 0, 0)
    assert counts.missing_prediction is False


def test_nothing_popped_from_both_sides_scores_hmean_zero() -> None:
    r = popeval([rect(0, 10, "AB")], [rect(0, 10, "XY")])
    assert (r.popped, r.precision, r.recall, r.hmean) == (0, 0.0, 0.0, 0.0)
