"""Fixtures shared by every test: an isolated workspace, BLAS pinned to one thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh, empty workspace; AIFORGE_HOME points at it for the CLI too."""
    from aiforge.workspace import Workspace

    home = tmp_path / "home"
    monkeypatch.setenv("AIFORGE_HOME", str(home))
    return Workspace(home)
