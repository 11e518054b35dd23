"""Reading the YAML files users write (specs, settings), with errors that name the file and what it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aiforge.errors import InvalidInput

__all__ = ["read_yaml"]


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in ``path``; ``what`` names it in errors ("batch spec", "serve settings").

    Raises
    ------
    InvalidInput
        The file cannot be read or is not valid YAML.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{what} {path} is not valid YAML: {exc}") from exc
