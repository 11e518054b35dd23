"""TRAIN end to end on the local runtime: a job becomes a registered, served-ready ONNX model, or fails cleanly."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import aiforge
from aiforge.errors import InvalidInput, JobFailed, SnapshotNotFound
from aiforge.workspace import Registry, RunStore
from conftest import job


def _cgroups_writable() -> bool:
    from aiforge.train.runtimes import local

    group = local._cpu_group("aiforge-probe", 1.0)
    if group is None:
        return False
    group.remove()
    return True


def test_a_job_trains_exports_and_registers_a_model(train_ws, code: Path) -> None:
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression

    result = aiforge.train(job(code, params={"C": 0.5}, aliases=["candidate"]), workspace=train_ws)

    assert result.outcome.status == "succeeded"
    model = result.model
    assert model.ref == "digits@v1" and model.aliases == ("candidate",)
    assert Registry(train_ws).get("digits@candidate").version == 1
    assert model.lineage["data"] == {"features": "digits_features@v1"}
    assert model.lineage["code_hash"] == result.package.hash and model.lineage["params"] == {"C": 0.5}
    # the registered ONNX file answers as the same model trained here on the same rows
    features = aiforge.FeatureSnapshot.from_snapshot(aiforge.snapshot("digits_features", workspace=train_ws))
    X, y = features.to_numpy("train")
    assert model.metrics["rows"] == len(X)
    reference = LogisticRegression(max_iter=200, C=0.5).fit(X, y)
    session = ort.InferenceSession(str(model.path))
    labels = session.run(["label"], {"input": X.astype(np.float32)})[0]
    assert (labels == reference.predict(X)).mean() > 0.99
    assert json.loads((model.path.parent / "model.json").read_text())["framework"] == "sklearn"

    run = RunStore(train_ws).get(result.run.id)
    assert run.status == "succeeded" and run.info["model"] == "digits@v1"
    assert run.info["code_hash"] == result.package.hash and run.info["data"] == {"features": "digits_features@v1"}
    assert run.info["metrics"]["train_accuracy"] > 0.9
    assert (run.dir / "artifacts" / "classes.txt").read_text().startswith("0,1,2")
    assert not (run.dir / "out").exists()


def test_the_same_code_is_the_same_package_and_a_changed_byte_a_new_one(train_ws, code: Path) -> None:
    first = aiforge.train(job(code), workspace=train_ws)
    second = aiforge.train(job(code), workspace=train_ws)
    assert first.package.hash == second.package.hash and second.model.ref == "digits@v2"
    (code / "train.py").write_text((code / "train.py").read_text() + "\n# changed\n")
    third = aiforge.train(job(code), workspace=train_ws)
    assert third.package.hash != first.package.hash
    assert (third.package.path / "train.py").read_text().endswith("# changed\n")
    assert (first.package.path / "train.py").read_text() != (third.package.path / "train.py").read_text()


def test_code_that_raises_shows_the_users_traceback_and_registers_nothing(train_ws, code: Path) -> None:
    with pytest.raises(JobFailed) as caught:
        aiforge.train(job(code, "train.py:fail"), workspace=train_ws)
    message = str(caught.value)
    assert "ValueError: bad training data: 2" in message and "helper_that_raises" in message
    assert "aiforge/train/job.py" not in message  # the user's frames only
    assert Registry(train_ws).names() == []
    run = RunStore(train_ws).get(caught.value.run_id)
    assert run.status == "failed" and re.fullmatch(r"ValueError: bad training data: \d+ rows", run.error)
    assert "helper_that_raises" in run.log_path.read_text()  # the log of a failed run stays readable
    assert not (run.dir / "out").exists()


def test_a_script_entrypoint_uses_the_current_context(train_ws, code: Path) -> None:
    result = aiforge.train(job(code, "script.py"), workspace=train_ws)
    assert result.model.ref == "digits@v1"
    assert json.loads((result.model.path.parent / "model.json").read_text())["class"] == "DecisionTreeClassifier"


@pytest.mark.skipif(not _cgroups_writable(), reason="no writable cgroup on this machine: the quota falls back")
@pytest.mark.parametrize("start", ["warm", "cold"])
def test_the_cpu_quota_is_a_real_cgroup_quota(train_ws, code: Path, start: str, monkeypatch) -> None:
    monkeypatch.setenv("AIFORGE_WARM", "1" if start == "warm" else "0")
    result = aiforge.train(job(code, "train.py:quota", resources={"cpus": 0.75}), workspace=train_ws)
    metrics = result.run.info["metrics"]
    assert metrics["cfs_quota_us"] == 75_000  # 0.75 CPU of every 100 ms period
    assert metrics["omp_threads"] == 1 and metrics["cores"] == 1
    assert result.run.info["enforced"] == {"cpu": "cgroup", "start": start}


@pytest.mark.skipif(not _cgroups_writable(), reason="no writable cgroup on this machine: the limit falls back")
def test_a_job_over_its_memory_limit_ends_with_a_clear_error(train_ws, code: Path) -> None:
    with pytest.raises(JobFailed, match=r"(?s)ran out of memory .*memory limit of 256 MiB \(resources.memory\)"):
        aiforge.train(job(code, "train.py:hog", resources={"memory": "256Mi"}), workspace=train_ws)
    runs = RunStore(train_ws).list(kind="train")
    assert runs[0].status == "oom" and Registry(train_ws).names() == []


def test_a_timeout_stops_the_job(train_ws, code: Path) -> None:
    with pytest.raises(JobFailed, match=r"(?s)timed out.*timeout of 2 s"):
        aiforge.train(job(code, "train.py:slow", timeout="2s"), workspace=train_ws)
    assert RunStore(train_ws).list(kind="train")[0].status == "timeout"


def test_git_code_at_a_revision(train_ws, code: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(code), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "empty")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "code")
    commit = git("rev-parse", "HEAD").strip()
    spec = job(code) | {"code": {"git": str(code), "rev": commit}}
    result = aiforge.train(spec, workspace=train_ws)
    assert result.package.source["commit"] == commit
    assert result.model.lineage["code"]["commit"] == commit
    with pytest.raises(InvalidInput, match=r"cannot check out .* at 'no-such-branch'.*code.rev"):
        aiforge.train(job(code) | {"code": {"git": str(code), "rev": "no-such-branch"}, "entrypoint": "train.py:fit"},
                      workspace=train_ws)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 3}, r"train spec: epochs: unknown key"),
        ({"entrypoint": "missing.py:fit"}, r"missing.py is not in .*Python files there: script.py, train.py"),
        ({"entrypoint": "train.py:fitt"}, r"train.py defines no function 'fitt'; functions there: fit, fail"),
        ({"deadline": "2020-01-01T00:00:00Z"}, r"already passed"),
        ({"resources": {"cpus": 64}}, r"resources.cpus is 64 but this machine gives aiforge \d+ CPUs"),
        ({"resources": {"memory": "100TiB"}}, r"resources.memory is .* GiB but this machine has"),
        ({"resources": {"cpus": 1, "memory": "1Mi"}}, r"less than 16 MiB"),
    ],
)
def test_bad_specs_fail_before_anything_runs(train_ws, code: Path, change: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        aiforge.train(job(code) | change, workspace=train_ws)
    assert RunStore(train_ws).list() == []


def test_a_missing_snapshot_names_the_ones_that_exist(train_ws, code: Path) -> None:
    with pytest.raises(SnapshotNotFound, match="known snapshots: digits, digits_features"):
        aiforge.train(job(code) | {"data": {"features": "nope"}}, workspace=train_ws)


def test_environment_is_built_once_per_lock_and_reused(train_ws, code: Path, tmp_path: Path) -> None:
    wheel = _tiny_wheel(tmp_path)
    spec = job(code, requirements=[str(wheel)])
    first = aiforge.train(spec, workspace=train_ws)
    second = aiforge.train(spec, workspace=train_ws)
    assert first.environment.built and not second.environment.built
    assert first.environment.hash == second.environment.hash and first.environment.python != os.sys.executable
    probe = subprocess.run([first.environment.python, "-c", "import tinyaiforgepkg, aiforge; print(tinyaiforgepkg.X)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "42"  # the lock's package on top of the platform's own


def _tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel made by hand, so installing it needs no index."""
    import base64
    import hashlib
    import zipfile

    files = {"tinyaiforgepkg/__init__.py": b"X = 42\n",
             "tinyaiforgepkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinyaiforgepkg\nVersion: 1.0\n",
             "tinyaiforgepkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                   b"Tag: py3-none-any\n"}
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(data)}\n"
    record += "tinyaiforgepkg-1.0.dist-info/RECORD,,\n"
    path = folder / "tinyaiforgepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("tinyaiforgepkg-1.0.dist-info/RECORD", record)
    return path


def test_a_kubernetes_job_is_exported_without_building_its_environment_here(
    train_ws, code: Path, tmp_path: Path
) -> None:
    # a requirement pip could never install here: the image installs it, so nothing is built on this machine
    spec = job(code, requirements=["no-such-package-aiforge-test==9.9"],
               runtime={"kind": "k8s", "out": str(tmp_path / "k8s")})
    result = aiforge.train(spec, workspace=train_ws)
    assert result.outcome.status == "exported" and result.model is None
    assert result.run.status == "exported"
    manifest = Path(result.outcome.files["manifest"])
    assert manifest.is_file() and "no-such-package-aiforge-test==9.9" in (
        manifest.parent / "context" / "requirements.txt").read_text()
    assert not (train_ws.home / "train" / "envs").exists()
