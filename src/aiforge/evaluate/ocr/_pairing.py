"""Feeding a streaming metric (PopEval, Cascade) the images of a whole evaluation, paired by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiforge.errors import InvalidInput
from aiforge.evaluate.ocr.formats import polygons


def score_images(metric: Any, gt: Mapping[str, Sequence[Any]] | Sequence[Any],
                 pred: Mapping[str, Sequence[Any]] | Sequence[Any]) -> Any:
    """Update ``metric`` with every image and return ``metric.compute()``.

    ``gt`` and ``pred`` are both one image's boxes, or both mappings of image name to boxes; a GT image without
    predictions is scored as all missed; a prediction without GT, or no image at all, is an error.
    """
    if not isinstance(gt, Mapping) and not isinstance(pred, Mapping):
        metric.update(gt, pred, name="0")
        return metric.compute()
    if not isinstance(gt, Mapping) or not isinstance(pred, Mapping):
        raise InvalidInput("gt and pred must both be mappings of image name to boxes, or both one image's boxes")
    extra = sorted(set(pred) - set(gt))
    if extra:
        raise InvalidInput(f"{len(extra)} prediction(s) have no ground truth: {', '.join(extra[:5])}; "
                           "add their GT files or remove the predictions")
    if not gt:  # no image is not a perfect score
        raise InvalidInput("no image to score: gt is an empty mapping; pass at least one image's boxes "
                           "(an image without text is an empty list)")
    # every polygon of the evaluation in one vectorised call: per image, the fixed cost of building them dominates
    polygons([box for boxes in (*gt.values(), *pred.values()) if boxes for box in boxes])
    for name in gt:
        metric.update(gt[name], pred.get(name), name=name)
    return metric.compute()
