"""The ``k8s`` runtime: a Kubernetes Job manifest and an image build context; nothing runs here.

``launch`` writes into ``runtime.out`` (default ``RUN_DIR/k8s/``)::

    job.yaml              a batch/v1 Job, ready for ``kubectl apply -f``
    context/Dockerfile    python:3.11-slim + aiforge (this version) + the requirements, the package at /app
    context/requirements.txt
    context/package/      the frozen code package

The Job runs ``python -m aiforge.train.job /mnt/aiforge/<run folder>`` in the image (``runtime.image``, default
``aiforge-train-<first 12 hex of the package hash>:latest``: build it from ``context/`` and push it where the cluster
pulls from). The workspace comes from the PersistentVolumeClaim ``runtime.pvc`` (default ``aiforge-home``), mounted
at ``/mnt/aiforge`` with ``AIFORGE_HOME`` pointing there, so the claim must hold this workspace (or at least the run
folder and the data snapshots it reads) at the same relative paths. The job's CPUs (as millicores), memory (MiB) and
GPUs (``nvidia.com/gpu``) are both requests and limits (guaranteed QoS, so the planned time holds);
``activeDeadlineSeconds`` is the time limit; ``backoffLimit: 0`` and ``restartPolicy: Never`` because a retry would
miss the deadline the plan was made for. The data references are in ``AIFORGE_DATA`` (JSON) and an annotation.

With ``runtime.build: true`` the image is built here with podman or buildah (never docker, which needs a daemon).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from aiforge.errors import InvalidInput, ServiceError
from aiforge.train.runtimes import Launch, Outcome, job_command, thread_env
from aiforge.version import __version__
from aiforge.workspace import write_output

__all__ = ["MOUNT", "RUNTIME", "K8sRuntime", "build_image", "default_image", "dockerfile", "job_manifest"]

#: Where the pod mounts the workspace (``AIFORGE_HOME`` inside the pod).
MOUNT = "/mnt/aiforge"
_VOLUME = "aiforge-home"
_BUILD_TIMEOUT_S = 3600


def _label(value: str) -> str:
    """A Kubernetes label value / name part: ``[a-z0-9-]``, alphanumeric at both ends, at most 40 characters."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:40].strip("-") or "run"


def default_image(package: Path) -> str:
    """``aiforge-train-<first 12 hex of the package hash>:latest`` (the package folder is named by its hash).

    Parameters
    ----------
    package : Path
        The frozen code package, ``AIFORGE_HOME/train/packages/<hash>``.

    Examples
    --------
    >>> default_image(Path("/ws/train/packages/9f86d081884c7d659a2feaa0"))
    'aiforge-train-9f86d081884c:latest'
    """
    return f"aiforge-train-{_label(package.name)[:12].strip('-')}:latest"


def _run_path(launch: Launch) -> str:
    """The run folder inside the pod: its path under the workspace, below :data:`MOUNT`."""
    home = launch.env.get("AIFORGE_HOME") or os.environ.get("AIFORGE_HOME") or ".aiforge"
    try:
        relative = launch.run_dir.resolve().relative_to(Path(home).resolve())
    except ValueError:
        relative = Path("runs") / launch.run_id
    return f"{MOUNT}/{relative.as_posix()}"


def _data_refs(run_dir: Path) -> dict[str, Any]:
    try:
        job = json.loads((run_dir / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    data = job.get("data") if isinstance(job, dict) else None
    return data if isinstance(data, dict) else {}


def _resources(launch: Launch) -> dict[str, Any]:
    amount: dict[str, Any] = {"cpu": f"{max(1, round(launch.resources.cpus * 1000))}m"}
    if launch.resources.memory is not None:
        amount["memory"] = f"{math.ceil(launch.resources.memory / 2**20)}Mi"
    if launch.resources.gpus:
        amount["nvidia.com/gpu"] = str(launch.resources.gpus)
    return {"requests": dict(amount), "limits": dict(amount)}


def job_manifest(launch: Launch) -> dict[str, Any]:
    """The ``batch/v1`` Job that runs ``launch`` in a pod (see the module docstring).

    Parameters
    ----------
    launch : Launch
        The job; ``options`` may hold ``image``, ``pvc`` and ``namespace``.

    Returns
    -------
    dict
        The Job, as a plain dict.
    """
    run = _label(launch.run_id)
    data = _data_refs(launch.run_dir)
    variables = {str(k): str(v) for k, v in launch.env.items()}
    variables.update(thread_env(launch.resources.cpus))
    variables.update({"AIFORGE_HOME": MOUNT, "AIFORGE_DATA": json.dumps(data, sort_keys=True)})
    labels = {"app.kubernetes.io/name": "aiforge-train", "app.kubernetes.io/part-of": "aiforge",
              "app.kubernetes.io/managed-by": "aiforge", "aiforge.dev/run-id": run}
    container: dict[str, Any] = {
        "name": "train",
        "image": str(launch.options.get("image") or default_image(launch.package)),
        "command": job_command("python", _run_path(launch)),
        "workingDir": "/app",
        "env": [{"name": name, "value": value} for name, value in sorted(variables.items())],
        "resources": _resources(launch),
        "volumeMounts": [{"name": _VOLUME, "mountPath": MOUNT}],
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": _VOLUME, "persistentVolumeClaim": {
            "claimName": str(launch.options.get("pvc") or "aiforge-home")}}],
    }
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {"metadata": {"labels": dict(labels)}, "spec": pod}}
    if launch.timeout_s is not None:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(launch.timeout_s))
    metadata: dict[str, Any] = {"name": f"aiforge-train-{run}", "labels": labels,
                                "annotations": {"aiforge.dev/run-id": launch.run_id,
                                                "aiforge.dev/data": json.dumps(data, sort_keys=True)}}
    if launch.options.get("namespace"):
        metadata["namespace"] = str(launch.options["namespace"])
    return copy.deepcopy({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec})


def dockerfile(requirements: list[str]) -> str:
    """The Dockerfile of the build context: the job's interpreter with aiforge and the requirements, code at /app.

    ``AIFORGE`` is a build argument (what pip installs), so an index without aiforge can get it from a wheel's URL
    (``--build-arg AIFORGE=https://files.example/aiforge-X-py3-none-any.whl``).

    Parameters
    ----------
    requirements : list of str
        The lock's lines, installed from ``requirements.txt`` beside the Dockerfile.

    Examples
    --------
    >>> print(dockerfile([]).splitlines()[1])
    FROM python:3.11-slim
    """
    install = "-r /tmp/requirements.txt " if any(line.strip() for line in requirements) else ""
    return (
        "# Built by aiforge (the k8s runtime of TRAIN): podman build -t IMAGE .\n"
        "FROM python:3.11-slim\n"
        f"ARG AIFORGE=aiforge=={__version__}\n"
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1\n"
        "COPY requirements.txt /tmp/requirements.txt\n"
        f'RUN pip install "$AIFORGE" {install}&& rm /tmp/requirements.txt\n'
        "COPY package/ /app/\n"
        "WORKDIR /app\n"
    )


def _write_context(launch: Launch, folder: Path) -> None:
    """Write the build context into ``folder``, replacing an earlier one only once the new one is complete."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".context-", dir=folder.parent))
    try:
        shutil.copytree(launch.package, staging / "package", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (staging / "requirements.txt").write_text("".join(f"{line}\n" for line in launch.requirements))
        (staging / "Dockerfile").write_text(dockerfile(list(launch.requirements)))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_image(context: Path, image: str) -> str:
    """Build ``image`` from ``context`` with podman or buildah, whichever is installed; return the tool's name.

    Parameters
    ----------
    context : Path
        The build context (a Dockerfile at its top).
    image : str
        The tag to give the image.

    Raises
    ------
    InvalidInput
        When neither podman nor buildah is installed.
    ServiceError
        When the build fails (its last lines of output in the message).
    """
    tool = shutil.which("podman") or shutil.which("buildah")
    if tool is None:
        raise InvalidInput(
            f"--build needs podman or buildah; neither is installed here; build the context at {context} with your "
            f"own tool (for example `docker build -t {image} {context}`), or install podman"
        )
    name = Path(tool).name
    command = [tool, "build" if name == "podman" else "bud", "-t", image, str(context)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"{name} could not build {image} from {context}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise ServiceError(
            f"{name} build of {image} failed (exit {done.returncode}); fix the requirements or the Dockerfile in "
            f"{context}:\n{tail}"
        )
    return name


class K8sRuntime:
    """Writes the Job manifest and the build context (see the module docstring)."""

    name = "k8s"

    def launch(self, launch: Launch) -> Outcome:
        """Export ``launch`` as ``job.yaml`` + ``context/``; with ``options["build"]``, build the image too.

        Parameters
        ----------
        launch : Launch
            The job; ``options``: ``out``, ``image``, ``pvc``, ``namespace``, ``build``.

        Returns
        -------
        Outcome
            Status ``exported``; ``files`` = ``{"manifest": ..., "context": ...}`` (and ``image`` when built).

        Raises
        ------
        InvalidInput
            When the output folder cannot be written, or ``build`` is set and neither podman nor buildah is here.
        ServiceError
            When the image build fails.
        """
        out = Path(launch.options.get("out") or launch.run_dir / "k8s")
        manifest = job_manifest(launch)
        image = manifest["spec"]["template"]["spec"]["containers"][0]["image"]
        claim = manifest["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        context = out / "context"
        header = (
            f"# aiforge train, run {launch.run_id}: kubectl apply -f job.yaml\n"
            f"# Image {image}: build it from {context} and push it where the cluster pulls from.\n"
            f"# Workspace: the PersistentVolumeClaim {claim} at {MOUNT} must hold AIFORGE_HOME "
            "(the run folder and its data).\n"
        )
        path = out / "job.yaml"
        try:
            _write_context(launch, context)
            write_output(path, header + yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False))
        except OSError as exc:
            raise InvalidInput(f"cannot write the Kubernetes job into {out}: {exc.strerror or exc}") from exc
        files = {"manifest": str(path), "context": str(context)}
        if launch.options.get("build"):
            build_image(context, image)
            files["image"] = image
        return Outcome("exported", files=files)


RUNTIME = K8sRuntime()
