"""Progress reporting for long work: an HTML bar in a Jupyter notebook, a rich bar on a terminal, silence elsewhere
(pipes, CI, tests).

A notebook is told apart from a terminal by the IPython shell that runs the code: in a Jupyter kernel it has a
``kernel``. There the bar is one HTML output of the cell, redrawn in place through an IPython display id (with a
text/plain twin for console front ends), so no terminal escape code reaches the notebook and no widget library is
needed.
"""

from __future__ import annotations

import contextlib
import html
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol

__all__ = ["Progress", "in_notebook", "progress"]

_REDRAW_S = 0.1  # a notebook bar is redrawn at most ten times a second: each redraw is a message to the front end


class Progress(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, total: float | None = None, description: str | None = None) -> None: ...


class _Silent:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        pass


class _Bar:
    def __init__(self, bar: object, task: object) -> None:
        self._bar, self._task = bar, task

    def advance(self, amount: float = 1) -> None:
        self._bar.advance(self._task, amount)  # type: ignore[attr-defined]

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        fields: dict[str, object] = {}
        if total is not None:
            fields["total"] = total
        if description is not None:
            fields["description"] = description
        self._bar.update(self._task, **fields)  # type: ignore[attr-defined]


def in_notebook() -> bool:
    """True when this code runs in a Jupyter kernel (the IPython shell running it has a ``kernel``).

    Looks only at modules already imported, so it imports nothing and is False in plain Python and in a terminal
    IPython, which has no kernel.
    """
    if "ipykernel" not in sys.modules:
        return False
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return getattr(shell, "kernel", None) is not None


def _display(bundle: dict[str, str], display_id: str, update: bool) -> None:
    """Show ``bundle`` (MIME type -> content) as the output ``display_id``, or replace it."""
    from IPython.display import display

    display(bundle, raw=True, display_id=display_id, update=update)


class _NotebookBar:
    """A progress bar drawn as HTML in the running cell's output and redrawn in place, at most every ``_REDRAW_S``.

    ``advance`` may be called from any thread (the load test advances it from its event loop's thread).
    """

    def __init__(
        self, description: str, total: float | None, unit: str,
        show: Callable[[dict[str, str], str, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._description, self._total, self._unit = description, total, unit
        self._show, self._clock = show or _display, clock
        self._done = 0.0
        self._started = clock()
        self._drawn_at = -math.inf
        self._id = f"aiforge-progress-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        with self._lock:
            self._show(self._bundle(), self._id, False)
            self._drawn_at = self._started

    def advance(self, amount: float = 1) -> None:
        with self._lock:
            self._done += amount
            self._redraw()

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        with self._lock:
            if total is not None:
                self._total = total
            if description is not None:
                self._description = description
            self._redraw()

    def close(self, *, stopped: bool = False) -> None:
        """Draw the final state (always, however recent the last redraw)."""
        with self._lock:
            self._show(self._bundle(finished="stopped" if stopped else "done"), self._id, True)

    def _redraw(self) -> None:
        now = self._clock()
        if now - self._drawn_at >= _REDRAW_S:
            self._show(self._bundle(), self._id, True)
            self._drawn_at = now

    def _bundle(self, finished: str = "") -> dict[str, str]:
        elapsed = self._clock() - self._started
        if self._total is not None:
            count = f"{_amount(self._done)}/{_amount(self._total)}"
        else:  # no total: a count once there is one, else only the time
            count = _amount(self._done) if self._done else ""
        if count and self._unit:
            count += f" {self._unit}"
        when = f"{elapsed:.1f} s" + (f", {finished}" if finished else "")
        text = f"{self._description} {count} ({when})" if count else f"{self._description} ({when})"
        fraction = min(1.0, self._done / self._total) if self._total else (1.0 if finished == "done" else 0.0)
        track = "display:inline-block;width:180px;height:8px;border-radius:4px;background:#8883;overflow:hidden"
        fill = f"display:block;height:100%;width:{100 * fraction:.1f}%;background:#3b82f6"
        box = "font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:12px;margin:2px 0"
        page = (
            f'<div class="aiforge-progress" style="{box}">{html.escape(self._description)} '
            f'<span style="{track}"><span style="{fill}"></span></span> '
            f"{html.escape(count)} <span style=\"color:#888\">{html.escape(when)}</span></div>"
        )
        return {"text/html": page, "text/plain": text}


def _amount(value: float) -> str:
    """``12.0`` -> ``'12'``, ``1234567`` -> ``'1,234,567'``, ``2.5`` -> ``'2.5'``."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


@contextlib.contextmanager
def progress(
    description: str, *, total: float | None = None, enabled: bool = True, unit: str = ""
) -> Iterator[Progress]:
    """A progress bar while the block runs: in the cell's output in a Jupyter notebook, on stderr on a terminal; a
    no-op when ``enabled`` is false or neither is there.

    Examples
    --------
    >>> with progress("rows", total=10, enabled=False) as bar:
    ...     bar.advance(10)
    """
    if not enabled:
        yield _Silent()
        return
    if in_notebook():
        # checked before the terminal: a kernel's stderr is the notebook, where escape codes show as garbage
        cell_bar = _NotebookBar(description, total, unit)
        try:
            yield cell_bar
        except BaseException:
            cell_bar.close(stopped=True)
            raise
        cell_bar.close()
        return
    if not sys.stderr.isatty():
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Bar(bar, bar.add_task(description, total=total))
