"""Exact cases that kill the mutants scripts/mutate.py found surviving in workspace/catalog.py (issue 11)."""

from __future__ import annotations

import os

import pytest

from aiforge.workspace import catalog


def test_alive_only_probes_with_signal_zero() -> None:
    sent: list[tuple[int, int]] = []

    def kill(pid: int, sig: int) -> None:
        sent.append((pid, sig))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(catalog.os, "kill", kill)
        assert catalog._alive(12345) is True
    assert sent == [(12345, 0)]
    assert catalog._alive(os.getpid()) is True


@pytest.mark.parametrize(("error", "alive"), [(PermissionError, True), (ProcessLookupError, False)])
def test_a_process_of_another_user_is_alive_and_a_missing_one_is_not(error: type[OSError], alive: bool) -> None:
    def kill(pid: int, sig: int) -> None:
        raise error

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(catalog.os, "kill", kill)
        assert catalog._alive(12345) is alive
