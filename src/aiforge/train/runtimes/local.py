"""The ``local`` runtime: the job in a subprocess on this machine, with its resources enforced.

- **CPU:** a cgroup CPU-bandwidth quota (``cfs_quota_us`` / ``cpu.max``), so 0.25 or 1.5 CPUs are real: the kernel
  lets the job run 25 ms or 150 ms of CPU time in every 100 ms. Beside it the job is pinned to ``ceil(cpus)`` cores
  and its thread pools are sized to match (``OMP_NUM_THREADS`` and friends).
- **Memory:** a cgroup memory limit (swap included where the kernel accounts it). When the job passes it the kernel
  stops the job, and the run ends with status ``oom`` and a message that names the limit, not a machine-wide OOM kill.

Where no cgroup can be written (a container without the delegation, another OS), the runtime falls back to what the
process itself can do: ``RLIMIT_AS`` for memory (the job gets a MemoryError) and CPU affinity for whole cores only,
and says so in :attr:`~aiforge.train.runtimes.Outcome.enforced` and a warning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import resource
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from aiforge.train.runtimes import Launch, Outcome, job_command, thread_env, warm
from aiforge.version import __version__

__all__ = ["RUNTIME", "LocalRuntime"]

_PERIOD_US = 100_000
_ROOT = Path("/sys/fs/cgroup")


@dataclass
class _Group:
    """One cgroup folder made for a job, and the files that limit it."""

    path: Path
    version: int

    def enter(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        for _ in range(50):  # the kernel frees an emptied cgroup a moment after its last process exits
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _own(controller: str) -> tuple[Path, int] | None:
    """Where this process's cgroup for ``controller`` is, and the cgroup version, if it can be written."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "" and (_ROOT / "cgroup.controllers").exists():
            if controller in (_ROOT / "cgroup.controllers").read_text().split():
                return _ROOT / path.lstrip("/"), 2
        elif controller in controllers.split(","):
            mount = _ROOT / controllers
            if not mount.is_dir():
                mount = _ROOT / controller
            return mount / path.lstrip("/"), 1
    return None


def _make(controller: str, name: str, settings: dict[str, str]) -> _Group | None:
    own = _own(controller)
    if own is None:
        return None
    base, version = own
    group = _Group(base / name, version)
    try:
        group.path.mkdir()
        for file, value in settings.items():
            target = group.path / file
            if target.exists():
                target.write_text(value)
            elif not file.startswith("memory.memsw") and not file.startswith("memory.swap"):
                raise OSError(f"{target} is missing")
    except OSError:
        group.remove()
        return None
    return group


def _cpu_group(name: str, cpus: float) -> _Group | None:
    quota = max(1000, round(cpus * _PERIOD_US))
    own = _own("cpu")
    if own is None:
        return None
    if own[1] == 2:
        return _make("cpu", name, {"cpu.max": f"{quota} {_PERIOD_US}"})
    return _make("cpu", name, {"cpu.cfs_period_us": str(_PERIOD_US), "cpu.cfs_quota_us": str(quota)})


def _memory_group(name: str, limit: int) -> _Group | None:
    own = _own("memory")
    if own is None:
        return None
    if own[1] == 2:
        return _make("memory", name, {"memory.max": str(limit), "memory.swap.max": "0"})
    return _make("memory", name, {"memory.limit_in_bytes": str(limit), "memory.memsw.limit_in_bytes": str(limit)})


def _oom_killed(group: _Group | None) -> bool:
    if group is None:
        return False
    name = "memory.events" if group.version == 2 else "memory.oom_control"
    try:
        for line in (group.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip() not in ("", "0"):
                return True
        if group.version == 1:
            return int((group.path / "memory.failcnt").read_text().strip() or 0) > 0
    except (OSError, ValueError):
        return False
    return False


class LocalRuntime:
    """Run jobs as subprocesses of this process (see the module docstring)."""

    name = "local"

    def launch(self, launch: Launch) -> Outcome:
        """Run ``launch`` here and wait for it; Ctrl-C stops the job (its process group) and propagates."""
        cpus = launch.resources.cpus
        memory = launch.resources.memory
        label = f"aiforge-{launch.run_id}"
        cpu_group = _cpu_group(label, cpus)
        memory_group = _memory_group(label, memory) if memory else None
        enforced = {"cpu": "cgroup" if cpu_group else "affinity"}
        if memory:
            enforced["memory"] = "cgroup" if memory_group else "rlimit"
        if cpu_group is None:
            warnings.warn(
                f"no writable cgroup for the CPU quota here: the job is pinned to {math.ceil(cpus)} core(s) instead "
                f"of held to {cpus:g} CPUs", stacklevel=2,
            )
        allowed = sorted(os.sched_getaffinity(0))
        cores = allowed[: max(1, min(len(allowed), math.ceil(cpus - 1e-9)))]
        rlimit = memory if memory and memory_group is None else None

        def enter() -> None:  # in the child, before exec: join the groups, then the limits hold for all it starts
            for group in (cpu_group, memory_group):
                if group is not None:
                    group.enter()
            os.sched_setaffinity(0, cores)
            if rlimit is not None:
                resource.setrlimit(resource.RLIMIT_AS, (rlimit, rlimit))

        env = {**os.environ, **thread_env(cpus), **launch.env}
        log_path = launch.run_dir / "job.log"
        start = time.monotonic()
        deadline = start + launch.timeout_s if launch.timeout_s else None
        timed_out = False
        try:
            job: _Cold | _Warm | None = None
            if rlimit is None:
                job = _start_warm(launch, env, (cpu_group, memory_group), cores)
            if job is None:
                with log_path.open("ab") as log:
                    job = _Cold(subprocess.Popen(
                        launch.options.get("command") or job_command(launch.python, launch.run_dir),
                        cwd=launch.package, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        preexec_fn=enter, start_new_session=True,
                    ))
            enforced["start"] = "warm" if isinstance(job, _Warm) else "cold"
            try:
                while (ended := job.poll()) is None:
                    if deadline is not None and time.monotonic() > deadline:
                        timed_out = True
                        ended = _stop(job)
                        break
                    time.sleep(0.02)
            except BaseException:
                _stop(job)
                raise
            wall = time.monotonic() - start
            code, cpu_s = ended if ended is not None else (-signal.SIGKILL, 0.0)
            oom = code != 0 and (_oom_killed(memory_group) or (rlimit is not None and _memory_error(launch.run_dir)))
        finally:
            for group in (cpu_group, memory_group):
                if group is not None:
                    group.remove()
        return _outcome(code, wall, cpu_s, enforced, timed_out=timed_out, oom=oom, launch=launch)


class _Cold:
    """A job started as a subprocess of this one: reaped here."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.pid = process.pid
        self._process = process
        self._ended: tuple[int, float] | None = None

    def poll(self) -> tuple[int, float] | None:
        if self._ended is None:
            try:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: nothing more to learn
                self._ended = (-signal.SIGKILL, 0.0)
                return self._ended
            if pid:
                self._process.returncode = os.waitstatus_to_exitcode(status)
                self._ended = (self._process.returncode, usage.ru_utime + usage.ru_stime)
        return self._ended


class _Warm:
    """A job forked by the warm interpreter of its environment (:mod:`.warm`): reaped there, reported here."""

    def __init__(self, handle: warm.WarmHandle) -> None:
        self.pid = handle.pid
        self._handle = handle

    def poll(self) -> tuple[int, float] | None:
        ended = self._handle.poll()
        if ended is not None:
            self._handle.close()
        return ended


def _start_warm(
    launch: Launch, env: dict[str, str], groups: tuple[_Group | None, ...], cores: list[int]
) -> _Warm | None:
    """Start the job in its environment's warm interpreter; ``None`` to start it cold (turned off, or it failed)."""
    if launch.options.get("command"):
        return None
    job = warm.WarmJob(
        run_dir=launch.run_dir, cwd=launch.package, env=env,
        cgroup_procs=tuple(group.path / "cgroup.procs" for group in groups if group is not None),
        cores=tuple(cores), rlimit_as=None, log_path=launch.run_dir / "job.log",
    )
    handle = warm.start(launch.python, _warm_key(launch.python), job)
    return _Warm(handle) if handle is not None else None


@functools.cache
def _warm_key(python: str) -> str:
    """One warm interpreter per job interpreter and per state of aiforge's own code (an edit starts a new one).

    Computed once per process: the aiforge this process runs is the one it imported, whatever is edited later.
    """
    digest = hashlib.sha256(f"{python}\0{__version__}".encode())
    for path in sorted(Path(__file__).resolve().parents[2].rglob("*.py")):
        digest.update(f"{path}:{path.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _memory_error(run_dir: Path) -> bool:
    with contextlib.suppress(OSError):
        return '"type": "MemoryError"' in (run_dir / "error.json").read_text(encoding="utf-8")
    return False


def _stop(job: _Cold | _Warm) -> tuple[int, float] | None:
    """SIGTERM the job's process group, SIGKILL it after 5 s; how it ended, once it has."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, sig)
        for _ in range(250):
            ended = job.poll()
            if ended is not None:
                return ended
            time.sleep(0.02)
    return None


def _outcome(
    code: int, wall: float, cpu_s: float, enforced: dict[str, str], *, timed_out: bool, oom: bool, launch: Launch
) -> Outcome:
    limit = launch.resources.memory
    if oom:
        return Outcome("oom", code, f"the job passed its memory limit of {_mib(limit)} (resources.memory); raise "
                       "the limit, or read less data at once", wall, cpu_s, enforced)
    if timed_out:
        return Outcome("timeout", code, f"the job ran past its timeout of {launch.timeout_s:g} s and was stopped",
                       wall, cpu_s, enforced)
    if code == 0:
        return Outcome("succeeded", 0, None, wall, cpu_s, enforced)
    if code < 0 or code == 130:
        signame = signal.Signals(-code).name if code < 0 else "SIGINT"
        return Outcome("killed", code, f"the job was stopped by {signame}", wall, cpu_s, enforced)
    return Outcome("failed", code, f"the job exited with code {code}", wall, cpu_s, enforced)


def _mib(size: int | None) -> str:
    return f"{(size or 0) / 1024**2:,.0f} MiB"


RUNTIME = LocalRuntime()
