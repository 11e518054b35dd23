"""ANALYZE: what is wrong with the data, as a self-contained HTML report and JSON (statistics, bias, bad rows).

``aiforge.analyze(snapshot, label=...)`` calls :func:`analyze`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.analyze._analyze import Report, analyze

__all__ = ["Report", "analyze"]
__getattr__, __dir__ = lazy_names(
    __name__, {"Report": "aiforge.analyze._analyze", "analyze": "aiforge.analyze._analyze"}, call="analyze"
)
