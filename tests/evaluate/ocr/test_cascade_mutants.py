"""Exact cases that kill the mutants scripts/mutate.py found surviving in cascade.py (issue 11)."""

from __future__ import annotations

from aiforge.evaluate.ocr import Box, CascadeCounts, CascadeScores, cascade


def rect(x0: float, x1: float, text: str, y0: float = 0, y1: float = 10) -> Box:
    return Box(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), text)


def test_nothing_to_find_and_nothing_predicted_scores_one() -> None:
    # the only GT box is don't-care and nothing is predicted: 0 of 0 found, 0 of 0 predicted
    r = cascade([rect(0, 10, "###")], [])
    assert r.total == CascadeCounts(0, 0, 0, 0, 0.0)
    assert r.detection == r.wem == r.ned == CascadeScores(1.0, 1.0, 1.0)


def test_predictions_with_no_gt_have_recall_one_and_precision_zero() -> None:
    r = cascade([rect(0, 10, "")], [rect(0, 10, "A")])  # an empty GT text is no box
    assert r.total == CascadeCounts(0, 1, 0, 0, 0.0)
    assert r.detection == CascadeScores(0.0, 1.0, 0.0)


def test_no_prediction_for_real_gt_has_precision_zero() -> None:
    assert CascadeScores.of(0, 0, 3) == CascadeScores(0.0, 0.0, 0.0)


def test_hmean_when_precision_plus_recall_is_at_most_one() -> None:
    # 2 GT, 2 predictions, both matched, one exact: WEM P = R = 1/2, so P + R = 1 and the H-mean is 1/2
    r = cascade([rect(0, 10, "EXIT"), rect(20, 30, "HALL")], [rect(0, 10, "EXIT"), rect(20, 30, "HELL")])
    assert r.wem == CascadeScores(0.5, 0.5, 0.5)
    # P = 1/4, R = 1/2: H-mean = 2 * (1/8) / (3/4) = 1/3
    assert CascadeScores.of(1, 4, 2) == CascadeScores(0.25, 0.5, 2 * 0.25 * 0.5 / 0.75)


def test_boxes_of_area_one_or_less_still_match() -> None:
    unit = rect(0, 1, "A", 0, 1)  # union of the pair: exactly 1
    assert cascade([unit], [rect(0, 1, "A", 0, 1)]).total == CascadeCounts(1, 1, 1, 1, 1.0)
    tiny = rect(0, 0.5, "B", 0, 0.5)  # area 1/4
    assert cascade([tiny], [rect(0, 0.5, "B", 0, 0.5)]).total.matched == 1


def test_zero_area_boxes_never_match() -> None:
    # collinear corners: the hull is a segment, so intersection and union are both 0 and the IoU counts as 0
    line = Box(((0, 0), (10, 0), (10, 0), (0, 0)), "A")
    r = cascade([line], [Box(((0, 0), (10, 0), (10, 0), (0, 0)), "A")])
    assert r.total == CascadeCounts(1, 1, 0, 0, 0.0)


def test_a_matched_pair_whose_texts_normalize_to_nothing_is_exact_with_ned_one() -> None:
    # "!" and "?" both strip to "": an exact match, and 1-NED of two empty texts is 1 (no division by 0)
    r = cascade([rect(0, 10, "!")], [rect(0, 10, "?")], strip_special=True)
    assert r.total == CascadeCounts(1, 1, 1, 1, 1.0)
    assert r.ned == CascadeScores(1.0, 1.0, 1.0)
