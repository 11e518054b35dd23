"""EVALUATE: task metrics. OCR (PopEval and the IoU cascade) lives in :mod:`aiforge.evaluate.ocr`."""

from __future__ import annotations

__all__: list[str] = []
