"""CLEAN as a stage: its spec, and the run that writes a snapshot with corrected labels and a report."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from aiforge.stages import Cli, EngineChoice, SparkMaster, Stage, StageSpec

__all__ = ["STAGE", "CleanSpec"]


class CleanSpec(StageSpec):
    """Which snapshot and label to clean, and how (see :func:`aiforge.clean.clean`)."""

    snapshot: Annotated[str, Field(description="The snapshot to clean: NAME or NAME@vN."), Cli(argument=True)]
    label: Annotated[str, Field(description="The label column to correct."), Cli(("--label", "-l"))]
    features: Annotated[
        list[str] | None,
        Field(description="Comma-separated feature columns [default: numeric or vector, not ids]."),
        Cli(("--features", "-f"), split=True),
    ] = None
    impute: Annotated[
        Literal["median", "mean", "most_frequent", "none"],
        Field(description="Fill missing feature values for the checkers (the snapshot keeps them), or none: refuse."),
    ] = "median"
    method: Annotated[Literal["pico", "vote", "split"], Field(description="pico, or the simpler vote/split.")] = "pico"
    checker: Annotated[
        str | None, Field(description="knn (default), logreg, forest, hgb, nb, ensemble or text.")
    ] = None
    out: Annotated[
        str | None, Field(description="Output snapshot name [default: NAME_clean]."), Cli(("--out", "-o"))
    ] = None
    seed: Annotated[int, Field(description="Seed of the splits.")] = 0
    n_jobs: Annotated[
        int, Field(description="Processes training checkers.", ge=1), Cli(("--n-jobs", "-j"), min=1)
    ] = 2
    engine: Annotated[
        EngineChoice, Field(description="Where PICO trains its checkers: processes here, or Spark tasks.")
    ] = "local"
    master: SparkMaster = None


def _run(spec: CleanSpec, *, workspace: Any = None, progress: bool = False) -> Any:
    from aiforge.clean._clean import clean

    fields = spec.model_dump()
    fields["impute"] = None if fields["impute"] == "none" else fields["impute"]
    return clean(fields.pop("snapshot"), **fields, workspace=workspace, progress=progress)


STAGE = Stage(
    name="clean",
    spec=CleanSpec,
    run=_run,
    summary="Find and correct noisy labels; write a new snapshot (given labels kept in label_given) and a report.",
    example="aiforge clean digits --label label --method pico",
    command="clean",
)
