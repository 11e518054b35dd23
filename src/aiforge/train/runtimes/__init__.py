"""Where a training job runs: one interface, three runtimes.

A runtime takes a :class:`Launch` (a prepared run folder, the frozen code package, the job's interpreter and the
resources) and runs ``python -m aiforge.train.job RUN_DIR`` there, returning a :class:`Outcome`. The job itself
reads everything it needs from ``RUN_DIR/job.json`` and writes only inside ``RUN_DIR`` (see :mod:`aiforge.train.job`),
so every runtime gives the same result from the same spec:

``local``
    A subprocess on this machine with the resources enforced (cgroup CPU bandwidth and memory limit, affinity,
    thread variables): :mod:`.local`.
``ray``
    A Ray Job on an existing cluster (``ray start --head`` for one machine), with the package as its working
    directory: :mod:`.ray`. The cluster must see the workspace (a shared filesystem) and have aiforge installed.
``k8s``
    A Kubernetes Job manifest and a Dockerfile/build context for the package, written for ``kubectl apply``;
    nothing runs here: :mod:`.k8s`.

Run folder protocol (``RUN_DIR = AIFORGE_HOME/runs/<run id>``)::

    job.json        what to run: entrypoint, package, data refs (exact versions), params, fraction, workspace home
    job.log         the job's stdout and stderr (kept after a failure)
    progress.jsonl  {"t": seconds since start, "step": k, "total": n} lines written by ctx.progress()
    metrics.jsonl   {"t": ..., "name": ..., "value": ..., "step": ...} lines written by ctx.log_metric()
    error.json      {"type", "message", "traceback"} when the user's code raised
    out/            artifacts; out/model.onnx and out/model.json when the job saved a model
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from aiforge.errors import InvalidInput

__all__ = ["RUNTIMES", "Launch", "Outcome", "Resources", "Runtime", "get_runtime", "job_command", "thread_env"]

#: runtime name -> the module that defines ``RUNTIME`` (an object with ``launch(launch) -> Outcome``).
RUNTIMES: dict[str, str] = {
    "local": "aiforge.train.runtimes.local",
    "ray": "aiforge.train.runtimes.ray",
    "k8s": "aiforge.train.runtimes.k8s",
}

_OPENMP_VARS = ("OMP_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

Status = Literal["succeeded", "failed", "killed", "timeout", "oom", "exported"]


@dataclass(frozen=True)
class Resources:
    """What a job may use: ``cpus`` (a fraction such as 0.25 or 1.5 is a real CPU quota), ``memory`` in bytes
    (``None`` = no limit), ``gpus`` (whole devices)."""

    cpus: float = 1.0
    memory: int | None = None
    gpus: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "memory": self.memory, "gpus": self.gpus}


@dataclass(frozen=True)
class Launch:
    """One job to start.

    Attributes
    ----------
    run_id : str
        The run's id in the catalog.
    run_dir : Path
        The run folder (see the module docstring); ``job.json`` is already written.
    package : Path
        The frozen, content-addressed code folder; the job's working directory.
    python : str
        The interpreter of the job's environment (local runtime; others use their own).
    requirements : list of str
        The lock's lines (for runtimes that build their own environment: Ray's ``pip``, the Dockerfile).
    resources : Resources
        What to enforce or request.
    timeout_s : float, optional
        Kill the job after this many seconds (the deadline), if set.
    env : mapping
        Extra environment variables for the job (``AIFORGE_HOME`` among them).
    options : mapping
        Runtime-specific settings from the spec's ``runtime`` block (``address`` for Ray, ``image`` for k8s...).
    """

    run_id: str
    run_dir: Path
    package: Path
    python: str
    requirements: list[str] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    timeout_s: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """How a job ended.

    ``status``: succeeded, failed (the code raised or exited non-zero), killed (a signal or Ctrl-C), timeout,
    oom (it passed its memory limit), exported (k8s: manifests written, nothing ran). ``error`` says why in one
    line when it did not succeed; ``cpu_s`` and ``wall_s`` are what it used; ``enforced`` says how the resources
    were held (for example ``{"cpu": "cgroup", "memory": "cgroup"}``), ``files`` what a runtime wrote besides the
    run folder (k8s manifests).
    """

    status: Status
    exit_code: int | None = None
    error: str | None = None
    wall_s: float = 0.0
    cpu_s: float | None = None
    enforced: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


class Runtime(Protocol):
    name: str

    def launch(self, launch: Launch) -> Outcome: ...


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name`` (``local``, ``ray``, ``k8s``)."""
    if name not in RUNTIMES:
        raise InvalidInput(f"unknown runtime {name!r}; use one of: {', '.join(RUNTIMES)}")
    runtime: Runtime = importlib.import_module(RUNTIMES[name]).RUNTIME
    return runtime


def thread_env(cpus: float) -> dict[str, str]:
    """Thread-pool variables for a job with ``cpus`` CPUs.

    OpenMP pools (scikit-learn's gradient boosting, PyTorch) get ``ceil(cpus)`` threads that sleep instead of
    spinning while they wait: under a CPU quota a spinning thread burns the quota the working ones need (gradient
    boosting ran slower on 2 CPUs than on 1 here before). BLAS stays at one thread, the house rule for workers: its
    threads spin, and on the tall, narrow matrices of training data they cost more than they give (a logistic
    regression took 1.3 s on 2 CPUs against 0.9 s on 1 with two BLAS threads).
    """
    threads = str(max(1, math.ceil(cpus - 1e-9)))
    return {**dict.fromkeys(_OPENMP_VARS, threads), **dict.fromkeys(_BLAS_VARS, "1"), "OMP_WAIT_POLICY": "PASSIVE"}


def job_command(python: str, run_dir: Path | str) -> list[str]:
    """The command every runtime runs: ``PYTHON -m aiforge.train.job RUN_DIR``."""
    return [python, "-m", "aiforge.train.job", os.fspath(run_dir)]
