"""Progress reporting for long work: a rich bar on a terminal, silence elsewhere (pipes, CI, tests)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Protocol

__all__ = ["Progress", "progress"]


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


@contextlib.contextmanager
def progress(
    description: str, *, total: float | None = None, enabled: bool = True, unit: str = ""
) -> Iterator[Progress]:
    """A progress bar on stderr while the block runs; a no-op when ``enabled`` is false or stderr is no terminal.

    Examples
    --------
    >>> with progress("rows", total=10, enabled=False) as bar:
    ...     bar.advance(10)
    """
    if not enabled or not sys.stderr.isatty():
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
