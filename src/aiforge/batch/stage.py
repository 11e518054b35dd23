"""BATCH as a stage: its spec (a feature spec and where to run it), and the run that writes the features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from aiforge.batch.spec import BatchSpec
from aiforge.stages import Cli, EngineChoice, SparkMaster, Stage, StageSpec, calls

__all__ = ["STAGE", "BatchJobSpec"]


class BatchJobSpec(StageSpec):
    """A feature spec (a YAML file, or the spec itself) and the engine to run it on (see :func:`aiforge.batch`)."""

    spec: Annotated[
        Path | BatchSpec,
        Field(description="The feature spec (YAML): input, drop rules, features, split, output."),
        Cli(argument=True),
    ]
    engine: Annotated[EngineChoice, Field(description="Where the job runs.")] = "local"
    master: SparkMaster = None
    sample: Annotated[
        int | None, Field(description="Use only the first N rows of the input snapshot.", ge=1), Cli(min=1)
    ] = None


STAGE = Stage(
    name="batch",
    spec=BatchJobSpec,
    run=calls("aiforge.batch._batch:batch"),
    summary="Build a feature snapshot from a spec: drop bad rows, fit on the train split, transform every row.",
    details="The fitted statistics are saved as transform.json beside the features, for serving.",
    example="aiforge batch features.yaml --engine spark",
    command="batch",
)
