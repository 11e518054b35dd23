"""The ``aiforge`` command line: one thin command per public function.

Library errors become ``Error: ...`` on stderr with exit code 1 (``--debug`` shows the traceback); usage errors exit
with code 2. Each command group lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import sys

# Importing a command module registers its commands on `app` (or its `serve` group).
from aiforge.cli import _stages, loadtest, models, serve_model, serve_aps, serve_up, train  # noqa: F401  # isort: skip
from aiforge.cli._app import app, interrupted

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``aiforge`` console script."""
    try:
        sys.exit(app(standalone_mode=True))  # pragma: no cover
    except KeyboardInterrupt:  # Ctrl-C outside a command (while options are parsed): commands say so themselves
        interrupted()
