"""EVALUATE for OCR: PopEval (character-level end-to-end evaluation) and the classic IoU cascade (WEM, 1-NED).

::

    from aiforge.evaluate.ocr import evaluate_dirs
    report = evaluate_dirs("gt/", "pred/", metric="all")
    report.popeval.hmean, report.cascade.wem.hmean
"""

from __future__ import annotations

from aiforge.evaluate.ocr.cascade import Cascade, CascadeCounts, CascadeResult, CascadeScores, cascade
from aiforge.evaluate.ocr.evaluate import OCREvaluation, evaluate_dirs
from aiforge.evaluate.ocr.formats import Box, parse_line, read_boxes, read_dir
from aiforge.evaluate.ocr.popeval import ImageCounts, PopEval, PopEvalResult, popeval

__all__ = [
    "Box",
    "Cascade",
    "CascadeCounts",
    "CascadeResult",
    "CascadeScores",
    "ImageCounts",
    "OCREvaluation",
    "PopEval",
    "PopEvalResult",
    "cascade",
    "evaluate_dirs",
    "parse_line",
    "popeval",
    "read_boxes",
    "read_dir",
]
