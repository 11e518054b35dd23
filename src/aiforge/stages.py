"""The stage contract: every stage of the platform is a typed spec (pydantic) and one ``run``.

A stage declares, in its folder's ``stage.py``, a :class:`StageSpec` subclass (the fields a user sets, with their
types, defaults, limits and help) and a :class:`Stage` that runs one spec and returns what it wrote (a snapshot, a
report, scores). The CLI's stage commands and each stage's JSON Schema are generated from this registry, and so
will be the REST API and the pipeline editor's palette; adding a stage is one ``stage.py`` and one line in
:data:`BUILTIN`::

    >>> from aiforge import stages
    >>> stages.names()
    ['dump', 'analyze', 'clean', 'batch', 'train', 'evaluate']
    >>> stages.get("dump").json_schema()["required"]
    ['source', 'name']
    >>> stages.get("dump").parse({"source": "shop.db", "name": "orders", "engine": "dask"})
    Traceback (most recent call last):
    ...
    aiforge.errors.InvalidInput: dump spec: engine: Input should be 'local' or 'spark'; got 'dask'

The registry imports a stage's ``stage.py`` (pydantic only) when the stage is first asked for, and the stage's
code only when it runs, so listing stages stays fast.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiforge.errors import InvalidInput

if TYPE_CHECKING:
    from aiforge.workspace import Workspace

__all__ = [
    "BUILTIN", "Cli", "EngineChoice", "SparkMaster", "Stage", "StageSpec", "calls", "get", "names", "register",
    "validate",
]

#: The stages aiforge ships, in the order of the flow: name -> the module that defines ``STAGE``.
BUILTIN: dict[str, str] = {
    "dump": "aiforge.dump.stage",
    "analyze": "aiforge.analyze.stage",
    "clean": "aiforge.clean.stage",
    "batch": "aiforge.batch.stage",
    "train": "aiforge.train.stage",
    "evaluate": "aiforge.evaluate.stage",
}
_registered: dict[str, Stage] = {}


class StageSpec(BaseModel):
    """Base of every stage's spec: unknown keys are errors, and a spec does not change once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Cli:
    """How a spec field appears on the command line (``Annotated[type, Field(...), Cli(...)]``).

    Parameters
    ----------
    flags : tuple of str
        Option names, e.g. ``("--name", "-n")``; default ``--field-name``.
    argument : bool
        A positional argument instead of an option.
    min, max : float, optional
        The range shown in ``--help`` and checked before the stage runs.
    split : bool
        A list given as one comma-separated value (``--features a,b``).
    """

    flags: tuple[str, ...] = ()
    argument: bool = False
    min: float | None = None
    max: float | None = None
    split: bool = False


Runner = Callable[..., Any]
SpecT = TypeVar("SpecT", bound=BaseModel)

#: The ``engine`` field of a spec whose stage runs locally or on Spark (the names of :data:`aiforge.engines.ENGINES`).
EngineChoice = Literal["local", "spark"]
#: The ``master`` field that goes with it.
SparkMaster = Annotated[str | None, Field(description="Spark master URL for --engine spark (default local[*]).")]


@dataclass(frozen=True)
class Stage:
    """One stage: its name, its spec's class and the function that runs a spec.

    ``run(spec, workspace=..., progress=...)`` returns what the stage wrote. ``command`` is the CLI name,
    ``summary`` one line of help, ``details`` the rest of it, ``example`` one command line.
    """

    name: str
    spec: type[StageSpec]
    run: Runner
    summary: str
    details: str = ""
    example: str = ""
    command: str = ""

    def parse(self, payload: StageSpec | Mapping[str, Any]) -> StageSpec:
        """A validated spec from a mapping (YAML, JSON, CLI options), or ``payload`` if it already is one.

        Raises
        ------
        InvalidInput
            Names the stage, the key and what was wrong, e.g. ``dump spec: name: Field required``.
        """
        if isinstance(payload, self.spec):
            return payload
        if not isinstance(payload, Mapping):
            raise InvalidInput(f"{self.name} spec must be a mapping of its fields; got {type(payload).__name__}")
        return validate(self.spec, payload, what=f"{self.name} spec")

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the spec (what the API accepts and the editor's form shows)."""
        schema = self.spec.model_json_schema()
        schema["description"] = " ".join(p for p in (self.summary, self.details) if p)
        return schema

    def __call__(
        self,
        spec: StageSpec | Mapping[str, Any],
        *,
        workspace: Workspace | str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> Any:
        """Validate ``spec`` and run the stage on it."""
        return self.run(self.parse(spec), workspace=workspace, progress=progress)


def validate(model: type[SpecT], payload: Mapping[str, Any], *, what: str) -> SpecT:
    """``payload`` validated as ``model`` (a pydantic model), with the first problem worded as every spec's errors are.

    Raises
    ------
    InvalidInput
        ``payload`` is not a mapping, or a key is unknown or wrong: ``"<what>: <key>: <problem>"``.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"{what} must be a mapping of its fields; got {type(payload).__name__}")
    try:
        return model.model_validate(dict(payload))
    except ValidationError as exc:
        raise InvalidInput(f"{what}: {_first_problem(exc)}") from None


def calls(target: str) -> Runner:
    """A stage's run that calls ``"module:function"`` with the spec's fields as keyword arguments.

    The module is imported on the first run, so registering a stage does not load its code.
    """
    module, _, name = target.partition(":")

    def run(spec: StageSpec, *, workspace: Any = None, progress: bool = False) -> Any:
        function = getattr(importlib.import_module(module), name)
        return function(**spec.model_dump(), workspace=workspace, progress=progress)

    run.__qualname__ = run.__name__ = f"run_{name}"
    return run


def register(stage: Stage) -> Stage:
    """Add a stage to the registry (a plugin's, or a test's); returns it. Names are unique."""
    if stage.name in _registered or stage.name in BUILTIN:
        raise InvalidInput(f"a stage named {stage.name!r} is already registered")
    _registered[stage.name] = stage
    return stage


def names() -> list[str]:
    """Every stage's name: the built-in ones in the order of the flow, then registered ones."""
    return list(BUILTIN) + [n for n in _registered if n not in BUILTIN]


def get(name: str) -> Stage:
    """The stage called ``name``.

    Raises
    ------
    InvalidInput
        No such stage; lists the known ones.
    """
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        return _load(name)
    raise InvalidInput(f"unknown stage {name!r}; known stages: {', '.join(names())}")


def _load(name: str) -> Stage:
    stage = importlib.import_module(BUILTIN[name]).STAGE
    if not isinstance(stage, Stage) or stage.name != name:
        raise TypeError(f"{BUILTIN[name]}.STAGE must be the Stage named {name!r}")
    return stage


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "spec"
    message = error["msg"]
    if error["type"] not in ("missing", "extra_forbidden"):
        message += f"; got {error['input']!r}"
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    more = len(exc.errors()) - 1
    return f"{where}: {message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
