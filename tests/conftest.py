"""Fixtures shared by every test: an isolated workspace, one Spark session, BLAS pinned to one thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# TRAIN's warm interpreters (one per job environment) outlive the test that started them; not by much.
os.environ.setdefault("AIFORGE_WARM_IDLE_S", "60")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # --doctest-modules would import every conftest.py as a module named "conftest", and the test folders are not
    # packages, so the second one collected clashes with the first; they hold fixtures, not doctests.
    return True if collection_path.name == "conftest.py" else None


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh, empty workspace; AIFORGE_HOME points at it for the CLI too."""
    from aiforge.workspace import Workspace

    home = tmp_path / "home"
    monkeypatch.setenv("AIFORGE_HOME", str(home))
    return Workspace(home)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """The process's SparkSession (local[*]), its warehouse and metastore in a temporary folder; starting one
    costs ~10 s here, so the whole run shares it."""
    pytest.importorskip("pyspark")
    from aiforge.engines.spark import get_session

    session = get_session(home=tmp_path_factory.mktemp("spark-home"))
    yield session
    session.stop()


# -- fault trials: tests that kill aiforge on purpose record what they tried, and the summary says how many ------------

_FAULT_TRIALS = pytest.StashKey[list]()


@pytest.fixture
def fault_trials(request: pytest.FixtureRequest) -> list:
    """A list to append one ``(stage, signal, delay_s)`` per kill; reported at the end of the run."""
    return request.config.stash.setdefault(_FAULT_TRIALS, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    trials = config.stash.get(_FAULT_TRIALS, [])
    if trials:
        by_stage: dict[str, int] = {}
        for stage, *_ in trials:
            by_stage[stage] = by_stage.get(stage, 0) + 1
        detail = ", ".join(f"{stage} {n}" for stage, n in sorted(by_stage.items()))
        terminalreporter.write_line(f"fault trials: {len(trials)} kills ({detail}), the workspace checked after each")
