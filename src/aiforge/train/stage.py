"""TRAIN as a stage: a job spec (a YAML file, or the spec itself), and whether to plan only or also build an image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from aiforge.stages import Cli, Stage, StageSpec
from aiforge.train.spec import TrainSpec

__all__ = ["STAGE", "TrainJobSpec"]


class TrainJobSpec(StageSpec):
    """A training job (see :func:`aiforge.train`) and how to submit it."""

    spec: Annotated[
        Path | TrainSpec,
        Field(description="The job spec (YAML): name, code, entrypoint, requirements, data, params, resources or "
              "deadline, runtime."),
        Cli(argument=True),
    ]
    plan: Annotated[
        bool, Field(description="Only calibrate and print the deadline plan (the fewest CPUs that meet it).")
    ] = False
    build: Annotated[bool, Field(description="runtime k8s: also build the image with podman or buildah.")] = False


def _run(job: TrainJobSpec, *, workspace: Any = None, progress: bool = False) -> Any:
    from aiforge.train._train import train

    return train(job.spec, workspace=workspace, progress=progress, plan_only=job.plan, build=job.build)


STAGE = Stage(
    name="train",
    spec=TrainJobSpec,
    run=_run,
    summary="Run a training job (code + data + resources or a deadline) and register the model it returns.",
    details="With a deadline, calibration runs on small fractions of the data pick the fewest CPUs that finish in "
    "time. The model is exported to ONNX, checked against the source model and registered; serve it with "
    "`aiforge serve up NAME@vN`.",
    example="aiforge train train.yaml --plan",
    command="train",
)
