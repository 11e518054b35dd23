"""``evaluate_dirs``: score a folder of predictions against a folder of ground truth (``aiforge ocr-eval``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiforge import reprs
from aiforge.errors import InvalidInput
from aiforge.evaluate.ocr._text import Normalization
from aiforge.evaluate.ocr.cascade import Cascade, CascadeResult, cascade
from aiforge.evaluate.ocr.formats import FORMATS, Format, read_dir
from aiforge.evaluate.ocr.popeval import Mode, PopEval, PopEvalResult, Ties, popeval
from aiforge.validation import Options, validate_params

__all__ = ["OCREvaluation", "evaluate_dirs"]

Metric = Literal["popeval", "cascade", "all"]
_SUFFIX = ".txt"  # read_dir's default: the suffix of an OCR file
# every option is checked before any file is read
_CONSTRAINTS: dict[str, list[Any]] = {
    "metric": [Options("popeval", "cascade", "all")],
    "fmt": [Options(*FORMATS)],
    **PopEval._parameter_constraints,
    **Cascade._parameter_constraints,
}


@dataclass(frozen=True)
class OCREvaluation:
    """What :func:`evaluate_dirs` found: the requested results (None when not requested) and the missing files."""

    popeval: PopEvalResult | None
    cascade: CascadeResult | None
    missing_predictions: tuple[str, ...]
    n_images: int

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        out: dict[str, object] = {"n_images": self.n_images, "missing_predictions": list(self.missing_predictions)}
        if self.popeval is not None:
            out["popeval"] = self.popeval.to_dict()
        if self.cascade is not None:
            out["cascade"] = self.cascade.to_dict()
        return out

    def _repr_html_(self) -> str:
        """A compact summary for Jupyter: precision, recall and H-mean of each metric computed."""
        scores: list[tuple[str, float, float, float]] = []
        if self.popeval is not None:
            scores.append(("PopEval", self.popeval.precision, self.popeval.recall, self.popeval.hmean))
        if self.cascade is not None:
            for name, s in (("detection (IoU)", self.cascade.detection), ("WEM", self.cascade.wem),
                            ("1-NED", self.cascade.ned)):
                scores.append((name, s.precision, s.recall, s.hmean))
        missing = self.missing_predictions
        facts = [("images", self.n_images),
                 ("missing predictions", f"{len(missing):,}" + (f": {reprs.listing(missing, 5)}" if missing else ""))]
        table = reprs.table(("metric", "precision", "recall", "H-mean"), scores)
        return reprs.summary(f"OCR evaluation of {self.n_images:,} images", facts, table)


def evaluate_dirs(gt_dir: str | Path, pred_dir: str | Path, *, metric: Metric = "popeval", fmt: Format = "auto",
                  mode: Mode = "reference", ties: Ties | None = None, positive_area: bool | None = None,
                  ordered: bool = False, case_sensitive: bool = True, normalization: Normalization = None,
                  strip_special: bool = False, iou_threshold: float = 0.5,
                  dont_care: str | None = "###") -> OCREvaluation:
    """Evaluate the prediction files in ``pred_dir`` against the GT files of the same name in ``gt_dir``.

    Parameters
    ----------
    gt_dir, pred_dir : str or Path
        Folders of ``*.txt`` files, one per image, paired by file name.
    metric : {"popeval", "cascade", "all"}, default "popeval"
    fmt : {"auto", "reference", "ic13", "ic15", "polygon"}, default "auto"
        Line format of both folders (see :mod:`aiforge.evaluate.ocr.formats`).
    mode, ties, positive_area, ordered
        PopEval options (see :func:`~aiforge.evaluate.ocr.popeval`).
    case_sensitive, normalization, strip_special, dont_care
        Text options shared by both metrics.
    iou_threshold : float, default 0.5
        Cascade matching threshold.

    Returns
    -------
    OCREvaluation

    Raises
    ------
    InvalidInput
        A malformed line (the message names file and line), an unknown option, prediction files without GT, or no
        GT file at all (zero images is not a perfect score: the message says what each folder holds).
    SourceError
        A folder or file cannot be read.

    Warns
    -----
    UserWarning
        For GT files without a prediction file; they are scored as all missed (never skipped) and listed in
        ``missing_predictions``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for side, text in (("gt", "Riverside"), ("pred", "Riverside")):
    ...     (root / side).mkdir()
    ...     _ = (root / side / "img_1.txt").write_text(f"0 0 90 0 90 10 0 10##::{text}\\n")
    >>> ev = evaluate_dirs(root / "gt", root / "pred", metric="all")
    >>> ev.popeval.hmean, ev.cascade.wem.hmean
    (1.0, 1.0)
    """
    validate_params({"metric": metric, "fmt": fmt, "mode": mode, "ties": ties, "positive_area": positive_area,
                     "ordered": ordered, "case_sensitive": case_sensitive, "normalization": normalization,
                     "strip_special": strip_special, "iou_threshold": iou_threshold, "dont_care": dont_care},
                    _CONSTRAINTS)
    gt = read_dir(gt_dir, fmt=fmt)
    pred = read_dir(pred_dir, fmt=fmt)
    if not gt:
        raise InvalidInput(f"no image to evaluate: the GT folder {gt_dir} {_holds(Path(gt_dir), gt)} and the "
                           f"prediction folder {pred_dir} {_holds(Path(pred_dir), pred)}; put one *{_SUFFIX} file "
                           "per image in each folder, paired by file name")
    extra = sorted(set(pred) - set(gt))
    if extra:
        raise InvalidInput(f"{len(extra)} prediction file(s) in {pred_dir} have no GT file in {gt_dir}: "
                           f"{', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}; add the GT or remove them")
    missing = tuple(name for name in gt if name not in pred)
    if missing:
        warnings.warn(f"{len(missing)} GT file(s) in {gt_dir} have no prediction file in {pred_dir}, scored as all "
                      f"missed: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}",
                      UserWarning, stacklevel=2)
    pop = cas = None
    if metric in ("popeval", "all"):
        pop = popeval(gt, pred, mode=mode, ties=ties, positive_area=positive_area, ordered=ordered,
                      case_sensitive=case_sensitive, normalization=normalization, strip_special=strip_special,
                      dont_care=dont_care)
    if metric in ("cascade", "all"):
        cas = cascade(gt, pred, iou_threshold=iou_threshold, case_sensitive=case_sensitive,
                      normalization=normalization, strip_special=strip_special, dont_care=dont_care)
    return OCREvaluation(popeval=pop, cascade=cas, missing_predictions=missing, n_images=len(gt))


def _holds(folder: Path, read: dict[str, Any]) -> str:
    """What a folder holds, for an error: its number of OCR files, or when none, what else is there."""
    if read:
        return f"holds {len(read)} *{_SUFFIX} file{'s' if len(read) > 1 else ''}"
    try:
        others = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:  # listed a moment ago by read_dir; the error is about the images, not this listing
        return f"holds no *{_SUFFIX} file"
    if not others:
        return f"holds no *{_SUFFIX} file (it is empty)"
    names = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
    return f"holds no *{_SUFFIX} file (found {len(others)} other {'entry' if len(others) == 1 else 'entries'}: {names})"
