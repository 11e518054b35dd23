"""The warm interpreter: jobs forked from a server that preloaded the heavy modules, run by the real job command."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiforge.train.runtimes import warm

TRAINER = '''
import json
import os
import resource
import sys
import time

import numpy as np


def probe(ctx):
    from threadpoolctl import threadpool_info

    print("probe says hello")
    info = {
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgid(0), "cwd": os.getcwd(),
        "only_job": os.environ.get("WARM_ONLY_JOB"), "only_test": os.environ.get("WARM_ONLY_TEST"),
        "cores": sorted(os.sched_getaffinity(0)), "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "path0": sys.path[1], "argv": sys.argv, "draw": float(np.random.rand()),
        "pools": {pool["user_api"]: pool["num_threads"] for pool in threadpool_info()},
        "cgroup": open("/proc/self/cgroup").read(),
    }
    ctx.artifacts.mkdir(parents=True, exist_ok=True)
    (ctx.artifacts / "probe.json").write_text(json.dumps(info))


def fail(ctx):
    raise ValueError("bad training data: 0 rows")


def slow(ctx):
    open(os.path.join(sys.argv[1], "started"), "w").close()
    time.sleep(float(ctx.params.get("seconds", 30)))
    ctx.artifacts.mkdir(parents=True, exist_ok=True)
    (ctx.artifacts / "done").write_text("done")


def model(ctx):
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]], dtype=np.float32)
    return LogisticRegression().fit(X, [0, 1, 0, 1])
'''


@pytest.fixture(scope="module")
def key() -> Iterator[str]:
    """One warm server for the module, spawned by the first test; a variable only the test process has."""
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.environ["WARM_ONLY_TEST"] = "leak"  # the server inherits it; its jobs must not see it
    try:
        yield name
    finally:
        os.environ.pop("WARM_ONLY_TEST", None)
        warm.stop(name)
        warm._log_path(name).unlink(missing_ok=True)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(TRAINER), encoding="utf-8")
    return folder


def make_job(tmp_path: Path, package: Path, entrypoint: str, *, name: str = "run", needs_model: bool = False,
             params: dict | None = None, **fields: object) -> warm.WarmJob:
    run_dir = tmp_path / name
    run_dir.mkdir()
    spec = {"run_id": name, "entrypoint": entrypoint, "package": str(package), "data": {}, "params": params or {},
            "fraction": 1.0, "workspace": str(tmp_path / "ws"), "needs_model": needs_model}
    (run_dir / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    values: dict = {"run_dir": run_dir, "cwd": package, "env": {"WARM_ONLY_JOB": "yes", "OMP_NUM_THREADS": "1"},
                    "cgroup_procs": (), "cores": (), "rlimit_as": None, "log_path": run_dir / "job.log"}
    values.update(fields)
    return warm.WarmJob(**values)


def run(key: str, job: warm.WarmJob, *, idle_s: float = 60.0) -> tuple[int, float]:
    handle = warm.start(sys.executable, key, job, idle_s=idle_s)
    assert handle is not None, "the warm interpreter did not start (see <tmp>/aiforge-warm-<key>.log)"
    return wait(handle)


def wait(handle: warm.WarmHandle, timeout: float = 120.0) -> tuple[int, float]:
    deadline = time.monotonic() + timeout
    while (ended := handle.poll()) is None:
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    return ended


def probe(job: warm.WarmJob) -> dict:
    return json.loads((job.run_dir / "out" / "artifacts" / "probe.json").read_text())


def test_a_job_runs_in_a_forked_child_with_its_own_environment(key: str, package: Path, tmp_path: Path) -> None:
    env = {"WARM_ONLY_JOB": "yes", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"}
    first = make_job(tmp_path, package, "train.py:probe", name="first", env=env, cores=(0,), rlimit_as=64 << 30)
    second = make_job(tmp_path, package, "train.py:probe", name="second")

    code, cpu_s = run(key, first)
    assert (code, run(key, second)[0]) == (0, 0)
    assert cpu_s > 0
    one, two = probe(first), probe(second)
    assert "probe says hello" in (first.run_dir / "job.log").read_text()
    assert (one["only_job"], one["only_test"]) == ("yes", None)
    assert one["cwd"] == str(package) and one["path0"] == str(package)
    assert one["argv"][1:] == [str(first.run_dir)]
    assert one["sid"] == one["pgid"] == one["pid"]
    assert one["ppid"] == two["ppid"] != os.getpid()  # the same server forked both
    assert one["cores"] == [0] and one["rlimit_as"] == 64 << 30
    # the server's pools are sized to each job: OpenMP as OMP_NUM_THREADS, BLAS as OPENBLAS_NUM_THREADS
    assert one["pools"] == {"openmp": 2, "blas": 1} and two["pools"] == {"openmp": 1, "blas": 1}
    assert one["draw"] != two["draw"]  # NumPy reseeded in every child


def test_a_model_is_exported_in_the_child(key: str, package: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, package, "train.py:model", needs_model=True)
    assert run(key, job)[0] == 0
    assert (job.run_dir / "out" / "model.onnx").stat().st_size > 0


def test_a_failing_job_exits_with_1_and_its_traceback(key: str, package: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, package, "train.py:fail")
    assert run(key, job)[0] == 1
    assert "ValueError: bad training data: 0 rows" in (job.run_dir / "job.log").read_text()
    assert json.loads((job.run_dir / "error.json").read_text())["type"] == "ValueError"


def test_killing_the_process_group_reports_the_signal(key: str, package: Path, tmp_path: Path) -> None:
    handle = warm.start(sys.executable, key, make_job(tmp_path, package, "train.py:slow"))
    assert handle is not None
    assert handle.poll() is None
    os.killpg(handle.pid, signal.SIGKILL)
    assert wait(handle)[0] == -signal.SIGKILL


def test_sigterm_stops_the_job_as_interrupted(key: str, package: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, package, "train.py:slow")
    handle = warm.start(sys.executable, key, job)
    assert handle is not None
    deadline = time.monotonic() + 60
    while not (job.run_dir / "started").exists():  # the job's SIGTERM handler is in place once its code runs
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.01)
    os.killpg(handle.pid, signal.SIGTERM)
    assert wait(handle)[0] == 130
    assert json.loads((job.run_dir / "error.json").read_text())["type"] == "KeyboardInterrupt"


def test_a_job_outlives_a_client_that_went_away(key: str, package: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, package, "train.py:slow", params={"seconds": 0.2})
    handle = warm.start(sys.executable, key, job)
    assert handle is not None
    handle.close()
    done = job.run_dir / "out" / "artifacts" / "done"
    deadline = time.monotonic() + 60
    while not done.exists():
        assert time.monotonic() < deadline, "the job did not finish after its client left"
        time.sleep(0.02)


def test_a_cgroup_that_cannot_be_joined_ends_the_child_with_70(key: str, package: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-group" / "cgroup.procs"
    job = make_job(tmp_path, package, "train.py:probe", cgroup_procs=(missing,))
    assert run(key, job)[0] == 70
    assert f"could not join its cgroup ({missing})" in (job.run_dir / "job.log").read_text()
    assert not (job.run_dir / "out").exists()


def test_the_child_lands_in_a_real_cpu_cgroup(key: str, package: Path, tmp_path: Path) -> None:
    root = Path("/sys/fs/cgroup/cpu")
    group = root / f"aiforge-warm-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "cpu.cfs_quota_us").write_text("50000")
    except OSError as exc:
        if group.is_dir():
            group.rmdir()
        pytest.skip(f"no writable cgroup v1 cpu controller here: {exc}")
    try:
        job = make_job(tmp_path, package, "train.py:probe", cgroup_procs=(group / "cgroup.procs",))
        assert run(key, job)[0] == 0
        lines = [line.split(":", 2) for line in probe(job)["cgroup"].splitlines()]
        assert [path for _, controllers, path in lines if "cpu" in controllers.split(",")] == [f"/{group.name}"]
    finally:
        for _ in range(100):  # the kernel frees the emptied group a moment after the job exits
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.02)


def test_a_bad_request_is_answered_with_an_error(key: str, package: Path, tmp_path: Path) -> None:
    assert run(key, make_job(tmp_path, package, "train.py:slow", params={"seconds": 0}))[0] == 0  # server up
    sock = warm._connect(key)
    assert sock is not None
    with sock:
        sock.sendall(b'{"run_dir": "/tmp"}\n')
        line, _ = warm._read_line(sock, b"", 10.0)
    assert json.loads(line)["error"] == "bad request: missing cwd, env, cgroup_procs, cores, log_path"


def test_warm_off_returns_none(package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIFORGE_WARM", "0")
    name = f"test-off-{uuid.uuid4().hex[:8]}"
    assert warm.start(sys.executable, name, make_job(tmp_path, package, "train.py:probe")) is None
    assert warm.stop(name) is False  # nothing was spawned


def test_an_interpreter_that_cannot_start_returns_none(package: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, package, "train.py:probe")
    names = [f"test-none-{uuid.uuid4().hex[:8]}", f"test-false-{uuid.uuid4().hex[:8]}"]
    try:
        assert warm.start(str(tmp_path / "no-python"), names[0], job) is None
        assert warm.start("/bin/false", names[1], job) is None
    finally:
        for name in names:
            warm._log_path(name).unlink(missing_ok=True)


def test_a_server_that_speaks_nonsense_returns_none(package: Path, tmp_path: Path) -> None:
    name = f"test-fake-{uuid.uuid4().hex[:8]}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(warm.socket_address(name))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"nonsense\n")

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        assert warm.start(sys.executable, name, make_job(tmp_path, package, "train.py:probe")) is None
    finally:
        thread.join(10)
        listener.close()


def test_an_idle_server_exits_and_stop_ends_a_running_one(package: Path, tmp_path: Path) -> None:
    name = f"test-idle-{uuid.uuid4().hex[:8]}"
    try:
        job = make_job(tmp_path, package, "train.py:probe")
        assert run(name, job, idle_s=0.5)[0] == 0
        deadline = time.monotonic() + 30
        while (sock := warm._connect(name)) is not None:
            sock.close()
            assert time.monotonic() < deadline, "the idle server did not exit"
            time.sleep(0.05)
        assert warm.stop(name) is False
    finally:
        warm.stop(name)
        warm._log_path(name).unlink(missing_ok=True)


def test_stop_ends_the_server(key: str, package: Path, tmp_path: Path) -> None:
    assert run(key, make_job(tmp_path, package, "train.py:slow", params={"seconds": 0}))[0] == 0
    assert warm.stop(key) is True
    assert warm._connect(key) is None
    assert warm.stop(key) is False


def test_a_job_whose_server_died_reads_as_killed_once_it_is_gone(package: Path, tmp_path: Path) -> None:
    name = f"test-died-{uuid.uuid4().hex[:8]}"
    try:
        job = make_job(tmp_path, package, "train.py:slow")
        handle = warm.start(sys.executable, name, job, idle_s=30)
        assert handle is not None
        server = int(Path(f"/proc/{handle.pid}/stat").read_text().rpartition(")")[2].split()[1])
        os.kill(server, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while warm._connect(name) is not None:
            assert time.monotonic() < deadline, "the server did not die"
            time.sleep(0.02)
        assert handle.poll() is None  # the job still runs: its exit code is nobody's to report now
        os.killpg(handle.pid, signal.SIGKILL)
        assert wait(handle) == (-signal.SIGKILL, 0.0)
    finally:
        warm.stop(name)
        warm._log_path(name).unlink(missing_ok=True)
