"""The public names of ``aiforge.ocr`` are pinned; each has a docstring and claims its public module."""

from __future__ import annotations

import aiforge.ocr


def test_public_names_are_pinned() -> None:
    assert sorted(aiforge.ocr.__all__) == sorted([
        "Box", "Cascade", "CascadeCounts", "CascadeResult", "CascadeScores", "ImageCounts", "OCREvaluation",
        "PopEval", "PopEvalResult", "cascade", "evaluate_dirs", "parse_line", "popeval", "read_boxes", "read_dir",
    ])
    for name in aiforge.ocr.__all__:
        obj = getattr(aiforge.ocr, name)
        assert obj.__module__.startswith("aiforge.ocr."), name
        assert obj.__doc__, f"{name} has no docstring"
