"""A warm interpreter for training jobs: one long-lived process per job environment forks a fresh child per job.

A cold job (``python -m aiforge.train.job RUN_DIR``) spends seconds importing scikit-learn, SciPy, skl2onnx and ONNX
before it does any work. The warm interpreter (a *zygote*, like Android's or Gradle's daemon) has imported them once;
each job is an ``os.fork()`` of it that joins the job's cgroups, takes the job's affinity, memory limit, log, working
directory and environment, and then runs :func:`aiforge.train.job.main`, the same code a cold job runs.

Client::

    handle = start(python, key, WarmJob(...))   # None: start the job cold instead
    while (ended := handle.poll()) is None:     # (exit code, CPU seconds) once it ended
        time.sleep(0.02)

Server: ``python -m aiforge.train.runtimes.warm_server KEY`` (:mod:`.warm_server`), spawned by :func:`start` when no
server answers for ``KEY``. It listens on the Linux abstract unix socket ``"\\0aiforge-warm-" + KEY`` (no file; the
name is gone when the process is), accepts connections from its own user only, and speaks JSON lines: a request holds
the :class:`WarmJob` fields, the answer is ``{"pid": N}`` once the child is in its own session and cgroups, then
``{"exit": code, "cpu_s": s}`` when it ended. ``{"stop": true}`` closes the socket; the server exits when its running
jobs have ended. It exits on its own after ``AIFORGE_WARM_IDLE_S`` seconds (default 600) without a job or a request,
and writes only its own log, ``<tmp>/aiforge-warm-<KEY>.log``.

Differences from a cold job, by design: the preloaded modules' memory was charged to the server's memory cgroup and
is shared copy-on-write, so a job's memory limit counts only what the job itself allocates or writes; ``RLIMIT_AS``
(the fallback when no memory cgroup can be written) does count the preloaded libraries' address space. The hash seed
(``PYTHONHASHSEED``) is the server's. NumPy's global random state and :mod:`random` are reseeded in every child.
``AIFORGE_WARM=0`` (or false/no/off) turns the warm path off (:func:`start` returns ``None``).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CGROUP_FAILED", "MAX_REQUEST", "WarmHandle", "WarmJob", "peer_uid", "socket_address", "start", "stop"]

logger = logging.getLogger(__name__)

# The server starts its thread pools at one thread (none to lose at fork); each child raises them to its own count.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS")
_SPAWN_WAIT_S = 30.0  # the server's preload takes 3-5 s on a busy 2-core machine
_REPLY_WAIT_S = 15.0
#: The longest request line the server reads (bytes).
MAX_REQUEST = 1 << 20
#: The exit code of a forked job that could not join its cgroups (it never runs the user's code).
CGROUP_FAILED = 70
_spawned: dict[str, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class WarmJob:
    """One job for the warm interpreter.

    Attributes
    ----------
    run_dir : Path
        The job's run folder (``job.json`` inside).
    cwd : Path
        The code package: the child's working directory (and ``sys.path[0]``, as for ``python -m``).
    env : dict of str to str
        The child's whole environment: ``os.environ`` is replaced by it.
    cgroup_procs : tuple of Path
        ``cgroup.procs`` files the child writes its pid into before anything else; if one cannot be written the
        child writes why into ``log_path`` and exits with code 70.
    cores : tuple of int
        The child's CPU affinity (empty: the server's).
    rlimit_as : int, optional
        ``RLIMIT_AS`` for the child in bytes, when set.
    log_path : Path
        The child's stdout and stderr are appended here.
    """

    run_dir: Path
    cwd: Path
    env: dict[str, str]
    cgroup_procs: tuple[Path, ...]
    cores: tuple[int, ...]
    rlimit_as: int | None
    log_path: Path

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "cwd": str(self.cwd), "env": dict(self.env),
                "cgroup_procs": [str(path) for path in self.cgroup_procs], "cores": list(self.cores),
                "rlimit_as": self.rlimit_as, "log_path": str(self.log_path)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WarmJob:
        missing = [name for name in ("run_dir", "cwd", "env", "cgroup_procs", "cores", "log_path") if name not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        env = data["env"]
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("env must map strings to strings")
        rlimit = data.get("rlimit_as")
        return cls(Path(data["run_dir"]), Path(data["cwd"]), env, tuple(Path(p) for p in data["cgroup_procs"]),
                   tuple(int(core) for core in data["cores"]), None if rlimit is None else int(rlimit),
                   Path(data["log_path"]))


class WarmHandle:
    """A job running in a warm interpreter: its pid (also its process group) and, once it ended, its exit code.

    The job is not a child of the caller: stop it with ``os.killpg(handle.pid, signal.SIGTERM)`` and keep polling.
    """

    def __init__(self, pid: int, sock: socket.socket, buffer: bytes = b"") -> None:
        self.pid = pid
        self._sock: socket.socket | None = sock
        self._buffer = buffer
        self._result: tuple[int, float] | None = None
        self._started = _start_time(pid)

    def poll(self) -> tuple[int, float] | None:
        """``(exit code, CPU seconds user + system)`` once the job ended, else ``None``; never blocks.

        The exit code is what :func:`os.waitstatus_to_exitcode` gives (``-9`` for SIGKILL). If the server died
        before it could report the exit, the code is unknown: once the pid is gone the result is ``(-9, 0.0)``,
        as if the job had been killed.
        """
        if self._result is not None:
            return self._result
        if self._sock is not None:
            eof = self._receive()
            line, newline, rest = self._buffer.partition(b"\n")
            if newline:
                self._buffer = rest
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    reply = json.loads(line)
                    self._result = (int(reply["exit"]), float(reply["cpu_s"]))
                if self._result is not None or eof:
                    self.close()
            elif eof:
                logger.debug("warm interpreter closed the connection of job %d without its exit code", self.pid)
                self.close()
        if self._result is None and self._sock is None and not _alive(self.pid, self._started):
            self._result = (-int(signal.SIGKILL), 0.0)
        return self._result

    def _receive(self) -> bool:
        """Read what the server sent; True at end of stream."""
        assert self._sock is not None
        self._sock.setblocking(False)
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return True
            if not data:
                return True
            self._buffer += data

    def close(self) -> None:
        """Close the connection to the server; the job, if still running, keeps running."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def start(python: str, key: str, job: WarmJob, *, idle_s: float | None = None) -> WarmHandle | None:
    """Start ``job`` in the warm interpreter ``key`` of ``python``, spawning the interpreter when none answers.

    Parameters
    ----------
    python : str
        The job environment's interpreter; a spawned server runs ``python -m aiforge.train.runtimes.warm_server key``.
    key : str
        Names the server: unique per environment and aiforge version (the caller builds it).
    job : WarmJob
        What to run.
    idle_s : float, optional
        For a server spawned by this call: exit after this many idle seconds (default ``AIFORGE_WARM_IDLE_S``,
        else 600). A server that already runs keeps its own.

    Returns
    -------
    WarmHandle or None
        ``None`` when ``AIFORGE_WARM=0``, or when no server could be started, reached or understood: the caller
        then starts the job cold. Never raises for those; the reason is logged at debug level.
    """
    if os.environ.get("AIFORGE_WARM", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    _reap()
    try:
        sock = _connect(key) or _spawn(python, key, idle_s)
        if sock is None:
            return None
        return _submit(sock, job)
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError) as exc:
        logger.debug("warm interpreter %s: %s; the job starts cold", key, exc)
        return None


def stop(key: str) -> bool:
    """Ask the warm interpreter ``key`` to exit (after its running jobs); True if one was answering."""
    sock = _connect(key)
    if sock is None:
        _reap()
        return False
    with sock:
        try:
            sock.sendall(b'{"stop": true}\n')
            _read_line(sock, b"", _REPLY_WAIT_S)
        except (OSError, ValueError) as exc:
            logger.debug("warm interpreter %s did not answer stop: %s", key, exc)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:  # it closes its socket at once, and exits once its jobs ended
        probe = _connect(key)
        if probe is None:
            break
        probe.close()
        time.sleep(0.02)
    proc = _spawned.pop(key, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2.0)  # still running jobs: reaped by a later start() or stop()
    _reap()
    return True


def socket_address(key: str) -> bytes:
    name = f"aiforge-warm-{key}".encode()
    if len(name) > 100:  # sun_path holds 108 bytes, the leading NUL included
        name = b"aiforge-warm-" + hashlib.sha256(key.encode()).hexdigest().encode()
    return b"\0" + name


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _connect(key: str) -> socket.socket | None:
    """A connection to the server ``key``, if one listens and runs as this user."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(socket_address(key))
        if peer_uid(sock) != os.getuid():  # anyone may bind an abstract name: never hand a job to another user
            raise OSError(f"the warm interpreter {key!r} runs as another user")
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            logger.debug("warm interpreter %s: %s", key, exc)
        sock.close()
        return None
    return sock


def _spawn(python: str, key: str, idle_s: float | None) -> socket.socket | None:
    # OpenMP reads its wait policy once, when the preload loads it: jobs under a CPU quota need it passive (see
    # local.thread_env), and the forked jobs inherit the server's.
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, "1"), "OMP_WAIT_POLICY": "PASSIVE"}
    if idle_s is not None:
        env["AIFORGE_WARM_IDLE_S"] = repr(float(idle_s))
    log = os.open(_log_path(key), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        proc = subprocess.Popen(
            [python, "-m", "aiforge.train.runtimes.warm_server", key], cwd="/", env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True,
        )
    finally:
        os.close(log)
    _spawned[key] = proc
    deadline = time.monotonic() + _SPAWN_WAIT_S
    while time.monotonic() < deadline:
        sock = _connect(key)
        if sock is not None:
            return sock
        if proc.poll() not in (None, 0):  # 0: another client's server took the name first; it will listen
            logger.debug("warm interpreter %s exited with %s while starting", key, proc.returncode)
            return None
        time.sleep(0.03)
    logger.debug("warm interpreter %s did not listen within %g s", key, _SPAWN_WAIT_S)
    return None


def _log_path(key: str) -> Path:
    """The server's own log (never in the workspace)."""
    return Path(tempfile.gettempdir()) / f"aiforge-warm-{re.sub(r'[^A-Za-z0-9_.-]', '_', key)[:80]}.log"


def _reap() -> None:
    """Collect spawned servers that have exited (they are children of this process)."""
    for key, proc in list(_spawned.items()):
        if proc.poll() is not None:
            del _spawned[key]


@atexit.register
def _leave_running() -> None:
    """Servers outlive the process that spawned them by design (they exit when idle): say so to their Popen objects,
    which would otherwise warn at exit that a subprocess is still running."""
    _reap()
    for proc in _spawned.values():
        proc.returncode = 0
    _spawned.clear()


def _submit(sock: socket.socket, job: WarmJob) -> WarmHandle | None:
    try:
        sock.settimeout(_REPLY_WAIT_S)
        sock.sendall(json.dumps(job.to_json()).encode() + b"\n")
        line, rest = _read_line(sock, b"", _REPLY_WAIT_S)
        reply = json.loads(line)
        if "pid" not in reply:
            raise ValueError(reply.get("error", f"unexpected answer {line!r}"))
        return WarmHandle(int(reply["pid"]), sock, rest)
    except BaseException:
        sock.close()
        raise


def _read_line(sock: socket.socket, buffer: bytes, timeout: float) -> tuple[bytes, bytes]:
    sock.settimeout(timeout)
    while b"\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ValueError("the warm interpreter closed the connection")
        buffer += data
        if len(buffer) > MAX_REQUEST:
            raise ValueError("line too long")
    line, _, rest = buffer.partition(b"\n")
    return line, rest


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), to tell it from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] == "Z" else fields[19]


def _alive(pid: int, started: str | None) -> bool:
    return started is not None and _start_time(pid) == started


# ---------------------------------------------------------------------------------------------------------- server
