"""DUMP: a SQL query against a warehouse or files becomes an immutable, versioned snapshot (``NAME@vN``).

``aiforge.dump(source, query=..., name=...)`` calls :func:`dump`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.dump._dump import dump

__all__ = ["dump"]
__getattr__, __dir__ = lazy_names(__name__, {"dump": "aiforge.dump._dump"}, call="dump")
