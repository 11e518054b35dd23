"""The ray runtime against a real single-node Ray cluster on loopback (``ray start --head``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from aiforge.errors import InvalidInput, ServiceError
from aiforge.train.runtimes import Launch, Resources, get_runtime, thread_env
from aiforge.train.runtimes import ray as ray_runtime
from conftest import job

pytest.importorskip("ray.job_submission", reason="ray is not installed: pip install 'aiforge[ray]'")

pytestmark = pytest.mark.ray

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Ray cluster (2 CPUs) on 127.0.0.1; yields its dashboard address."""
    ray_cli = shutil.which("ray", path=str(BIN)) or shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the `ray` command is not installed: pip install 'aiforge[ray]'")
    # Ray puts its sockets under --temp-dir; a Unix socket path must stay under 108 bytes, so keep it short.
    temp = Path(f"/tmp/ray-{os.getpid()}")
    dashboard = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    start = [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=2",
             "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp}",
             f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
             f"--metrics-export-port={_free_port()}"]
    # --block keeps `ray start` in the foreground; ending it ends exactly this cluster's processes, where `ray stop`
    # would stop every Ray process on the machine (another test run's too).
    log = (tmp_path_factory.mktemp("ray-log") / "ray-start.log").open("w+")
    head = subprocess.Popen([*start, "--block"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(address, head, log)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_jobs_api(address: str, head: subprocess.Popen[bytes], log: IO[str]) -> None:
    from ray.job_submission import JobSubmissionClient

    for _ in range(240):  # the dashboard's job module comes up a little after the head node
        if head.poll() is not None:
            log.seek(0)
            pytest.fail(f"ray start exited with {head.returncode}:\n{log.read()}")
        try:
            JobSubmissionClient(address).list_jobs()
            return
        except Exception:  # not up yet
            time.sleep(0.5)
    log.seek(0)
    pytest.fail(f"the Ray dashboard at {address} never answered:\n{log.read()}")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A code package holding small scripts: one that prints and writes into the run folder, one that raises."""
    folder = tmp_path / "packages" / "0123456789abcdef0123"
    folder.mkdir(parents=True)
    (folder / "hello.py").write_text(
        "import os, sys\n"
        "from pathlib import Path\n"
        "print('hello from ray', os.environ['OMP_NUM_THREADS'], os.environ['AIFORGE_MARK'], flush=True)\n"
        "Path(sys.argv[1], 'out').mkdir()\n"
        "Path(sys.argv[1], 'out', 'cwd.txt').write_text(os.getcwd())\n"
    )
    (folder / "boom.py").write_text(
        "import json, sys, traceback\n"
        "from pathlib import Path\n"
        "try:\n"
        "    raise ValueError('bad learning rate: -1')\n"
        "except ValueError as exc:\n"
        "    Path(sys.argv[1], 'error.json').write_text(json.dumps(\n"
        "        {'type': 'ValueError', 'message': str(exc), 'traceback': traceback.format_exc()}))\n"
        "    print('about to fail', flush=True)\n"
        "    sys.exit(1)\n"
    )
    return folder


def _launch(tmp_path: Path, package: Path, address: str, command: str, **kw: object) -> Launch:
    run_dir = tmp_path / "home" / "runs" / f"r{time.monotonic_ns()}"
    run_dir.mkdir(parents=True)
    (run_dir / "job.json").write_text(json.dumps({"package": str(package)}))
    options = {"address": address, "command": f"python {command} {run_dir}", "poll_s": 0.2}
    return Launch(run_id=run_dir.name, run_dir=run_dir, package=package, python=sys.executable,
                  resources=Resources(cpus=0.5), env={"AIFORGE_MARK": "marked"},
                  options=options, **kw)  # type: ignore[arg-type]


def test_a_job_runs_on_the_cluster_in_the_package_with_its_logs_in_job_log(
    cluster: str, tmp_path: Path, package: Path
) -> None:
    launch = _launch(tmp_path, package, cluster, "hello.py")
    outcome = get_runtime("ray").launch(launch)
    assert outcome.status == "succeeded", outcome.error
    assert (outcome.exit_code, outcome.error) == (0, None)
    assert "hello from ray 1 marked" in (launch.run_dir / "job.log").read_text()  # 0.5 CPU -> 1 thread
    cwd = (launch.run_dir / "out" / "cwd.txt").read_text()
    assert Path(cwd).name != "" and (Path(cwd) / "hello.py").read_text() == (package / "hello.py").read_text()


def test_a_failing_job_is_failed_with_the_last_line_of_the_users_traceback(
    cluster: str, tmp_path: Path, package: Path
) -> None:
    launch = _launch(tmp_path, package, cluster, "boom.py")
    outcome = get_runtime("ray").launch(launch)
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert outcome.error == "ValueError: bad learning rate: -1"
    assert "about to fail" in (launch.run_dir / "job.log").read_text()


def test_a_failure_without_error_json_gives_rays_message(cluster: str, tmp_path: Path, package: Path) -> None:
    launch = _launch(tmp_path, package, cluster, "missing.py")
    outcome = get_runtime("ray").launch(launch)
    assert outcome.status == "failed"
    assert outcome.error is not None and "exit code 2" in outcome.error
    assert "missing.py" in (launch.run_dir / "job.log").read_text()


def test_a_job_past_its_time_limit_is_stopped_on_the_cluster(cluster: str, tmp_path: Path, package: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    (package / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    launch = _launch(tmp_path, package, cluster, "slow.py", timeout_s=3.0)
    outcome = get_runtime("ray").launch(launch)
    assert outcome.status == "timeout"
    assert outcome.error is not None and "time limit of 3 s" in outcome.error
    jobs = [job for job in JobSubmissionClient(cluster).list_jobs()
            if (job.metadata or {}).get("aiforge_run_id") == launch.run_id]
    assert [str(job.status.value) for job in jobs] == ["STOPPED"]


def test_ctrl_c_stops_the_job_and_reraises(
    cluster: str, tmp_path: Path, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.job_submission import JobSubmissionClient

    (package / "slow.py").write_text("import time\ntime.sleep(120)\n")
    launch = _launch(tmp_path, package, cluster, "slow.py")

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ray_runtime, "_pause", interrupt)
    with pytest.raises(KeyboardInterrupt):
        get_runtime("ray").launch(launch)
    jobs = [job for job in JobSubmissionClient(cluster).list_jobs()
            if (job.metadata or {}).get("aiforge_run_id") == launch.run_id]
    assert [str(job.status.value) for job in jobs] == ["STOPPED"]


def test_an_address_that_does_not_answer_is_a_service_error_naming_the_fix(tmp_path: Path, package: Path) -> None:
    address = f"http://127.0.0.1:{_free_port()}"  # bound then closed: nothing listens
    launch = _launch(tmp_path, package, address, "hello.py")
    fix = r"`ray start --head`.*set runtime\.address in the spec \(or RAY_ADDRESS\)"
    with pytest.raises(ServiceError, match=rf"no Ray cluster answers at {address} .*{fix}"):
        get_runtime("ray").launch(launch)
    assert not (launch.run_dir / "job.log").exists()


def test_the_address_comes_from_ray_address_when_the_spec_has_none(
    tmp_path: Path, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    launch = _launch(tmp_path, package, "", "hello.py")
    with pytest.raises(ServiceError, match=rf"at http://127\.0\.0\.1:{port} "):
        get_runtime("ray").launch(launch)


def test_a_ray_client_address_is_refused_with_the_dashboard_form(tmp_path: Path, package: Path) -> None:
    launch = _launch(tmp_path, package, "ray://127.0.0.1:10001", "hello.py")
    with pytest.raises(InvalidInput, match=r"not to a Ray Client address \(ray://127\.0\.0\.1:10001\); set "
                                           r"runtime\.address to the dashboard, for example http://HEAD:8265"):
        get_runtime("ray").launch(launch)


def test_ray_not_installed_says_how_to_install_it(
    tmp_path: Path, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)  # makes `import ray.job_submission` fail
    launch = _launch(tmp_path, package, "http://127.0.0.1:1", "hello.py")
    with pytest.raises(InvalidInput, match=r"pip install 'aiforge\[ray\]'"):
        get_runtime("ray").launch(launch)


def test_runtime_env_carries_package_env_threads_and_requirements(tmp_path: Path, package: Path) -> None:
    launch = Launch(run_id="r1", run_dir=tmp_path, package=package, python="python", requirements=["numpy==2.1.0"],
                    resources=Resources(cpus=1.5), env={"AIFORGE_HOME": "/shared/home"})
    env = ray_runtime.runtime_env(launch)
    assert thread_env(1.5)["OMP_NUM_THREADS"] == "2"
    assert env == {
        "working_dir": str(package),
        "env_vars": {**thread_env(1.5), "AIFORGE_HOME": "/shared/home"},
        "pip": ["numpy==2.1.0"],
    }
    assert "pip" not in ray_runtime.runtime_env(Launch(run_id="r1", run_dir=tmp_path, package=package, python="p"))


def test_the_real_training_job_runs_on_the_cluster(cluster: str, tmp_path: Path) -> None:
    """``python -m aiforge.train.job RUN_DIR`` itself (no command override), with a job.json as TRAIN writes it."""
    home = tmp_path / "home"
    package = home / "train" / "packages" / "abc123"
    package.mkdir(parents=True)
    (package / "train.py").write_text(
        "def main(ctx):\n"
        "    print('params', ctx.params, flush=True)\n"
        "    ctx.log_metric('acc', 0.9)\n"
        "    if ctx.params['lr'] > 1:\n"
        "        raise ValueError('lr too big')\n"
    )
    outcomes = []
    for run_id, lr in (("ok", 0.1), ("bad", 5.0)):
        run_dir = home / "runs" / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "job.json").write_text(json.dumps({
            "run_id": run_id, "entrypoint": "train.py:main", "workspace": str(home),
            "package": "train/packages/abc123", "params": {"lr": lr}, "needs_model": False,
        }))
        launch = Launch(run_id=run_id, run_dir=run_dir, package=package, python=sys.executable,
                        resources=Resources(cpus=0.5), env={"AIFORGE_HOME": str(home)},
                        options={"address": cluster, "poll_s": 0.2})
        outcomes.append(get_runtime("ray").launch(launch))
    assert (outcomes[0].status, outcomes[0].error) == ("succeeded", None)
    assert "params {'lr': 0.1}" in (home / "runs" / "ok" / "job.log").read_text()
    assert json.loads((home / "runs" / "ok" / "metrics.jsonl").read_text().splitlines()[0])["value"] == 0.9
    assert (outcomes[1].status, outcomes[1].error) == ("failed", "ValueError: lr too big")


def test_one_spec_gives_the_same_model_locally_and_on_the_cluster(cluster: str, train_ws, code: Path) -> None:
    """`aiforge.train` end to end: the same spec, run locally and on Ray, registers models that answer alike."""
    import numpy as np
    import onnxruntime as ort

    import aiforge

    local = aiforge.train(job(code), workspace=train_ws)
    remote = aiforge.train(job(code) | {"runtime": {"kind": "ray", "address": cluster}}, workspace=train_ws)
    assert (local.model.ref, remote.model.ref) == ("digits@v1", "digits@v2")
    assert remote.run.info["runtime"] == "ray" and remote.run.status == "succeeded"
    assert local.package.hash == remote.package.hash and local.model.metrics == remote.model.metrics
    X, _ = aiforge.FeatureSnapshot.from_snapshot(aiforge.snapshot("digits_features", workspace=train_ws)).to_numpy()
    answers = []
    for model in (local.model, remote.model):
        session = ort.InferenceSession(str(model.path))
        answers.append(session.run(None, {"input": X.astype(np.float32)}))
    np.testing.assert_array_equal(answers[0][0], answers[1][0])
    np.testing.assert_allclose(answers[0][1], answers[1][1], atol=1e-6)
