"""``mode="reference"`` against the counts the authors' popEval.py computed on the shared data sets (official.json)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from aiforge.evaluate.ocr import PopEvalResult, popeval, read_dir

Scored = tuple[dict[str, Any], PopEvalResult]

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "popeval"  # the small sets, always present
SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "popeval"  # all sets, beside the repo
SETS = ["dev-ic15-mixed", "dev-ic13-splitmerge", "dev-ic15-sub", "dev-ic13-word-vs-char", "dev-kr-real"]


@functools.cache
def _score(name: str) -> Scored:
    folder = next((root / name for root in (SHIPPED, SHARED) if (root / name / "official.json").is_file()), None)
    if folder is None:
        pytest.skip(f"reference set {name} is neither in {SHIPPED} nor in {SHARED} (the shared data folder)")
    official = json.loads((folder / "official.json").read_text())
    return official, popeval(read_dir(folder / "gt"), read_dir(folder / "pred"))


@pytest.fixture(params=SETS)
def scored(request: pytest.FixtureRequest) -> Scored:
    return _score(request.param)


def test_every_image_has_the_reference_counts(scored: Scored) -> None:
    official, result = scored
    assert official["skipped"] == []
    assert sorted(result.images) == sorted(official["images"])
    for name, expected in official["images"].items():
        got = result.images[name]
        assert (got.popped, got.pred_chars, got.gt_chars) == (
            expected["removed"], expected["pred_chars"], expected["gt_chars"]), name
        assert got.recall == expected["recall"], name
        if expected["pred_chars"]:
            assert got.precision == expected["precision"], name


def test_totals_are_the_reference_totals(scored: Scored) -> None:
    official, result = scored
    total = official["total"]
    assert (result.popped, result.pred_chars, result.gt_chars) == (
        total["removed"], total["pred_chars"], total["gt_chars"])
    assert result.precision == total["precision"]
    assert result.recall == total["recall"]
    assert result.hmean == pytest.approx(total["hmean"], rel=1e-15)
    assert result.missing_predictions == ()


def test_split_and_merge_set_scores_one_but_has_splits_and_merges() -> None:
    _, result = _score("dev-ic13-splitmerge")
    assert (result.precision, result.recall, result.hmean) == (1.0, 1.0, 1.0)
    assert result.splits > 0
    assert result.merges > 0


def test_korean_real_set_matches_the_readme_figures() -> None:
    _, r = _score("dev-kr-real")
    assert (round(r.precision, 5), round(r.recall, 5), round(r.hmean, 5)) == (0.93395, 0.92702, 0.93047)
