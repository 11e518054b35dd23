"""Run the stack of ``aiforge serve up`` in the foreground: start it, watch it, stop it.

:func:`supervise` starts the inference and APS processes with :func:`~aiforge.serve.deploy.stack.up`, then waits.
It stops every process (APS replicas first, gracefully) when Ctrl-C or SIGTERM arrives, and also when one process
exits on its own: a stack with a replica missing is not the stack the user asked for, so it raises
:class:`~aiforge.errors.ServiceError` naming that process, with its last output. Nothing is restarted.

A second Ctrl-C or SIGTERM during the shutdown is ignored, so the shutdown never stops half-way and leaves servers
behind. Signal handlers can only be set in the main thread, so :func:`supervise` must run there.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from aiforge.errors import ServiceError
from aiforge.serve.deploy.settings import ServeSettings
from aiforge.serve.deploy.stack import Stack, up

__all__ = ["supervise"]

#: How often the processes are checked; an exit is noticed within this many seconds.
POLL_S = 0.5


def supervise(
    settings: ServeSettings,
    *,
    wait_s: float = 60.0,
    on_ready: Callable[[Stack], None] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> None:
    """Serve ``settings`` until Ctrl-C or SIGTERM, or until one of the processes exits; always stop them all.

    Parameters
    ----------
    settings : ServeSettings
        What to serve, as for :func:`~aiforge.serve.deploy.stack.up`.
    wait_s : float, default 60
        How long the servers may take to become ready.
    on_ready : callable, optional
        Called with the running :class:`~aiforge.serve.deploy.stack.Stack` once every process is ready (to print
        its URLs, for instance).
    on_stopping : callable, optional
        Called when Ctrl-C or SIGTERM arrives, before the processes are stopped (stopping can take seconds).

    Returns
    -------
    None
        After Ctrl-C or SIGTERM, once every process has stopped.

    Raises
    ------
    ServiceError
        The stack did not start (as :func:`~aiforge.serve.deploy.stack.up` raises), or a process exited while
        serving; the message names it and ends with its last output. The other processes are stopped first.
    InvalidInput
        ``settings.token_env`` names an unset variable.
    ValueError
        Called outside the main thread (signal handlers cannot be set there).
    """
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    stack = None
    try:
        stack = up(settings, wait_s=wait_s)
        if on_ready is not None:
            on_ready(stack)
        _wait_for_an_exit(stack)
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


def _wait_for_an_exit(stack: Stack) -> NoReturn:
    """Block while every process runs; then raise :class:`ServiceError` naming the first one found stopped."""
    while stack.alive():
        time.sleep(POLL_S)
    dead = next(process for process in stack.processes if process.poll() is not None)
    raise ServiceError(
        f"{stack.name_of(dead)} exited with code {dead.returncode}; stopping the others. Its last output:\n"
        f"{stack.log_tail(dead)}"
    )
