"""The classic cascade (IoU matching, WEM, 1-NED) on hand-computed cases, and ``evaluate_dirs`` on folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiforge.errors import InvalidInput
from aiforge.evaluate.ocr import Box, Cascade, CascadeCounts, cascade, evaluate_dirs
from aiforge.evaluate.ocr._text import edit_distance


def rect(x0: float, x1: float, text: str, y0: float = 0, y1: float = 10) -> Box:
    return Box(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), text)


def test_exact_match_and_one_ned() -> None:
    r = cascade([rect(0, 10, "EXIT"), rect(20, 30, "HALL")], [rect(0, 10, "EXIT"), rect(20, 30, "HELL")])
    assert (r.detection.hmean, r.wem.precision, r.wem.recall) == (1.0, 0.5, 0.5)
    assert r.ned.recall == (1 + 0.75) / 2
    assert r.total == CascadeCounts(gt_boxes=2, pred_boxes=2, matched=2, exact=1, ned_sum=1.75)


def test_split_word_gets_no_word_credit() -> None:
    r = cascade([rect(0, 90, "Riverside")], [rect(0, 50, "River"), rect(50, 90, "side")])
    assert (r.detection.precision, r.detection.recall, r.wem.hmean) == (0.5, 1.0, 0.0)
    assert r.ned.recall == 1 - 4 / 9


def test_iou_threshold_is_inclusive_and_matching_is_one_to_one() -> None:
    gt = [rect(0, 10, "A")]
    assert cascade(gt, [rect(0, 5, "A")]).total.matched == 1  # IoU exactly 0.5
    assert cascade(gt, [rect(0, 4.9, "A")]).total.matched == 0
    r = cascade(gt, [rect(0, 10, "A"), rect(0, 9, "A")])
    assert (r.total.matched, r.wem.precision) == (1, 0.5)
    assert cascade(gt, [rect(0, 9, "A")], iou_threshold=0.95).total.matched == 0


def test_dont_care_as_icdar() -> None:
    gt = [rect(0, 10, "###"), rect(50, 60, "OK")]
    r = cascade(gt, [rect(0, 10, "junk"), rect(50, 60, "OK")])
    assert r.total == CascadeCounts(1, 1, 1, 1, 1.0)


def test_text_options_and_empty_texts() -> None:
    assert cascade([rect(0, 10, "Exit!")], [rect(0, 10, "EXIT")], case_sensitive=False,
                   strip_special=True).wem.hmean == 1.0
    assert cascade([rect(0, 10, "")], [rect(0, 10, "")]).total.gt_boxes == 0


def test_edit_distance() -> None:
    assert [edit_distance(a, b) for a, b in [("", "abc"), ("kitten", "sitting"), ("abc", "abc"), ("ab", "ba")]] == [
        3, 3, 0, 2]


def test_streaming_and_bad_arguments() -> None:
    m = Cascade()
    m.update([rect(0, 10, "A")], None, name="x")
    r = m.compute()
    assert (r.missing_predictions, r.detection.recall, r.detection.precision) == (("x",), 0.0, 0.0)
    with pytest.raises(InvalidInput, match="image 'x' was already added"):
        m.update([], [], name="x")
    with pytest.raises(InvalidInput, match=r"^iou_threshold must be a number with 0 < iou_threshold <= 1; got 0$"):
        Cascade(iou_threshold=0)
    with pytest.raises(InvalidInput, match=r"1 prediction\(s\) have no ground truth: b"):
        cascade({}, {"b": []})


def _write(folder: Path, files: dict[str, str | None]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        if text is None:  # a folder
            (folder / name).mkdir()
        else:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_evaluate_dirs_shows_where_the_metrics_disagree(tmp_path: Path) -> None:
    gt = _write(tmp_path / "gt", {"a.txt": "0 0 90 0 90 10 0 10##::Riverside\n", "b.txt": "0 0 9 0 9 9 0 9##::OK\n"})
    pred = _write(tmp_path / "pred", {"a.txt": "0,0,50,0,50,10,0,10,River\n50,0,90,0,90,10,50,10,side\n"})
    with pytest.warns(UserWarning, match=r"1 GT file\(s\) in .* have no prediction file in .*, scored as all "
                                         r"missed: b.txt"):
        ev = evaluate_dirs(gt, pred, metric="all")
    assert ev.missing_predictions == ("b.txt",) and ev.n_images == 2
    assert ev.popeval is not None and ev.cascade is not None
    assert (ev.popeval.popped, ev.popeval.gt_chars, ev.popeval.precision) == (9, 11, 1.0)
    assert ev.cascade.wem.recall == 0.0
    assert set(ev.to_dict()) == {"n_images", "missing_predictions", "popeval", "cascade"}


def test_evaluate_dirs_errors(tmp_path: Path) -> None:
    gt = _write(tmp_path / "gt", {"a.txt": "0 0 9 0 9 9 0 9##::OK\n"})
    pred = _write(tmp_path / "pred", {"a.txt": "0 0 9 0 9 9 0 9##::OK\n", "z.txt": ""})
    with pytest.raises(InvalidInput, match=r"1 prediction file\(s\) in .*pred have no GT file in .*gt: z.txt; add "):
        evaluate_dirs(gt, pred)
    with pytest.raises(InvalidInput, match=r"^metric must be 'popeval', 'cascade' or 'all'; got 'iou'$"):
        evaluate_dirs(gt, gt, metric="iou")  # type: ignore[arg-type]
    # every option is checked before a file is read
    with pytest.raises(InvalidInput, match=r"^iou_threshold must be a number with 0 < iou_threshold <= 1; got 2$"):
        evaluate_dirs(tmp_path / "missing", gt, iou_threshold=2)
    with pytest.raises(InvalidInput, match=r"^fmt must be 'auto', 'reference', 'ic13', 'ic15' or 'polygon'; "
                                           r"got 'csv'$"):
        evaluate_dirs(tmp_path / "missing", gt, fmt="csv")  # type: ignore[arg-type]
    ev = evaluate_dirs(gt, gt, metric="cascade")
    assert ev.popeval is None and ev.cascade is not None and ev.cascade.wem.hmean == 1.0
    assert evaluate_dirs(gt, gt).cascade is None


def test_evaluate_dirs_takes_the_documented_formats_and_normalizations(tmp_path: Path) -> None:
    gt = _write(tmp_path / "gt", {"a.txt": '0,0,9,9,"OK"\n'})
    pred = _write(tmp_path / "pred", {"a.txt": "0,0,9,0,9,9,0,9,OK\n"})
    assert evaluate_dirs(gt, gt, fmt="ic13", normalization="NFC").popeval.hmean == 1.0  # type: ignore[union-attr]
    assert evaluate_dirs(pred, pred, fmt="ic15", normalization="NFKC").popeval.hmean == 1.0  # type: ignore[union-attr]
    for old in ("icdar2013", "icdar2015"):
        with pytest.raises(InvalidInput, match=rf"^fmt must be 'auto', 'reference', 'ic13', 'ic15' or 'polygon'; "
                                               rf"got '{old}'$"):
            evaluate_dirs(gt, pred, fmt=old)  # type: ignore[arg-type]
    for form in ("NFD", "NFKD"):
        with pytest.raises(InvalidInput, match=rf"^normalization must be None, 'NFC' or 'NFKC'; got '{form}'$"):
            evaluate_dirs(gt, pred, normalization=form)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match=rf"^normalization must be None, 'NFC' or 'NFKC'; got '{form}'$"):
            Cascade(normalization=form)  # type: ignore[arg-type]


@pytest.mark.parametrize(("gt_files", "pred_files", "found"), [
    ({}, {}, r"the GT folder .*gt holds no \*\.txt file \(it is empty\) and the prediction folder .*pred holds no "
             r"\*\.txt file \(it is empty\)"),
    ({"a.gt": "0 0 9 0 9 9 0 9##::OK\n", "b.gt": ""}, {"a.pred": ""},
     r"the GT folder .*gt holds no \*\.txt file \(found 2 other entries: a.gt, b.gt\) and the prediction folder "
     r".*pred holds no \*\.txt file \(found 1 other entry: a.pred\)"),
    ({"notes.md": "", "old.txt": None}, {"a.txt": "0 0 9 0 9 9 0 9##::OK\n"},
     r"the GT folder .*gt holds no \*\.txt file \(found 2 other entries: notes.md, old.txt/\) and the prediction "
     r"folder .*pred holds 1 \*\.txt file"),
])
def test_evaluating_no_image_is_an_error_not_a_perfect_score(tmp_path: Path, gt_files: dict[str, str],
                                                              pred_files: dict[str, str | None], found: str) -> None:
    gt = _write(tmp_path / "gt", gt_files)
    pred = _write(tmp_path / "pred", pred_files)
    with pytest.raises(InvalidInput, match=rf"^no image to evaluate: {found}; put one \*\.txt file per image in "
                                           r"each folder, paired by file name$"):
        evaluate_dirs(gt, pred, metric="all")


def test_scoring_no_image_is_an_error() -> None:
    with pytest.raises(InvalidInput, match=r"^no image to score: gt is an empty mapping; pass at least one image"):
        cascade({}, {})
