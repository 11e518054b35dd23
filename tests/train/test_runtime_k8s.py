"""The k8s runtime: a valid batch/v1 Job carrying the launch's resources, deadline and data, and a build context."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aiforge.errors import InvalidInput, ServiceError
from aiforge.train.runtimes import Launch, Resources, get_runtime
from aiforge.train.runtimes.k8s import build_image, default_image, job_manifest
from aiforge.version import __version__

K8S_VERSION = "1.37.0"  # as the SERVE manifests: the newest schema kubernetes_validate bundles
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def launch(tmp_path: Path) -> Launch:
    home = tmp_path / "home"
    package = home / "train" / "packages" / HASH
    (package / "pkg").mkdir(parents=True)
    (package / "train.py").write_text("def main(ctx):\n    return None\n")
    (package / "pkg" / "util.py").write_text("X = 1\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    run_dir = home / "runs" / "20261202-0100-Digits_7"
    run_dir.mkdir(parents=True)
    (run_dir / "job.json").write_text(json.dumps({"run_id": "20261202-0100-Digits_7", "entrypoint": "train.py:main",
                                                  "data": {"train": "digits@v3", "labels": "digits_labels@v1"}}))
    return Launch(run_id="20261202-0100-Digits_7", run_dir=run_dir, package=package, python="/usr/bin/python3",
                  requirements=["scikit-learn==1.5.2", "numpy>=1.26"],
                  resources=Resources(cpus=1.25, memory=1536 * 2**20 + 1, gpus=1), timeout_s=1799.5,
                  env={"AIFORGE_HOME": str(home), "AIFORGE_SEED": "7"})


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_the_manifest_is_a_valid_job_with_resources_deadline_and_data(launch: Launch) -> None:
    outcome = get_runtime("k8s").launch(launch)
    assert outcome.status == "exported"
    path = Path(outcome.files["manifest"])
    assert path == launch.run_dir / "k8s" / "job.yaml"
    job = yaml.safe_load(path.read_text())
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == ("batch/v1", "Job",
                                                                        "aiforge-train-20261202-0100-digits-7")
    assert job["metadata"]["labels"]["aiforge.dev/run-id"] == "20261202-0100-digits-7"
    assert job["metadata"]["annotations"]["aiforge.dev/run-id"] == "20261202-0100-Digits_7"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 1800)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert spec["template"]["metadata"]["labels"]["aiforge.dev/run-id"] == "20261202-0100-digits-7"
    [container] = pod["containers"]
    amount = {"cpu": "1250m", "memory": "1537Mi", "nvidia.com/gpu": "1"}  # memory rounded up, never below the plan
    assert container["resources"] == {"requests": amount, "limits": amount}
    assert container["image"] == "aiforge-train-9f86d081884c:latest"
    assert container["command"] == ["python", "-m", "aiforge.train.job", "/mnt/aiforge/runs/20261202-0100-Digits_7"]
    env = _env(container)
    assert env["AIFORGE_HOME"] == "/mnt/aiforge"
    assert env["AIFORGE_SEED"] == "7"
    assert env["OMP_NUM_THREADS"] == "2"
    assert json.loads(env["AIFORGE_DATA"]) == {"train": "digits@v3", "labels": "digits_labels@v1"}
    assert container["volumeMounts"] == [{"name": "aiforge-home", "mountPath": "/mnt/aiforge"}]
    assert pod["volumes"] == [{"name": "aiforge-home", "persistentVolumeClaim": {"claimName": "aiforge-home"}}]
    assert path.read_text().startswith("# aiforge train, run 20261202-0100-Digits_7: kubectl apply -f job.yaml\n")


def test_options_set_image_claim_namespace_and_output_folder(launch: Launch, tmp_path: Path) -> None:
    out = tmp_path / "export"
    options = {"out": str(out), "image": "registry.local/digits:3", "pvc": "team-ws", "namespace": "ml"}
    launch = replace(launch, options=options, timeout_s=None, resources=Resources(cpus=0.25))
    outcome = get_runtime("k8s").launch(launch)
    assert outcome.files == {"manifest": str(out / "job.yaml"), "context": str(out / "context")}
    job = yaml.safe_load((out / "job.yaml").read_text())
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert "activeDeadlineSeconds" not in job["spec"]
    assert job["metadata"]["namespace"] == "ml"
    assert pod["containers"][0]["image"] == "registry.local/digits:3"
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "250m"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "team-ws"


def test_a_run_folder_outside_the_workspace_is_mounted_by_its_run_id(launch: Launch, tmp_path: Path) -> None:
    launch = replace(launch, env={"AIFORGE_HOME": str(tmp_path / "elsewhere")})
    command = job_manifest(launch)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-1] == "/mnt/aiforge/runs/20261202-0100-Digits_7"


def test_the_build_context_holds_dockerfile_requirements_and_the_package(launch: Launch) -> None:
    outcome = get_runtime("k8s").launch(launch)
    context = Path(outcome.files["context"])
    assert (context / "requirements.txt").read_text() == "scikit-learn==1.5.2\nnumpy>=1.26\n"
    assert (context / "package" / "train.py").read_text() == (launch.package / "train.py").read_text()
    assert (context / "package" / "pkg" / "util.py").read_text() == "X = 1\n"
    assert not (context / "package" / "__pycache__").exists()
    lines = (context / "Dockerfile").read_text().splitlines()
    assert "FROM python:3.11-slim" in lines
    assert f"ARG AIFORGE=aiforge=={__version__}" in lines
    assert 'RUN pip install "$AIFORGE" -r /tmp/requirements.txt && rm /tmp/requirements.txt' in lines
    assert lines[-2:] == ["COPY package/ /app/", "WORKDIR /app"]
    assert sorted(p.name for p in context.parent.iterdir()) == ["context", "job.yaml"]  # no staging folder left


def test_exporting_again_replaces_the_context(launch: Launch) -> None:
    get_runtime("k8s").launch(launch)
    stale = launch.run_dir / "k8s" / "context" / "package" / "stale.py"
    stale.write_text("old\n")
    get_runtime("k8s").launch(launch)
    assert not stale.exists()
    assert (launch.run_dir / "k8s" / "context" / "package" / "train.py").exists()


def test_build_without_podman_or_buildah_names_the_context(launch: Launch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    launch = replace(launch, options={"build": True})
    context = launch.run_dir / "k8s" / "context"
    with pytest.raises(InvalidInput, match=rf"--build needs podman or buildah; neither is installed here; build the "
                                           rf"context at {context} with your own tool"):
        get_runtime("k8s").launch(launch)
    assert (context / "Dockerfile").exists()  # the context is there to build by hand


def _fake_tool(folder: Path, name: str, exit_code: int) -> Path:
    """A stand-in for podman/buildah (neither can run here) that records its arguments."""
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f'#!/bin/sh\necho "$@" > "{folder}/args"\necho "step 3/5 failed: no such package" >&2\n'
                    f"exit {exit_code}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return folder


def test_build_runs_podman_on_the_context(launch: Launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = _fake_tool(tmp_path / "bin", "podman", 0)
    monkeypatch.setenv("PATH", str(tools))
    launch = replace(launch, options={"build": True})
    outcome = get_runtime("k8s").launch(launch)
    assert outcome.files["image"] == "aiforge-train-9f86d081884c:latest"
    assert (tools / "args").read_text().split() == ["build", "-t", "aiforge-train-9f86d081884c:latest",
                                                    outcome.files["context"]]


def test_a_failed_buildah_build_is_a_service_error_with_its_output(tmp_path: Path, launch: Launch,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_fake_tool(tmp_path / "bin", "buildah", 1)))
    context = tmp_path / "ctx"
    context.mkdir()
    with pytest.raises(ServiceError, match=r"(?s)buildah build of img:1 failed \(exit 1\).*no such package"):
        build_image(context, "img:1")
    assert (tmp_path / "bin" / "args").read_text().split() == ["bud", "-t", "img:1", str(context)]


def test_default_image_uses_the_first_12_hex_of_the_package_hash() -> None:
    assert default_image(Path("/ws/train/packages") / HASH) == "aiforge-train-9f86d081884c:latest"
