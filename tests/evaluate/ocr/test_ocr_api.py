"""The public names of ``aiforge.evaluate.ocr`` are pinned; each has a docstring and claims its public module."""

from __future__ import annotations

import aiforge.evaluate.ocr


def test_public_names_are_pinned() -> None:
    assert sorted(aiforge.evaluate.ocr.__all__) == sorted([
        "Box", "Cascade", "CascadeCounts", "CascadeResult", "CascadeScores", "ImageCounts", "OCREvaluation",
        "PopEval", "PopEvalResult", "cascade", "evaluate_dirs", "parse_line", "popeval", "read_boxes", "read_dir",
    ])
    for name in aiforge.evaluate.ocr.__all__:
        obj = getattr(aiforge.evaluate.ocr, name)
        assert obj.__module__.startswith("aiforge.evaluate.ocr."), name
        assert obj.__doc__, f"{name} has no docstring"
