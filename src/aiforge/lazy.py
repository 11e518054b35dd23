"""Public names that load on first use, and stage packages that can be called like their function.

Every stage package (``aiforge.dump``, ``aiforge.analyze``...) lists its public names in ``__all__`` but imports
the modules behind them only when a name is first used, so ``import aiforge`` and ``aiforge --version`` stay fast.

A stage's folder and its function share a name: ``aiforge.dump`` is the DUMP package and ``aiforge.dump(...)`` runs
a dump. Python sets ``aiforge.dump`` to the package as soon as anything imports ``aiforge.dump.<module>``, which would
hide the function; so a stage package is made callable instead, and calling it calls its function. The function
stays importable by name too (``from aiforge.dump import dump``).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_names"]


class _StagePackage(types.ModuleType):
    """A package that calls its stage function when called; signature and help follow the function."""

    __stage_function__: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__stage_function__)(*args, **kwargs)

    @property
    def __wrapped__(self) -> Any:  # inspect.signature(aiforge.dump) shows dump's own parameters
        return getattr(self, self.__stage_function__)


def lazy_names(
    package: str, names: dict[str, str], *, call: str | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``, loading ``names[name]`` (a module path) on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to str
        Public name -> the module that defines it.
    call : str, optional
        Make the package callable: calling it calls this public name (the stage's function).
    """
    module = sys.modules[package]
    if call is not None:
        module.__class__ = _StagePackage
        module.__stage_function__ = call  # type: ignore[attr-defined]

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            setattr(module, name, value)  # later lookups skip this hook
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(names))

    return __getattr__, __dir__
