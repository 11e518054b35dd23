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
    assert (counts.precision, counts.recall) == (0.0, 0.0)


def test_nothing_popped_from_both_sides_scores_hmean_zero() -> None:
    r = popeval([rect(0, 10, "AB")], [rect(0, 10, "XY")])
    assert (r.popped, r.precision, r.recall, r.hmean) == (0, 0.0, 0.0, 0.0)


def test_hmean_of_small_precision_and_recall_is_not_zero() -> None:
    r = popeval([rect(0, 10, "ABCD")], [rect(0, 10, "AXYZ")])  # p = r = 1/4, p + r below 1
    assert (r.popped, r.precision, r.recall, r.hmean) == (1, 0.25, 0.25, 0.25)


def test_positive_area_keeps_an_overlap_smaller_than_one_unit() -> None:
    r = popeval([rect(0, 10, "AB")], [rect(9.95, 20, "AB")], positive_area=True)  # overlap area 0.5
    assert r.popped == 2


def test_pop_ordered_by_hand() -> None:
    from aiforge.evaluate.ocr._text import pop_ordered

    assert pop_ordered(list("AXBYC"), list("ABC")) == (["X", "Y"], [], 3)
    assert pop_ordered(list("ABC"), list("AZC")) == (["B"], ["Z"], 2)
    assert pop_ordered(list("ABC"), list("CBA")) == (["A", "B"], ["B", "A"], 1)  # ties move down the GT first
    assert pop_ordered(list("XAB"), list("ABY")) == (["X"], ["Y"], 2)
    assert pop_ordered([], list("AB")) == ([], ["A", "B"], 0)


def test_edit_distance_by_hand() -> None:
    from aiforge.evaluate.ocr._text import edit_distance

    assert edit_distance("kitten", "sitting") == edit_distance("sitting", "kitten") == 3
    assert edit_distance("", "abc") == edit_distance("abc", "") == 3
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("ab", "ba") == 2
    assert edit_distance("abcd", "axcy") == 2
