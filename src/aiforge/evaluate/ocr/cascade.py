"""The classic end-to-end OCR cascade: IoU box matching, then word exact match (WEM) and 1-NED on the matched pairs.

Each GT box is matched to at most one prediction and back (IoU >= ``iou_threshold``, greedily by decreasing IoU).
Don't-care handling follows ICDAR: GT boxes whose text is ``###`` are not counted, and neither is any prediction
lying more than half (of its own area) inside one. Per image and in total:

- detection: P = matched / predictions, R = matched / GT boxes;
- WEM: the same with only the matched pairs whose texts are equal;
- 1-NED: the same with each matched pair weighted 1 - edit distance / length of the longer text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, ClassVar

import numpy as np
import shapely

from aiforge.errors import InvalidInput
from aiforge.evaluate.ocr._geometry import outside_dont_care
from aiforge.evaluate.ocr._pairing import score_images
from aiforge.evaluate.ocr._text import TEXT_OPTIONS, Normalization, edit_distance, normalize_text
from aiforge.evaluate.ocr.formats import Box, polygons
from aiforge.validation import Interval, validate_params

__all__ = ["Cascade", "CascadeCounts", "CascadeResult", "CascadeScores", "cascade"]


@dataclass(frozen=True)
class CascadeScores:
    """Precision, recall and H-mean of one cascade stage."""

    precision: float
    recall: float
    hmean: float

    @classmethod
    def of(cls, hits: float, n_pred: int, n_gt: int) -> CascadeScores:
        """Scores from a hit count (1.0 for an empty side with nothing to find, as in PopEval)."""
        p = hits / n_pred if n_pred else (1.0 if n_gt == 0 else 0.0)
        r = hits / n_gt if n_gt else 1.0
        return cls(p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0)


@dataclass(frozen=True)
class CascadeCounts:
    """One image's (or the total) cascade counts: boxes, matched pairs, exact matches and the sum of 1-NED."""

    gt_boxes: int
    pred_boxes: int
    matched: int
    exact: int
    ned_sum: float


@dataclass(frozen=True)
class CascadeResult:
    """Cascade scores (detection, WEM, 1-NED) with totals and per-image counts."""

    detection: CascadeScores
    wem: CascadeScores
    ned: CascadeScores
    total: CascadeCounts
    images: dict[str, CascadeCounts] = field(repr=False)
    missing_predictions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        def scores(s: CascadeScores) -> dict[str, float]:
            return {"precision": s.precision, "recall": s.recall, "hmean": s.hmean}

        def counts(c: CascadeCounts) -> dict[str, float]:
            return {"gt_boxes": c.gt_boxes, "pred_boxes": c.pred_boxes, "matched": c.matched, "exact": c.exact,
                    "ned_sum": c.ned_sum}

        return {"detection": scores(self.detection), "wem": scores(self.wem), "ned": scores(self.ned),
                "total": counts(self.total), "missing_predictions": list(self.missing_predictions),
                "images": {n: counts(c) for n, c in self.images.items()}}


def _score_image(gt: Sequence[Box], pred: Sequence[Box], *, iou_threshold: float, dont_care: str | None,
                 norm: dict[str, object]) -> CascadeCounts:
    gt = [b for b in gt if b.text]
    care = [b for b in gt if b.text != dont_care]
    dont = [b for b in gt if b.text == dont_care]
    pred = outside_dont_care(dont, pred)
    matched = exact = 0
    ned_sum = 0.0
    if care and pred:
        ggeo = polygons(care)
        pgeo = polygons(pred)
        gi, pj = shapely.STRtree(pgeo).query(ggeo, predicate="intersects")
        inter = shapely.area(shapely.intersection(ggeo[gi], pgeo[pj]))
        union = shapely.area(ggeo[gi]) + shapely.area(pgeo[pj]) - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = sorted(range(len(iou)), key=lambda k: (-iou[k], gi[k], pj[k]))
        used_g: set[int] = set()
        used_p: set[int] = set()
        for k in order:
            if iou[k] < iou_threshold:
                break
            g, p = int(gi[k]), int(pj[k])
            if g in used_g or p in used_p:
                continue
            used_g.add(g)
            used_p.add(p)
            matched += 1
            a = normalize_text(care[g].text, **norm)  # type: ignore[arg-type]
            b = normalize_text(pred[p].text, **norm)  # type: ignore[arg-type]
            exact += a == b
            longest = max(len(a), len(b))
            ned_sum += 1.0 - edit_distance(a, b) / longest if longest else 1.0
    return CascadeCounts(len(care), len(pred), matched, exact, ned_sum)


class Cascade:
    """Streaming cascade: :meth:`update` per image, :meth:`compute` for the scores.

    Parameters
    ----------
    iou_threshold, case_sensitive, normalization, strip_special, dont_care
        As in :func:`cascade`.

    Examples
    --------
    >>> from aiforge.evaluate.ocr import Box
    >>> m = Cascade()
    >>> square = ((0, 0), (10, 0), (10, 5), (0, 5))
    >>> _ = m.update([Box(square, "EXIT")], [Box(square, "EXlT")])
    >>> m.compute().ned.recall
    0.75
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "iou_threshold": [Interval(Real, 0, 1, closed="right")],
        **TEXT_OPTIONS,
    }

    def __init__(self, *, iou_threshold: float = 0.5, case_sensitive: bool = True,
                 normalization: Normalization = None, strip_special: bool = False,
                 dont_care: str | None = "###") -> None:
        validate_params({"iou_threshold": iou_threshold, "case_sensitive": case_sensitive,
                         "normalization": normalization, "strip_special": strip_special, "dont_care": dont_care},
                        self._parameter_constraints)
        self.iou_threshold = iou_threshold
        self.dont_care = dont_care
        self._norm: dict[str, object] = {"case_sensitive": case_sensitive, "normalization": normalization,
                                         "strip_special": strip_special}
        self.images: dict[str, CascadeCounts] = {}
        self._missing: list[str] = []

    def update(self, gt: Sequence[Box], pred: Sequence[Box] | None, *, name: str | None = None) -> CascadeCounts:
        """Score one image (``pred=None``: no prediction file, every GT box missed) and add it to the totals."""
        name = str(len(self.images)) if name is None else name
        if name in self.images:
            raise InvalidInput(f"image {name!r} was already added to this Cascade; give each image a unique name")
        counts = _score_image(gt, pred or [], iou_threshold=self.iou_threshold, dont_care=self.dont_care,
                              norm=self._norm)
        if pred is None:
            self._missing.append(name)
        self.images[name] = counts
        return counts

    def compute(self) -> CascadeResult:
        """Micro-averaged scores over every image added so far."""
        c = self.images.values()
        total = CascadeCounts(sum(x.gt_boxes for x in c), sum(x.pred_boxes for x in c), sum(x.matched for x in c),
                              sum(x.exact for x in c), sum(x.ned_sum for x in c))
        n_pred, n_gt = total.pred_boxes, total.gt_boxes
        return CascadeResult(
            detection=CascadeScores.of(total.matched, n_pred, n_gt), wem=CascadeScores.of(total.exact, n_pred, n_gt),
            ned=CascadeScores.of(total.ned_sum, n_pred, n_gt), total=total, images=dict(self.images),
            missing_predictions=tuple(self._missing),
        )


def cascade(gt: Mapping[str, Sequence[Box]] | Sequence[Box], pred: Mapping[str, Sequence[Box]] | Sequence[Box], *,
            iou_threshold: float = 0.5, case_sensitive: bool = True, normalization: Normalization = None,
            strip_special: bool = False, dont_care: str | None = "###") -> CascadeResult:
    """End-to-end scores of the classic cascade: IoU matching, then WEM and 1-NED.

    Parameters
    ----------
    gt, pred : mapping of str to sequence of Box, or sequence of Box
        Per image name, or one image's boxes (as in :func:`~aiforge.evaluate.ocr.popeval`).
    iou_threshold : float, default 0.5
        A pair matches when IoU >= this.
    case_sensitive, normalization, strip_special
        Text options applied before comparing matched texts (see :func:`~aiforge.evaluate.ocr.popeval`).
    dont_care : str or None, default "###"
        GT text of don't-care regions.

    Returns
    -------
    CascadeResult

    Examples
    --------
    A split word gets no credit from the cascade:

    >>> from aiforge.evaluate.ocr import Box
    >>> def rect(x0, x1, text):
    ...     return Box(((x0, 0), (x1, 0), (x1, 10), (x0, 10)), text)
    >>> r = cascade([rect(0, 90, "Riverside")], [rect(0, 50, "River"), rect(50, 90, "side")])
    >>> r.wem.recall, r.detection.recall
    (0.0, 1.0)
    >>> round(r.ned.recall, 3)
    0.556
    """
    metric = Cascade(iou_threshold=iou_threshold, case_sensitive=case_sensitive, normalization=normalization,
                     strip_special=strip_special, dont_care=dont_care)
    return score_images(metric, gt, pred)
