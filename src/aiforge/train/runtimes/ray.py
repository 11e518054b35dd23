"""The ``ray`` runtime: the job as a Ray Job on an existing cluster.

``python -m aiforge.train.job RUN_DIR`` is submitted with :class:`ray.job_submission.JobSubmissionClient` to the
cluster's dashboard address (``runtime.address`` in the spec, else ``RAY_ADDRESS``, else ``http://127.0.0.1:8265``),
with a runtime environment: the code package as ``working_dir`` (uploaded by Ray, so at most Ray's upload limit,
500 MiB), the job's variables plus OMP/MKL/OPENBLAS threads matching the CPUs as ``env_vars``, and the lock's lines as
``pip`` when there are any (Ray builds that environment once per set of requirements and caches it on each node).
The CPUs (fractions allowed), memory and GPUs become ``entrypoint_num_cpus``/``entrypoint_memory``/
``entrypoint_num_gpus``: Ray places the job on a node that has them free and reserves them, but does not cap what the
process uses, unlike the ``local`` runtime's cgroup.

What the cluster must have. The run folder (``RUN_DIR``, inside ``AIFORGE_HOME``) must be on a filesystem that every
node mounts at the same path (NFS, a shared disk; on one machine it simply is), because the job reads ``job.json``
and writes its metrics, progress and model there. The nodes' Python must have aiforge installed (``pip install
aiforge``), as ``python`` on their ``PATH`` (``runtime.python`` names another interpreter).

While the job runs its logs are copied into ``RUN_DIR/job.log``; on a timeout (the deadline) or Ctrl-C the job is
stopped on the cluster, so nothing keeps using its resources.

Options (the spec's ``runtime`` block): ``address``, ``python``, ``poll_s`` (seconds between status checks, default
0.5) and ``command`` (replaces the whole entrypoint; for tests that run a script instead of a training job).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiforge.errors import InvalidInput, ServiceError
from aiforge.train.runtimes import Launch, Outcome, Status, job_command, thread_env

__all__ = ["DEFAULT_ADDRESS", "RUNTIME", "RayRuntime", "runtime_env"]

DEFAULT_ADDRESS = "http://127.0.0.1:8265"

_CONNECT_TIMEOUT_S = 3.0
_STOP_WAIT_S = 15.0
_STATUS: dict[str, Status] = {"SUCCEEDED": "succeeded", "FAILED": "failed", "STOPPED": "killed"}
_ENFORCED = {"cpu": "ray", "memory": "ray"}  # reserved by Ray's scheduler, not capped


def _pause(seconds: float) -> None:
    """The wait between status checks (a name of its own so tests can interrupt it)."""
    time.sleep(seconds)


def runtime_env(launch: Launch) -> dict[str, Any]:
    """The Ray runtime environment of a launch: ``working_dir``, ``env_vars`` and, with requirements, ``pip``.

    Parameters
    ----------
    launch : Launch
        The job; ``package`` becomes the working directory, ``env`` and the thread variables the environment.

    Returns
    -------
    dict
        A ``runtime_env`` for :meth:`JobSubmissionClient.submit_job`.
    """
    env: dict[str, Any] = {
        "working_dir": os.fspath(launch.package),
        "env_vars": {**thread_env(launch.resources.cpus), **{str(k): str(v) for k, v in launch.env.items()}},
    }
    if launch.requirements:
        env["pip"] = list(launch.requirements)
    return env


def _address(launch: Launch) -> str:
    address = str(launch.options.get("address") or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS)
    if address.startswith("ray://"):
        raise InvalidInput(
            f"the ray runtime submits Ray Jobs to the cluster's dashboard, not to a Ray Client address ({address}); "
            "set runtime.address to the dashboard, for example http://HEAD:8265"
        )
    return address if "://" in address else f"http://{address}"


def _check_reachable(address: str) -> None:
    """Fail within seconds when nothing answers at ``address`` (Ray's own client waits without a timeout)."""
    parts = urlsplit(address)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 8265)
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise _unreachable(address, exc) from exc


def _unreachable(address: str, cause: BaseException) -> ServiceError:
    return ServiceError(
        f"no Ray cluster answers at {address} ({cause}); start one with `ray start --head` (its dashboard listens "
        "on port 8265), or set runtime.address in the spec (or RAY_ADDRESS) to your cluster's dashboard address"
    )


def _client(address: str) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:
        raise InvalidInput(
            "the ray runtime needs Ray's job client, which is not installed: pip install 'aiforge[ray]'"
        ) from exc
    _check_reachable(address)
    try:
        return JobSubmissionClient(address)
    except (OSError, RuntimeError, ValueError) as exc:  # requests' errors are OSErrors; a port that is not HTTP
        raise _unreachable(address, exc) from exc


def _entrypoint(launch: Launch) -> str:
    command = launch.options.get("command")
    if command is not None:
        return command if isinstance(command, str) else shlex.join(str(part) for part in command)
    return shlex.join(job_command(str(launch.options.get("python", "python")), launch.run_dir))


def _user_error(run_dir: Path) -> str | None:
    """The last line of the user's traceback from ``error.json``, or ``None`` when the job wrote none."""
    try:
        error = json.loads((run_dir / "error.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(error, dict):
        return None
    lines = [line for line in str(error.get("traceback") or "").splitlines() if line.strip()]
    if lines:
        return lines[-1].strip()
    return f"{error.get('type', 'Error')}: {error.get('message', '')}".strip()


class _Logs:
    """Copies a Ray job's logs into ``job.log`` as they grow."""

    def __init__(self, client: Any, job_id: str, path: Path) -> None:
        self.client, self.job_id, self.path, self.written = client, job_id, path, 0
        path.write_text("")

    def sync(self) -> None:
        try:
            logs = self.client.get_job_logs(self.job_id)
        except Exception:  # logs are best effort; the job's status decides the outcome
            return
        if len(logs) > self.written:
            with self.path.open("a") as out:
                out.write(logs[self.written:])
            self.written = len(logs)


class RayRuntime:
    """Submits the job to a Ray cluster with Ray Jobs (see the module docstring)."""

    name = "ray"

    def launch(self, launch: Launch) -> Outcome:
        """Run ``launch`` as a Ray Job and wait for it.

        Parameters
        ----------
        launch : Launch
            The job; ``options["address"]`` is the cluster's dashboard address.

        Returns
        -------
        Outcome
            succeeded, failed (with the user's error from ``error.json`` or Ray's message), killed (stopped on the
            cluster by someone else) or timeout.

        Raises
        ------
        InvalidInput
            When Ray is not installed.
        ServiceError
            When no Ray cluster answers at the address.
        KeyboardInterrupt
            After stopping the job, on Ctrl-C.
        """
        address = _address(launch)
        client = _client(address)
        resources = launch.resources
        try:
            job_id = client.submit_job(
                entrypoint=_entrypoint(launch),
                submission_id=f"aiforge-{launch.run_id}-{uuid.uuid4().hex[:8]}",
                runtime_env=runtime_env(launch),
                metadata={"aiforge_run_id": launch.run_id},
                entrypoint_num_cpus=resources.cpus,
                entrypoint_num_gpus=resources.gpus or None,
                entrypoint_memory=resources.memory,
            )
        except (ConnectionError, RuntimeError) as exc:
            raise ServiceError(f"the Ray cluster at {address} refused the job: {exc}") from exc
        started = time.monotonic()
        logs = _Logs(client, job_id, launch.run_dir / "job.log")
        poll_s = float(launch.options.get("poll_s", 0.5))
        try:
            while True:
                status = str(client.get_job_status(job_id).value)
                if status in _STATUS:
                    break
                if launch.timeout_s is not None and time.monotonic() - started > launch.timeout_s:
                    _stop(client, job_id, poll_s)
                    logs.sync()
                    return Outcome(
                        "timeout", error=f"the job ran past its time limit of {launch.timeout_s:g} s and was "
                        f"stopped (Ray job {job_id})", wall_s=time.monotonic() - started, enforced=dict(_ENFORCED),
                    )
                logs.sync()
                _pause(poll_s)
        except KeyboardInterrupt:
            _stop(client, job_id, poll_s)
            logs.sync()
            raise
        except (OSError, RuntimeError) as exc:  # requests' errors are OSErrors
            raise ServiceError(
                f"lost the Ray cluster at {address} while Ray job {job_id} ran ({exc}); its logs so far are in "
                f"{logs.path}; check the cluster with `ray status`"
            ) from exc
        logs.sync()
        return _outcome(client.get_job_info(job_id), _STATUS[status], launch.run_dir, time.monotonic() - started)


def _stop(client: Any, job_id: str, poll_s: float) -> None:
    """Stop the job and wait (a while) until Ray says it ended, so its resources are free again."""
    try:
        client.stop_job(job_id)
        deadline = time.monotonic() + _STOP_WAIT_S
        while str(client.get_job_status(job_id).value) not in _STATUS and time.monotonic() < deadline:
            time.sleep(min(poll_s, 0.5))
    except (ConnectionError, RuntimeError):  # the cluster went away: nothing left to stop
        pass


def _outcome(info: Any, status: Status, run_dir: Path, wall_s: float) -> Outcome:
    if info.start_time and info.end_time:
        wall_s = (info.end_time - info.start_time) / 1000.0
    error = None
    if status != "succeeded":
        message = (info.message or "").strip().splitlines()
        error = _user_error(run_dir) or (message[0] if message else f"the Ray job {info.submission_id} {status}")
    return Outcome(status, exit_code=info.driver_exit_code, error=error, wall_s=wall_s, enforced=dict(_ENFORCED))


RUNTIME = RayRuntime()
