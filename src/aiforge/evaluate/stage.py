"""EVALUATE as a stage: OCR predictions scored against ground truth (PopEval and the IoU cascade)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from aiforge.stages import Cli, Stage, StageSpec

__all__ = ["STAGE", "OcrEvalSpec"]


class OcrEvalSpec(StageSpec):
    """Two folders of OCR files and how to compare them (see :func:`aiforge.evaluate.ocr.evaluate_dirs`)."""

    gt_dir: Annotated[Path, Field(description="Folder of ground-truth files, one per image."), Cli(argument=True)]
    pred_dir: Annotated[
        Path, Field(description="Folder of prediction files, paired with the GT by file name."), Cli(argument=True)
    ]
    metric: Annotated[
        Literal["popeval", "cascade", "all"], Field(description="PopEval, the IoU cascade, or both.")
    ] = "popeval"
    mode: Annotated[
        Literal["reference", "paper"],
        Field(description="reference (the authors' popEval.py, exactly) or paper (ties 1/n, area>0)."),
    ] = "reference"
    fmt: Annotated[
        Literal["auto", "reference", "ic13", "ic15", "polygon"],
        Field(description="Line format of both folders; auto tells the other four apart line by line."),
        Cli(("--format",)),
    ] = "auto"
    ignore_case: Annotated[bool, Field(description="Compare characters case-insensitively.")] = False
    normalize: Annotated[
        Literal["NFC", "NFKC"] | None, Field(description="Unicode normalisation before comparing: NFC or NFKC.")
    ] = None
    strip_special: Annotated[bool, Field(description="Drop ICDAR's special characters before comparing.")] = False
    ordered: Annotated[bool, Field(description="Order-aware popping ('CBA' no longer matches 'ABC').")] = False
    per_image: Annotated[bool, Field(description="Also print the counts of every image.")] = False


def _run(spec: OcrEvalSpec, *, workspace: Any = None, progress: bool = False) -> Any:
    from aiforge.evaluate.ocr import evaluate_dirs

    return evaluate_dirs(
        spec.gt_dir, spec.pred_dir, metric=spec.metric, fmt=spec.fmt, mode=spec.mode, ordered=spec.ordered,
        case_sensitive=not spec.ignore_case, normalization=spec.normalize, strip_special=spec.strip_special,
    )


STAGE = Stage(
    name="evaluate",
    spec=OcrEvalSpec,
    run=_run,
    summary="Score OCR predictions end to end: PopEval (character level) and/or the IoU >= 0.5 cascade (WEM, "
    "1-NED).",
    example="aiforge ocr-eval gt/ pred/ --metric all --per-image",
    command="ocr-eval",
)
