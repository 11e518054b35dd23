"""The TRAIN job spec: code, entrypoint, requirements, data, params, resources or a deadline, and where it runs.

A job is written once, in YAML or as a :class:`TrainSpec`, and runs the same way on every runtime::

    name: digits                    # the model it registers (and the job's name in `aiforge runs list`)
    code: ./trainer                 # a folder, or {git: URL, rev: main}
    entrypoint: train.py:fit        # "file.py:function", "package.module:function" or a script "train.py"
    requirements: [scikit-learn]    # or a lock file in the code folder: requirements.lock
    data: {features: digits_features}   # snapshot / feature-snapshot references, pinned to versions at submit
    params: {C: 1.0}
    resources: {cpus: 1.5, memory: 2GiB}
    deadline: "0 3 * * *"           # or 2h: the planner picks the fewest CPUs that finish in time
    runtime: local                  # or {kind: ray, address: http://127.0.0.1:8265} or {kind: k8s, image: ...}

Relative paths (``code``, a lock file) are read from the YAML file's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aiforge import yamlio
from aiforge.errors import InvalidInput
from aiforge.stages import StageSpec

__all__ = ["GitCode", "ResourceSpec", "RuntimeSpec", "TrainSpec", "load_spec", "parse_memory"]

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "t": 1000**4,
          "ti": 1024**4, "tib": 1024**4}
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_ENTRY = re.compile(r"^(?P<target>[^:]+?)(?::(?P<function>[A-Za-z_][A-Za-z0-9_]*))?$")


def parse_memory(value: int | float | str) -> int:
    """Bytes from ``2GiB``, ``512Mi``, ``1.5G``, ``300MB`` or a number of bytes.

    Examples
    --------
    >>> parse_memory("512Mi"), parse_memory("2GB"), parse_memory(2**30)
    (536870912, 2000000000, 1073741824)
    """
    if isinstance(value, bool):
        raise InvalidInput(f"memory must be a size such as 2GiB or 512Mi; got {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        match = _MEMORY.fullmatch(str(value))
        if match is None or match[2].lower() not in _UNITS:
            raise InvalidInput(f"memory must be a size such as 2GiB, 512Mi or 1.5G; got {value!r}")
        number, unit = float(match[1]), match[2].lower()
    size = int(number * _UNITS[unit])
    if size < 16 * 1024**2:
        raise InvalidInput(f"memory {value!r} is less than 16 MiB, too little for a Python job; give at least 64Mi")
    return size


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GitCode(_Block):
    """Code from a git repository at one revision (a URL or a local path)."""

    git: Annotated[str, Field(description="Repository URL or path.")]
    rev: Annotated[str, Field(description="Branch, tag or commit.")] = "HEAD"
    subdir: Annotated[str | None, Field(description="Folder inside the repository that holds the code.")] = None


class ResourceSpec(_Block):
    """What the job may use. With a ``deadline``, ``cpus`` is the most the planner may choose."""

    cpus: Annotated[float | None, Field(gt=0, description="CPU quota: 0.25, 1, 1.5... (a real cgroup quota).")] = None
    memory: Annotated[int | None, Field(description="Memory limit: 2GiB, 512Mi... (the job ends at the limit).")] = None
    gpus: Annotated[int, Field(ge=0, description="Whole GPUs.")] = 0

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value)


class RuntimeSpec(_Block):
    """Where the job runs and that runtime's settings."""

    kind: Annotated[Literal["local", "ray", "k8s"], Field(description="local, ray or k8s.")] = "local"
    address: Annotated[str | None, Field(description="ray: the cluster's dashboard address.")] = None
    image: Annotated[str | None, Field(description="k8s: the image to run.")] = None
    pvc: Annotated[str | None, Field(description="k8s: the PersistentVolumeClaim that holds AIFORGE_HOME.")] = None
    namespace: Annotated[str | None, Field(description="k8s: the namespace of the Job.")] = None
    out: Annotated[Path | None, Field(description="k8s: where to write the manifest and build context.")] = None


class TrainSpec(StageSpec):
    """One training job (see the module docstring for a YAML example)."""

    name: Annotated[str, Field(description="The model to register and the job's name.")]
    code: Annotated[Path | GitCode, Field(description="A code folder, or {git: URL, rev: REV}.")]
    entrypoint: Annotated[
        str, Field(description="'file.py:function', 'package.module:function', or a script 'train.py'.")
    ]
    requirements: Annotated[
        list[str] | Path, Field(description="Packages to install (pip lines), or a lock file in the code folder.")
    ] = Field(default_factory=list)
    data: Annotated[
        dict[str, str], Field(description="Name -> snapshot or feature-snapshot reference (pinned at submit).")
    ] = Field(default_factory=dict)
    params: Annotated[dict[str, Any], Field(description="Passed to the code as ctx.params.")] = Field(
        default_factory=dict
    )
    resources: ResourceSpec = ResourceSpec()
    deadline: Annotated[
        str | float | None,
        Field(description="When the model must be ready: a duration (2h, 30m) or the cron line of the next refresh."),
    ] = None
    reserve: Annotated[
        str | float, Field(description="Time kept free before the deadline to validate and deploy (a duration).")
    ] = "0s"
    margin: Annotated[float, Field(ge=0, le=2, description="Safety margin on the planner's prediction.")] = 0.1
    timeout: Annotated[
        str | float | None, Field(description="Kill the job after this long (a duration); default never.")
    ] = None
    runtime: RuntimeSpec = RuntimeSpec()
    register_model: Annotated[
        bool, Field(description="Register the model the job saves (false: a job that only reports).")
    ] = True
    aliases: Annotated[
        list[str], Field(description="Aliases to give the registered version (candidate...).")
    ] = Field(default_factory=list)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):  # a list of refs: each named by its snapshot name
            return {str(ref).split("@", 1)[0]: ref for ref in value}
        return value

    @field_validator("runtime", mode="before")
    @classmethod
    def _runtime(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if _ENTRY.match(value.strip()) is None:
            raise ValueError("expected 'file.py:function', 'package.module:function' or 'script.py'")
        return value.strip()

    @model_validator(mode="after")
    def _gpus_local(self) -> TrainSpec:
        if self.runtime.kind != "ray" and self.runtime.address:
            raise ValueError("runtime.address is for kind: ray")
        return self

    def entry(self) -> tuple[str, str | None]:
        """``(target, function)``: ``("train.py", "fit")``, ``("pkg.mod", "fit")`` or ``("train.py", None)``."""
        match = _ENTRY.match(self.entrypoint)
        assert match is not None  # checked by the validator
        return match["target"], match["function"]


def load_spec(spec: TrainSpec | Mapping[str, Any] | str | os.PathLike[str]) -> TrainSpec:
    """A :class:`TrainSpec` from a YAML file, a mapping or a spec; relative paths resolve against the YAML's folder.

    Raises
    ------
    InvalidInput
        The file cannot be read, or a key is unknown or wrong (the message names it, e.g.
        ``train spec: resources.cpu: unknown key``).
    """
    from aiforge import stages

    if isinstance(spec, TrainSpec):
        return spec
    base = Path.cwd()
    if isinstance(spec, str | os.PathLike):
        path = Path(spec).expanduser()
        payload = yamlio.read_yaml(path, "train spec")
        base = path.resolve().parent
    else:
        payload = dict(spec)
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"train spec must be a mapping of keys (name, code, entrypoint...); got {payload!r}")
    payload = dict(payload)
    code = payload.get("code")
    if isinstance(code, str | os.PathLike):
        payload["code"] = _resolve(base, code)
    requirements = payload.get("requirements")
    if isinstance(requirements, str | os.PathLike):
        payload["requirements"] = Path(requirements)  # relative to the code folder; read when the code is frozen
    return stages.validate(TrainSpec, payload, what="train spec")


def _resolve(base: Path, value: str | os.PathLike[str]) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)
