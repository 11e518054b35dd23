"""Run the stack of ``aiforge serve up`` in the foreground: start it, keep it running, stop it.

:func:`supervise` starts the inference and APS processes with :func:`~aiforge.serve.deploy.stack.up`, then watches
them. A process that exits on its own (a crash, an out-of-memory kill, ``kill -9``) is restarted after a backoff
that doubles with each crash (``restart_backoff_s``, 2x, ..., at most :data:`MAX_BACKOFF_S`), and the others keep
running meanwhile: while the inference server is down the APS answers 503 with ``Retry-After``, never a refused
connection, and it reconnects by itself once the server is back. A restarted replica counts as back only when it
prints its ready line, as at start (replicas share ports, so the ports cannot tell them apart). Each crash and each
return is reported (``on_event``; stderr by default): which process, its exit code, the restart number and the
delay.

Crashes are counted per process over a sliding window: one crash more than ``max_restarts`` within
``restart_window_s`` means something is wrong that restarting does not fix (a model that no longer loads, a port
taken), so everything is stopped and :class:`~aiforge.errors.ServiceError` says which process and shows its last
output. ``max_restarts = 0`` gives the strict behaviour: the first exit stops the stack.

Ctrl-C and SIGTERM are no crashes: they stop every process gracefully (APS replicas first). A second Ctrl-C or
SIGTERM during the shutdown is ignored, so the shutdown never stops half-way and leaves servers behind. Signal
handlers can only be set in the main thread, so :func:`supervise` must run there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import NoReturn

from aiforge.errors import ServiceError
from aiforge.serve.deploy.settings import ServeSettings
from aiforge.serve.deploy.stack import Stack, up

__all__ = ["supervise"]

#: How often the processes are checked; an exit is noticed within this many seconds.
POLL_S = 0.1
#: The longest wait before a restart, however many crashes came before.
MAX_BACKOFF_S = 30.0

Process = subprocess.Popen[bytes]


def supervise(
    settings: ServeSettings,
    *,
    wait_s: float = 60.0,
    on_ready: Callable[[Stack], None] | None = None,
    on_stopping: Callable[[], None] | None = None,
    on_event: Callable[[str], None] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Serve ``settings`` until Ctrl-C or SIGTERM, restarting processes that crash; always stop them all at the end.

    Parameters
    ----------
    settings : ServeSettings
        What to serve, as for :func:`~aiforge.serve.deploy.stack.up`; ``max_restarts``, ``restart_window_s`` and
        ``restart_backoff_s`` say how crashes are handled.
    wait_s : float, default 60
        How long the servers may take to become ready, at start and after each restart.
    on_ready : callable, optional
        Called with the running :class:`~aiforge.serve.deploy.stack.Stack` once every process is ready (to print
        its URLs, for instance).
    on_stopping : callable, optional
        Called when Ctrl-C or SIGTERM arrives, before the processes are stopped (stopping can take seconds).
    on_event : callable, optional
        Called with one line for each crash and each restarted process that is ready again; default: the line is
        written to stderr.
    log_dir : path, optional
        Where the processes write their output (see :func:`~aiforge.serve.deploy.stack.up`).

    Returns
    -------
    None
        After Ctrl-C or SIGTERM, once every process has stopped.

    Raises
    ------
    ServiceError
        The stack did not start (as :func:`~aiforge.serve.deploy.stack.up` raises), or a process crashed more than
        ``max_restarts`` times within ``restart_window_s``; the message names it and ends with its last output.
        The other processes are stopped first.
    InvalidInput
        ``settings.token_env`` names an unset variable.
    ValueError
        Called outside the main thread (signal handlers cannot be set there).

    Examples
    --------
    >>> supervise(ServeSettings(model_repo="models", model="mlp", max_restarts=3))  # doctest: +SKIP
    inference-0 exited with code -9; restarting it in 0.5 s (restart 1 of at most 3 within 60 s; log: ...)
    inference-0 is ready again (restart 1, pid 4242)
    """
    say = on_event if on_event is not None else _to_stderr
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    stack = None
    try:
        stack = up(settings, wait_s=wait_s, log_dir=log_dir)
        if on_ready is not None:
            on_ready(stack)
        _Supervisor(stack, settings, wait_s, say).run()
    except KeyboardInterrupt:
        if on_stopping is not None:
            on_stopping()
    finally:
        # a second Ctrl-C or SIGTERM must not interrupt the shutdown half-way and leave servers behind
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if stack is not None:
                stack.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the servers as Ctrl-C does


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


@dataclass
class _Slot:
    """What the supervisor knows about one replica (``inference-0``, ``aps-1``...) across its restarts."""

    crashes: deque[float] = field(default_factory=deque)  # when it exited, within the window
    restart_at: float | None = None  # set while it waits out its backoff
    starting_since: float | None = None  # set while a restarted process has not printed its ready line
    attempt: int = 0  # the restart number within the window


class _Supervisor:
    """Polls the stack's processes and applies the restart policy of ``settings``."""

    def __init__(self, stack: Stack, settings: ServeSettings, wait_s: float, say: Callable[[str], None]) -> None:
        self.stack = stack
        self.settings = settings
        self.wait_s = wait_s
        self.say = say
        self.slots = {stack.name_of(process): _Slot() for process in stack.processes}

    def run(self) -> NoReturn:
        while True:
            for process in list(self.stack.processes):
                self._check(process, time.monotonic())
            time.sleep(POLL_S)

    def _check(self, process: Process, now: float) -> None:
        name = self.stack.name_of(process)
        slot = self.slots[name]
        if slot.restart_at is not None:  # `process` is the one that exited
            if now >= slot.restart_at:
                slot.restart_at, slot.starting_since = None, now
                self.stack.restart(process)
            return
        code = process.poll()
        if code is None and slot.starting_since is not None:
            if self.stack.reported_ready(process):
                slot.starting_since = None
                self.say(f"{name} is ready again (restart {slot.attempt}, pid {process.pid})")
            elif now - slot.starting_since > self.wait_s:
                self.say(f"{name} did not report ready within {self.wait_s:g} s of restart {slot.attempt}; "
                         "killing it")
                process.kill()
                code = process.wait()
        if code is not None:
            self._crashed(process, code, slot, now)

    def _crashed(self, process: Process, code: int, slot: _Slot, now: float) -> None:
        settings, name = self.settings, self.stack.name_of(process)
        slot.crashes.append(now)
        while slot.crashes and slot.crashes[0] < now - settings.restart_window_s:
            slot.crashes.popleft()
        count = len(slot.crashes)
        if count > settings.max_restarts:
            raise ServiceError(
                f"{name} exited with code {code}: {_plural(count, 'crash', 'crashes')} within "
                f"{settings.restart_window_s:g} s, more than the {_plural(settings.max_restarts, 'restart')} allowed "
                f"(max_restarts); stopping the others. Its last output:\n{self.stack.log_tail(process) or '(nothing)'}"
            )
        delay = min(settings.restart_backoff_s * 2 ** (count - 1), MAX_BACKOFF_S)
        slot.attempt, slot.starting_since, slot.restart_at = count, None, now + delay
        log = self.stack.log_path(process)
        self.say(f"{name} exited with code {code}; restarting it in {delay:g} s (restart {count} of at most "
                 f"{settings.max_restarts} within {settings.restart_window_s:g} s; log: {log})")
