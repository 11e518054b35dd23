"""The warm interpreter's server: ``python -m aiforge.train.runtimes.warm_server KEY`` (started by
:func:`aiforge.train.runtimes.warm.start`; the protocol and the differences from a cold job are described there).

It claims its socket name, imports :data:`PRELOAD`, then serves one event loop (selectors over the listening socket,
client connections and a SIGCHLD wakeup fd): each request forks a child that joins the job's session, cgroups,
affinity, limits, log, working directory and environment and runs :func:`aiforge.train.job.main`; the server reaps
it and reports its exit code and CPU time to the client.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import resource
import select
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, NoReturn

from aiforge.train.runtimes.warm import CGROUP_FAILED, MAX_REQUEST, WarmJob, peer_uid, socket_address

__all__ = ["PRELOAD", "main"]

#: What the server imports before it listens: what jobs otherwise spend their start on. Not torch (500 MB
#: resident): list extra modules in ``AIFORGE_WARM_PRELOAD`` (comma-separated) to preload them too.
PRELOAD = (
    "numpy", "pandas", "pyarrow", "pyarrow.parquet", "pyarrow.dataset", "scipy.stats", "sklearn.base",
    "sklearn.linear_model", "sklearn.ensemble", "sklearn.tree", "skl2onnx", "skl2onnx.common.data_types", "onnx",
    "onnxruntime", "threadpoolctl", "aiforge.workspace", "aiforge.batch", "aiforge.train.job",
    "aiforge.train.context", "aiforge.serve.deploy.export",
)


def main(argv: list[str] | None = None) -> int:
    """``python -m aiforge.train.runtimes.warm_server KEY``: serve jobs for ``KEY`` until idle or stopped."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m aiforge.train.runtimes.warm_server KEY\n")
        return 2
    key = args[0]
    idle_s = float(os.environ.get("AIFORGE_WARM_IDLE_S") or 600)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(socket_address(key))  # claim the name before the slow preload: a second server stops here
    except OSError:
        listener.close()
        return 0
    extra = [name.strip() for name in os.environ.get("AIFORGE_WARM_PRELOAD", "").split(",") if name.strip()]
    for name in (*PRELOAD, *extra):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            _say(f"not preloaded: {name} ({exc})")
    listener.listen(64)
    _say(f"pid {os.getpid()} serving {key!r} (idle exit after {idle_s:g} s)")
    code = _Server(listener, idle_s).serve()
    _say(f"pid {os.getpid()} exits")
    return code


def _say(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} aiforge warm: {message}\n")
    sys.stderr.flush()


class _Server:
    def __init__(self, listener: socket.socket, idle_s: float) -> None:
        self.listener: socket.socket | None = listener
        self.idle_s = idle_s
        self.selector = selectors.DefaultSelector()
        self.conns: dict[socket.socket, bytes] = {}  # open client connections -> what they sent so far
        self.jobs: dict[int, socket.socket | None] = {}  # running child pid -> its client's connection
        self.last = time.monotonic()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def serve(self) -> int:
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # a Python handler, so the wakeup fd is written
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        assert self.listener is not None
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self._reap()
        while self.listener is not None or self.jobs:
            timeout = None
            if not self.jobs:
                timeout = self.last + self.idle_s - time.monotonic()
                if timeout <= 0:
                    break
            for event, _ in self.selector.select(timeout):
                if event.fileobj is self.listener:
                    self._accept()
                elif event.fileobj == self.wake_r:
                    with contextlib.suppress(OSError):
                        while os.read(self.wake_r, 512):
                            pass
                    self._reap()
                elif isinstance(event.fileobj, socket.socket) and event.fileobj in self.conns:
                    self._read(event.fileobj)
        self._close_listener()
        for conn in list(self.conns):
            self._drop(conn)
        return 0

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        if peer_uid(conn) != os.getuid():
            conn.close()
            return
        conn.settimeout(2.0)
        self.conns[conn] = b""
        self.selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:  # the client went away before its request
            self._drop(conn)
            return
        buffer = self.conns[conn] + data
        self.conns[conn] = buffer
        if b"\n" not in buffer:
            if len(buffer) > MAX_REQUEST:
                self._answer(conn, {"error": "request too long"}, close=True)
            return
        # One request per connection; after it we only write. A client that leaves early (Ctrl-C) stops its job
        # itself (killpg); the job's exit line then finds no one and the connection is dropped.
        self.selector.unregister(conn)
        self.last = time.monotonic()
        try:
            request = json.loads(buffer.partition(b"\n")[0])
            if request.get("stop"):
                self._answer(conn, {"stopping": os.getpid()}, close=True)
                self._close_listener()
                return
            job = WarmJob.from_json(request)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._answer(conn, {"error": f"bad request: {exc}"}, close=True)
            return
        pid = self._fork(job)
        if pid is None:
            self._answer(conn, {"error": "fork failed"}, close=True)
            return
        self.jobs[pid] = conn
        self._answer(conn, {"pid": pid})

    def _fork(self, job: WarmJob) -> int | None:
        sync_r, sync_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            _say(f"fork failed: {exc}")
            os.close(sync_r)
            os.close(sync_w)
            return None
        if pid == 0:
            os.close(sync_r)
            self._child(job, sync_w)
        os.close(sync_w)
        # Answer only once the child leads its own process group and sits in its cgroups (or has exited).
        with contextlib.suppress(OSError):
            if select.select([sync_r], [], [], 10.0)[0]:
                os.read(sync_r, 1)
        os.close(sync_r)
        return pid

    def _child(self, job: WarmJob, sync_w: int) -> NoReturn:
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # what a fresh interpreter has
            self.selector.close()
            for conn in self.conns:
                conn.close()
            if self.listener is not None:
                self.listener.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            for procs in job.cgroup_procs:
                try:
                    procs.write_text(str(os.getpid()))
                except OSError as exc:
                    with job.log_path.open("a", encoding="utf-8") as note:
                        note.write(f"aiforge: the job could not join its cgroup ({procs}): {exc}\n")
                    os._exit(CGROUP_FAILED)
            os.write(sync_w, b"1")
            os.close(sync_w)
            if job.cores:
                os.sched_setaffinity(0, job.cores)
            if job.rlimit_as is not None:
                resource.setrlimit(resource.RLIMIT_AS, (job.rlimit_as, job.rlimit_as))
            log = os.open(job.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(log)
            code = _run(job)
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        _exit(code)

    def _answer(self, conn: socket.socket, reply: dict[str, Any], *, close: bool = False) -> None:
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            close = True
        if close:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        self.conns.pop(conn, None)
        conn.close()

    def _close_listener(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            self.last = time.monotonic()
            conn = self.jobs.pop(pid, None)
            if conn is not None:
                code = os.waitstatus_to_exitcode(status)
                self._answer(conn, {"exit": code, "cpu_s": usage.ru_utime + usage.ru_stime}, close=True)


def _run(job: WarmJob) -> int:
    """In the child: become the job's interpreter, then run the job as ``python -m aiforge.train.job`` would."""
    start_dir = os.getcwd()
    os.chdir(job.cwd)
    os.environ.clear()  # os.environ writes through to the C environment, so libraries loaded later see it too
    os.environ.update(job.env)
    from aiforge.train import job as job_module

    if sys.path and sys.path[0] in (start_dir, ""):
        sys.path[0] = str(job.cwd)
    sys.argv = [job_module.__file__ or "aiforge.train.job", str(job.run_dir)]
    if "numpy" in sys.modules:  # the forked global RandomState would be the same in every job
        sys.modules["numpy"].random.seed()
    def count(variable: str, default: int) -> int:
        threads = job.env.get(variable, "")
        return int(threads) if threads.isdigit() else default

    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        # the pools loaded in the server were sized at one thread: size them as the job's variables say
        threadpool_limits({"openmp": count("OMP_NUM_THREADS", len(job.cores) or (os.cpu_count() or 1)),
                           "blas": count("OPENBLAS_NUM_THREADS", 1)})
    return job_module.main([str(job.run_dir)])


def _exit(code: int) -> NoReturn:
    """End the child as an interpreter would (threads joined, atexit run, streams flushed), without the server's
    ``finally`` blocks."""
    with contextlib.suppress(BaseException):
        shutdown = getattr(threading, "_shutdown", None)  # join the job's non-daemon threads
        if shutdown is not None:
            shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
