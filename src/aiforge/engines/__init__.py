"""Where work runs: the local engine (DuckDB + Arrow in this process, worker processes for parallel fits) or Spark,
and the SOURCE URLs both read.

Every stage that can run on more than one engine takes ``engine=`` (a name or an :class:`Engine`) and records
:meth:`Engine.describe` of the engine that really ran in the manifest of what it wrote::

    >>> resolve_engine("spark", master="spark://head:7077")
    SparkEngine(master='spark://head:7077')
    >>> resolve_engine().describe()
    {'engine': 'local', 'master': None}

Engines import no stage: the stages call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from aiforge.errors import InvalidParameter

__all__ = ["ENGINES", "Engine", "LocalEngine", "SparkEngine", "resolve_engine"]


@dataclass(frozen=True)
class Engine:
    """Where a stage's work runs; subclasses say which."""

    name: ClassVar[str]

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the engine: ``{"engine": name, "master": cluster URL or None}``."""
        return {"engine": self.name, "master": None}


@dataclass(frozen=True)
class LocalEngine(Engine):
    """DuckDB + Arrow in this process, and worker processes (joblib) for parallel fits."""

    name: ClassVar[str] = "local"


@dataclass(frozen=True)
class SparkEngine(Engine):
    """PySpark. ``master`` is the cluster's URL; ``local[*]`` runs Spark on every core of this machine."""

    name: ClassVar[str] = "spark"
    master: str = "local[*]"

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "master": self.master}


ENGINES: dict[str, type[Engine]] = {"local": LocalEngine, "spark": SparkEngine}


def resolve_engine(engine: str | Engine | None = None, master: str | None = None) -> Engine:
    """The :class:`Engine` a user asked for by name (``"local"``, ``"spark"``) or as an object.

    Parameters
    ----------
    engine : str or Engine, optional
        ``"local"`` (the default), ``"spark"``, or an engine object, returned as it is.
    master : str, optional
        Spark master URL, only with ``engine="spark"`` (default ``local[*]``).

    Raises
    ------
    InvalidParameter
        An unknown engine name, or a master given for an engine that has none.
    """
    if isinstance(engine, Engine):
        if master is not None:
            raise InvalidParameter(
                f"master {master!r} given beside an engine object; use SparkEngine(master={master!r})"
            )
        return engine
    name = "local" if engine is None else engine
    if name not in ENGINES:
        raise InvalidParameter(f"unknown engine {name!r}; expected one of: {', '.join(ENGINES)}")
    if name == "spark":
        return SparkEngine(master or "local[*]")
    if master is not None:
        raise InvalidParameter(f"--master {master!r} only applies to --engine spark; drop it or add --engine spark")
    return LocalEngine()
