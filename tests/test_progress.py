"""Progress bars: a notebook is told apart from a terminal, and in a notebook the bar is HTML, never escape codes."""

from __future__ import annotations

import io
import sys
import types
from typing import Any

import pytest

from aiforge import progress as progress_module
from aiforge.progress import _NotebookBar, in_notebook, progress


class _Shell:
    def __init__(self, kernel: object) -> None:
        self.kernel = kernel


def _ipython(monkeypatch: pytest.MonkeyPatch, shell: object, *, ipykernel: bool = True) -> None:
    """Make this process look like an IPython session whose ``get_ipython()`` is ``shell``."""
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    if ipykernel:
        monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    else:
        monkeypatch.delitem(sys.modules, "ipykernel", raising=False)


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that rich draws on it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, str], str, bool]]:
    """What the notebook bar sends to the front end: (MIME bundle, display id, update)."""
    calls: list[tuple[dict[str, str], str, bool]] = []
    monkeypatch.setattr(progress_module, "_display",
                        lambda bundle, display_id, update: calls.append((bundle, display_id, update)))
    return calls


def test_plain_python_is_no_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert in_notebook() is False


@pytest.mark.parametrize(
    ("shell", "ipykernel", "expected"),
    [
        (_Shell(kernel=object()), True, True),  # a Jupyter kernel
        (_Shell(kernel=None), True, False),  # ipykernel imported, but this shell has no kernel
        (object(), True, False),  # terminal IPython: its shell has no kernel attribute
        (None, True, False),  # IPython imported, no shell running
        (_Shell(kernel=object()), False, False),  # no ipykernel loaded: not a kernel
    ],
)
def test_a_notebook_is_a_shell_with_a_kernel(
    monkeypatch: pytest.MonkeyPatch, shell: object, ipykernel: bool, expected: bool
) -> None:
    _ipython(monkeypatch, shell, ipykernel=ipykernel)
    assert in_notebook() is expected


def test_ipykernel_without_ipython_is_no_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert in_notebook() is False


def test_a_terminal_gets_rich_escape_codes(monkeypatch: pytest.MonkeyPatch, shown: list[Any]) -> None:
    # the control for the test below: outside a notebook, the same stderr receives rich's escape codes
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress("rows", total=10, unit="rows") as bar:
        bar.advance(10)
    assert "\x1b[" in terminal.getvalue() and shown == []


def test_a_notebook_gets_html_and_no_escape_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shown: list[Any]
) -> None:
    _ipython(monkeypatch, _Shell(kernel=object()))
    terminal = _Terminal()  # a kernel whose stderr claims to be a terminal still gets no escape code
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress("batch: <fit>", total=10, unit="rows") as bar:
        for _ in range(10):
            bar.advance()
        bar.update(description="batch: done")
    assert terminal.getvalue() == "" and capsys.readouterr().out == ""
    assert len(shown) >= 2
    first, *_, last = shown
    ids = {display_id for _, display_id, _ in shown}
    assert len(ids) == 1 and ids.pop().startswith("aiforge-progress-")  # one output, redrawn in place
    assert first[2] is False and all(update for _, _, update in shown[1:])
    assert first[0]["text/plain"].startswith("batch: <fit> 0/10 rows (")
    assert last[0]["text/plain"].startswith("batch: done 10/10 rows (") and last[0]["text/plain"].endswith(", done)")
    for bundle, _, _ in shown:
        assert set(bundle) == {"text/html", "text/plain"}
        assert not any("\x1b" in text for text in bundle.values())
    assert "batch: &lt;fit&gt;" in first[0]["text/html"] and "<fit>" not in first[0]["text/html"]
    assert "width:100.0%" in last[0]["text/html"]


def test_disabled_shows_nothing_in_a_notebook(monkeypatch: pytest.MonkeyPatch, shown: list[Any]) -> None:
    _ipython(monkeypatch, _Shell(kernel=object()))
    with progress("rows", total=3, enabled=False) as bar:
        bar.advance(3)
    assert shown == []


def test_an_error_leaves_the_bar_marked_stopped(monkeypatch: pytest.MonkeyPatch, shown: list[Any]) -> None:
    _ipython(monkeypatch, _Shell(kernel=object()))
    with pytest.raises(KeyError, match="boom"), progress("dump: rows written", unit="rows") as bar:
        bar.advance(1234)
        raise KeyError("boom")
    final = shown[-1][0]["text/plain"]
    assert final.startswith("dump: rows written 1,234 rows (") and final.endswith(", stopped)")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0  # steps below are exact in binary, so elapsed times compare exactly

    def __call__(self) -> float:
        return self.now


def test_redraws_are_limited_to_ten_a_second() -> None:
    calls: list[tuple[dict[str, str], str, bool]] = []
    clock = _Clock()
    bar = _NotebookBar("rows", 1000, "rows", show=lambda *call: calls.append(call), clock=clock)
    for _ in range(500):
        bar.advance()
    assert len(calls) == 1  # only the first draw: no time passed
    clock.now += 0.125
    bar.advance()
    assert len(calls) == 2 and calls[-1][0]["text/plain"] == "rows 501/1,000 rows (0.1 s)"
    clock.now += 0.0625
    bar.update(total=2000)
    assert len(calls) == 2
    clock.now += 2.0
    bar.close()  # the final state is drawn however recent the last redraw
    assert calls[-1][0]["text/plain"] == "rows 501/2,000 rows (2.2 s, done)"
    assert "width:25.1%" in calls[-1][0]["text/html"]


def test_without_a_total_the_bar_counts() -> None:
    calls: list[tuple[dict[str, str], str, bool]] = []
    clock = _Clock()
    bar = _NotebookBar("capacity", None, "", show=lambda *call: calls.append(call), clock=clock)
    clock.now += 1
    bar.advance(2.5)
    assert calls[-1][0]["text/plain"] == "capacity 2.5 (1.0 s)" and "width:0.0%" in calls[-1][0]["text/html"]
    bar.close()
    assert calls[-1][0]["text/plain"] == "capacity 2.5 (1.0 s, done)" and "width:100.0%" in calls[-1][0]["text/html"]


def test_without_a_total_or_a_count_the_bar_shows_the_time() -> None:
    calls: list[tuple[dict[str, str], str, bool]] = []
    clock = _Clock()
    bar = _NotebookBar("clean: pico", None, "", show=lambda *call: calls.append(call), clock=clock)
    clock.now += 0.25
    bar.close()
    assert [c[0]["text/plain"] for c in calls] == ["clean: pico (0.0 s)", "clean: pico (0.2 s, done)"]
