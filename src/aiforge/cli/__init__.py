"""The ``aiforge`` command line: one thin command per public function.

Library errors become ``Error: ...`` on stderr with exit code 1 (``--debug`` shows the traceback); usage errors exit
with code 2. Each command group lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import sys

from aiforge.cli import _stages  # noqa: F401  (registers the data-stage commands)
from aiforge.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``aiforge`` console script."""
    sys.exit(app())  # pragma: no cover
