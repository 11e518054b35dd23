"""`up`: real inference + APS processes on loopback, a request end to end, and no process left behind."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from aiforge.errors import ServiceError
from aiforge.serve.deploy.export import export_sklearn
from aiforge.serve.deploy.settings import ServeSettings
from aiforge.serve.deploy.stack import Stack, up


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ports() -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(_free_port())
    aps, http, grpc = sorted(ports)
    return {"aps_port": aps, "http_port": http, "grpc_port": grpc}


@pytest.fixture(scope="module")
def iris_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, np.ndarray]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(X, y)
    repo = tmp_path_factory.mktemp("up") / "models"
    export_sklearn(model, repo, n_features=4, name="iris")
    return repo, model, X


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _gone(pids: set[int]) -> bool:
    """None of ``pids`` is still running (a reaped process no longer exists; a zombie would be an orphan too)."""
    return not any(psutil.pid_exists(pid) for pid in pids)


@pytest.fixture
def started() -> Iterator[list[Stack]]:
    """Collects the stacks a test starts and always stops them, even when the test fails half-way."""
    stacks: list[Stack] = []
    try:
        yield stacks
    finally:
        for stack in stacks:
            stack.stop()


def test_up_serves_predictions_then_stops_cleanly(iris_repo: tuple[Path, Any, np.ndarray], tmp_path: Path,
                                                  started: list[Stack]) -> None:
    repo, model, X = iris_repo
    settings = ServeSettings(model_repo=repo, model="iris", **_ports())
    stack = up(settings, wait_s=60, log_dir=tmp_path / "logs")
    started.append(stack)
    assert stack.urls == {
        "aps": f"http://127.0.0.1:{settings.aps_port}",
        "inference_http": f"http://127.0.0.1:{settings.http_port}",
        "inference_grpc": f"grpc://127.0.0.1:{settings.grpc_port}",
    }
    assert [stack.name_of(p) for p in stack.processes] == ["aps-0", "inference-0"]
    pids = {p.pid for p in stack.processes}
    assert pids <= _children()
    for process in psutil.Process().children(recursive=True):
        if process.pid in pids:
            assert process.environ()["OMP_NUM_THREADS"] == "1"

    response = httpx.post(stack.urls["aps"] + "/predict", json={"instances": X[:3].tolist()}, timeout=10)
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert outputs["label"] == model.predict(X[:3]).tolist()
    np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(X[:3]), atol=1e-4)
    assert httpx.get(stack.urls["inference_http"] + "/v2/health/ready", timeout=5).status_code == 200

    stack.stop()
    assert [p.returncode for p in stack.processes] == [0, 0]  # SIGTERM = graceful shutdown, not a kill
    assert _gone(pids)
    assert not stack.alive()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["aps-0.log", "inference-0.log"]
    stack.stop()  # a second stop is harmless


def test_up_replicas_share_ports_and_auth(iris_repo: tuple[Path, Any, np.ndarray], started: list[Stack],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo, model, X = iris_repo
    monkeypatch.setenv("IRIS_TOKEN", "s3cret")
    settings = ServeSettings(model_repo=repo, model="iris", replicas=2, cpus=1, token_env="IRIS_TOKEN",
                             metrics_public=False, **_ports())
    with up(settings, wait_s=60) as stack:
        started.append(stack)
        assert sorted(stack.name_of(p) for p in stack.processes) == ["aps-0", "aps-1", "inference-0", "inference-1"]
        assert stack.alive()
        url = stack.urls["aps"] + "/predict"
        assert httpx.post(url, json={"instances": X[:1].tolist()}, timeout=10).status_code == 401
        with httpx.Client(headers={"Authorization": "Bearer s3cret"}, timeout=10) as client:
            for _ in range(8):  # new connections: the kernel spreads them over both replicas
                response = client.post(url, json={"instances": X[:1].tolist()}, headers={"Connection": "close"})
                assert response.status_code == 200, response.text
                assert response.json()["outputs"]["label"] == model.predict(X[:1]).tolist()
            for base in (stack.urls["aps"], stack.urls["inference_http"]):  # metrics_public=False reached both
                assert httpx.get(base + "/metrics", timeout=10).status_code == 401
                assert client.get(base + "/metrics").status_code == 200
        pids = {p.pid for p in stack.processes}
    assert _gone(pids)


def test_up_with_a_broken_model_fails_fast_and_leaves_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"this is not an ONNX model")
    settings = ServeSettings(model_repo=repo, model="broken", **_ports())
    before = _children()
    with pytest.raises(ServiceError) as info:
        up(settings, wait_s=60)
    message = str(info.value)
    assert message.startswith(f"inference-0 exited with code 1 while starting 'broken' from {repo}; its last output")
    assert "broken" in message.split("its last output", 1)[1]  # the server's own error names the model
    assert _children() - before == set()


def test_up_not_ready_in_time_stops_everything(iris_repo: tuple[Path, Any, np.ndarray]) -> None:
    repo, _, _ = iris_repo
    settings = ServeSettings(model_repo=repo, model="iris", **_ports())
    before = _children()
    with pytest.raises(ServiceError, match=r"^the servers for 'iris' were not ready within 0\.001 s: "
                       r"http://127\.0\.0\.1:\d+/v2/health/ready, http://127\.0\.0\.1:\d+/health/ready, aps-0, "
                       r"inference-0 did not answer 200 or report ready; raise wait_s if the model is slow to load"):
        up(settings, wait_s=0.001)
    assert _children() - before == set()


def test_up_refuses_an_unset_token_variable_before_starting(iris_repo: tuple[Path, Any, np.ndarray],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from aiforge.errors import InvalidInput

    repo, _, _ = iris_repo
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    settings = ServeSettings(model_repo=repo, model="iris", token_env="NO_SUCH_TOKEN", **_ports())
    before = _children()
    with pytest.raises(InvalidInput, match=r"^the token variable \$NO_SUCH_TOKEN is unset or empty"):
        up(settings)
    assert _children() - before == set()


def test_cli_serve_up_prints_urls_and_stops_on_sigterm(iris_repo: tuple[Path, Any, np.ndarray]) -> None:
    import signal
    import subprocess
    import sys

    repo, model, _ = iris_repo
    ports = _ports()
    command = [sys.executable, "-m", "aiforge", "serve", "up", "iris", "--model-repo", str(repo),
               "--port", str(ports["aps_port"]), "--http-port", str(ports["http_port"]),
               "--grpc-port", str(ports["grpc_port"])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    servers: set[int] = set()
    try:
        assert process.stdout is not None
        lines = []
        while not lines or lines[-1] != "Ctrl-C to stop":
            line = process.stdout.readline()
            assert line, f"serve up ended early: {lines} {process.stderr.read() if process.stderr else ''}"
            lines.append(line.rstrip("\n"))
        aps = f"http://127.0.0.1:{ports['aps_port']}"
        assert lines[0] == f"serving 'iris' from {repo} (1 replica each, 1 ONNX Runtime thread per inference replica)"
        assert lines[1] == f"  APS        {aps}/predict   (docs: {aps}/docs)"
        assert lines[2] == (f"  inference  http://127.0.0.1:{ports['http_port']}/v2   "
                            f"grpc://127.0.0.1:{ports['grpc_port']}")
        assert lines[4] == (f"try: curl -s -X POST {aps}/predict -H 'Content-Type: application/json' "
                            "-d '{\"instances\": [[0.0, 0.0, 0.0, 0.0]]}'")
        servers = {child.pid for child in psutil.Process(process.pid).children(recursive=True)}
        assert len(servers) == 2
        response = httpx.post(aps + "/predict", json={"instances": [[0.0, 0.0, 0.0, 0.0]]}, timeout=10)
        assert response.status_code == 200
        assert response.json()["outputs"]["label"] == model.predict(np.zeros((1, 4), np.float32)).tolist()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in servers:
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
    assert servers and _gone(servers)


# -- the curl example and supervision (what `serve up` prints and runs) ----------------------------------------------


def test_curl_example_spells_out_one_row_of_the_models_input(iris_repo: tuple[Path, Any, np.ndarray],
                                                             tmp_path: Path) -> None:
    repo, _, _ = iris_repo
    ports = _ports()
    aps = f"http://127.0.0.1:{ports['aps_port']}"
    stack = Stack(ServeSettings(model_repo=repo, model="iris", **ports), tmp_path)  # nothing started
    assert stack.curl_example() == (f"curl -s -X POST {aps}/predict -H 'Content-Type: application/json' "
                                    "-d '{\"instances\": [[0.0, 0.0, 0.0, 0.0]]}'")
    stack = Stack(ServeSettings(model_repo=repo, model="iris", version="1", token_env="IRIS_TOKEN", **ports), tmp_path)
    assert stack.curl_example() == (f"curl -s -X POST {aps}/predict -H 'Content-Type: application/json' "
                                    "-H \"Authorization: Bearer $IRIS_TOKEN\" "
                                    "-d '{\"instances\": [[0.0, 0.0, 0.0, 0.0]]}'")
    stack = Stack(ServeSettings(model_repo=repo, model="iris", handler="h.py:H", **ports), tmp_path)
    assert stack.curl_example() == (f"curl -s -X POST {aps}/predict -H 'Content-Type: application/json' "
                                    "-d '<the JSON body h.py:H reads>'")  # no file it cannot know of


def test_curl_example_of_a_transform_handler_is_a_record_it_accepts(iris_repo: tuple[Path, Any, np.ndarray],
                                                                      tmp_path: Path) -> None:
    import json

    import pyarrow as pa

    from aiforge.batch.transform import Transform
    from aiforge.serve.aps.handler import Context, TransformHandler

    repo, _, _ = iris_repo
    table = pa.table({"age": [20, 40], "city": ["Seoul", "Busan"], "vip": [True, False]})
    features = [{"numeric": {"column": "age"}}, {"categorical": {"column": "city"}}, {"numeric": {"column": "vip"}}]
    path = Transform(features=features).fit(table).save(tmp_path)
    stack = Stack(ServeSettings(model_repo=repo, model="iris", handler=f"transform:{path}", **_ports()), tmp_path)
    body = stack.curl_example().split(" -d '", 1)[1].removesuffix("'")
    record = json.loads(body)
    assert record == {"age": 0, "city": "", "vip": False}
    handler = TransformHandler(path)
    handler.load()
    assert handler.preprocess(record, Context("r", "iris"))["input"].shape[0] == 1  # the APS would take it


def test_serve_up_logs_go_to_the_workspace(tmp_path: Path) -> None:
    import os

    from aiforge.serve.deploy.stack import default_log_dir

    folder = default_log_dir("Churn Model/v1", tmp_path / "home")
    assert folder.parent == tmp_path / "home" / "logs" / "serve"
    assert folder.name.startswith("Churn-Model-v1-") and folder.name.endswith(f"-{os.getpid()}")


def test_curl_example_without_a_readable_width(iris_repo: tuple[Path, Any, np.ndarray], tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    from aiforge.workspace import ModelStore

    store = ModelStore(tmp_path / "models")
    store.write_version("broken", b"this is not an ONNX model")
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((80, 65)).astype(np.float32)
    export_sklearn(LinearRegression().fit(wide, wide[:, 0]), store.root, n_features=65, name="wide")
    ports = _ports()
    for model in ("broken", "wide"):  # unreadable, or too wide to spell out: the row is left to the user
        stack = Stack(ServeSettings(model_repo=store.root, model=model, **ports), tmp_path)
        assert stack.curl_example().endswith("-d '{\"instances\": [[...]]}'"), model


def test_supervise_stops_everything_on_sigterm(iris_repo: tuple[Path, Any, np.ndarray]) -> None:
    import os
    import signal

    from aiforge.serve.deploy.supervise import supervise

    repo, _, _ = iris_repo
    settings = ServeSettings(model_repo=repo, model="iris", **_ports())
    events: list[str] = []
    pids: set[int] = set()
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))

    def ready(stack: Stack) -> None:
        events.append("ready")
        pids.update(p.pid for p in stack.processes)
        os.kill(os.getpid(), signal.SIGTERM)  # as a service manager stops `serve up`

    assert supervise(settings, wait_s=60, on_ready=ready, on_stopping=lambda: events.append("stopping")) is None
    assert events == ["ready", "stopping"]
    assert len(pids) == 2 and _gone(pids)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored


def test_supervise_with_restarts_off_stops_the_others_when_one_process_exits(
        iris_repo: tuple[Path, Any, np.ndarray]) -> None:
    from aiforge.serve.deploy.supervise import supervise

    repo, _, _ = iris_repo
    settings = ServeSettings(model_repo=repo, model="iris", max_restarts=0, **_ports())
    stacks: list[Stack] = []

    def ready(stack: Stack) -> None:
        stacks.append(stack)
        inference = next(p for p in stack.processes if stack.name_of(p) == "inference-0")
        inference.kill()

    with pytest.raises(ServiceError, match=r"^inference-0 exited with code -9: 1 crash within 60 s, more than the 0 "
                                           r"restarts allowed \(max_restarts\); stopping the others\. Its last "
                                           r"output:\nready: serving iris"):
        supervise(settings, wait_s=60, on_ready=ready, on_stopping=lambda: pytest.fail("not an interrupt"),
                  on_event=lambda line: pytest.fail(f"no restart: {line}"))
    (stack,) = stacks
    assert [stack.name_of(p) for p in stack.processes] == ["aps-0", "inference-0"]
    assert stack.processes[0].returncode == 0  # the APS was stopped gracefully
    assert _gone({p.pid for p in stack.processes})


def test_supervise_restarts_a_killed_inference_server_while_the_aps_answers_503(
        iris_repo: tuple[Path, Any, np.ndarray]) -> None:
    """kill -9 the inference server under a bounded load: the APS keeps answering (503 + Retry-After, never a refused
    connection), the supervisor restarts the server with a message, and requests succeed again."""
    import os
    import signal
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from aiforge.serve.deploy.supervise import supervise

    repo, model, X = iris_repo
    settings = ServeSettings(model_repo=repo, model="iris", restart_backoff_s=0.1, **_ports())
    body = {"instances": X[:1].tolist()}
    expected = model.predict(X[:1]).tolist()
    events: list[str] = []
    answers: dict[str, list[tuple[Any, str | None, str]]] = {"before": [], "gap": [], "after": []}
    pids: dict[str, list[int]] = {"aps-0": [], "inference-0": []}
    finished = threading.Event()

    def drive(stack: Stack) -> None:
        url = stack.urls["aps"] + "/predict"
        try:
            with httpx.Client(timeout=10) as client, ThreadPoolExecutor(4) as pool:
                def send(_: int) -> tuple[Any, str | None, str]:
                    time.sleep(0.005)  # paces the load so the restarting server gets a share of the 2 cores
                    try:
                        response = client.post(url, json=body)
                    except httpx.HTTPError as exc:  # a refused or dropped connection: what must never happen
                        return type(exc).__name__, None, str(exc)
                    ok = response.status_code == 200 and response.json()["outputs"]["label"] == expected
                    return (response.status_code if ok or response.status_code != 200 else "wrong answer",
                            response.headers.get("retry-after"), response.text)

                answers["before"] += pool.map(send, range(40))
                inference = next(p for p in stack.processes if stack.name_of(p) == "inference-0")
                pids["inference-0"].append(inference.pid)
                pids["aps-0"] += [p.pid for p in stack.processes if stack.name_of(p) == "aps-0"]
                inference.kill()  # kill -9
                deadline = time.monotonic() + 60  # bounded in time and in count
                while time.monotonic() < deadline and len(answers["gap"]) < 4000 and not finished.is_set():
                    answers["gap"] += pool.map(send, range(8))
                    statuses = [status for status, _, _ in answers["gap"]]
                    if 503 in statuses and statuses[-1] == 200:
                        break
                answers["after"] += pool.map(send, range(40))
                pids["inference-0"] += [p.pid for p in stack.processes if stack.name_of(p) == "inference-0"]
                pids["aps-0"] += [p.pid for p in stack.processes if stack.name_of(p) == "aps-0"]
        finally:
            if not finished.is_set():
                os.kill(os.getpid(), signal.SIGTERM)  # as a service manager stops `serve up`

    threads: list[threading.Thread] = []
    stacks: list[Stack] = []
    ready_lines: list[int] = []  # ready lines in inference-0's log (appended across restarts) at each event

    def ready(stack: Stack) -> None:
        stacks.append(stack)
        threads.append(threading.Thread(target=drive, args=(stack,), daemon=True))
        threads[0].start()

    def event(line: str) -> None:
        events.append(line)
        log = (stacks[0].log_dir / "inference-0.log").read_text(errors="replace")
        ready_lines.append(sum(line.startswith("ready: ") for line in log.splitlines()))

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)  # a late SIGTERM must not end pytest
    try:
        assert supervise(settings, wait_s=60, on_ready=ready, on_event=event) is None
    finally:
        finished.set()
        for thread in threads:
            thread.join(60)
        signal.signal(signal.SIGTERM, previous)

    gap = answers["gap"]
    kinds = {status for status, _, _ in answers["before"] + gap + answers["after"]}
    assert kinds <= {200, 503}, [a for a in answers["before"] + gap + answers["after"] if a[0] not in (200, 503)][:3]
    assert {status for status, _, _ in answers["before"]} == {status for status, _, _ in answers["after"]} == {200}
    refused = [(retry, text) for status, retry, text in gap if status == 503]
    assert refused, "no request reached the APS while the inference server was down"
    for retry, text in refused:
        assert retry == "1"
        assert text.startswith('{"error":"inference server 127.0.0.1:')
    assert gap[-1][0] == 200
    assert len(events) == 2, events
    assert re.fullmatch(r"inference-0 exited with code -9; restarting it in 0\.1 s \(restart 1 of at most 5 within "
                        r"60 s; log: .*inference-0\.log\)", events[0]), events[0]
    assert re.fullmatch(r"inference-0 is ready again \(restart 1, pid \d+\)", events[1]), events[1]
    assert ready_lines == [1, 2]  # "ready again" waited for the new process's own ready line, not the old one's
    old, new = pids["inference-0"]
    assert old != new and events[1].endswith(f"pid {new})")
    assert len(set(pids["aps-0"])) == 1  # the APS was never stopped
    assert _gone({old, new, *pids["aps-0"]})


def test_cli_serve_up_gives_up_after_repeated_crashes(iris_repo: tuple[Path, Any, np.ndarray],
                                                      tmp_path: Path) -> None:
    """A model that no longer loads: each restart crashes at start-up, so `serve up` gives up after max_restarts."""
    import shutil
    import signal
    import subprocess
    import sys

    repo = tmp_path / "models"
    shutil.copytree(iris_repo[0], repo)
    ports = _ports()
    command = [sys.executable, "-m", "aiforge", "serve", "up", "iris", "--model-repo", str(repo),
               "--port", str(ports["aps_port"]), "--http-port", str(ports["http_port"]),
               "--grpc-port", str(ports["grpc_port"]), "--max-restarts", "2", "--restart-backoff-s", "0.05"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    servers: set[int] = set()
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "Ctrl-C to stop":
            line = process.stdout.readline()
            assert line, f"serve up ended early: {lines} {process.stderr.read() if process.stderr else ''}"
            lines.append(line.rstrip("\n"))
        servers = {child.pid for child in psutil.Process(process.pid).children()}
        (repo / "iris" / "1" / "model.onnx").write_bytes(b"no longer a model")
        inference = next(child for child in psutil.Process(process.pid).children() if "model" in child.cmdline())
        inference.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=120)
        code = process.returncode
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 1, err
    log = r"; log: \S+inference-0\.log\)"
    assert re.match(r"inference-0 exited with code -9; restarting it in 0\.05 s \(restart 1 of at most 2 within 60 s"
                    + log + r"\ninference-0 exited with code 1; restarting it in 0\.1 s \(restart 2 of at most 2 "
                    r"within 60 s" + log + r"\nError: inference-0 exited with code 1: 3 crashes within 60 s, more than "
                    r"the 2 restarts allowed \(max_restarts\); stopping the others\. Its last output:\n", err), err
    assert "is not a readable ONNX model" in err
    assert servers and _gone(servers)
    logs = tmp_path / "home" / "logs" / "serve"  # in the workspace (AIFORGE_HOME), never /tmp
    assert f"; log: {logs}/iris-" in err, err
    assert [p.name for p in logs.glob("iris-*/*.log")].count("inference-0.log") == 1
    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if str(repo) in " ".join(p.info["cmdline"] or [])]


def test_supervise_passes_start_up_failures_on(tmp_path: Path) -> None:
    from aiforge.serve.deploy.supervise import supervise
    from aiforge.workspace import ModelStore

    ModelStore(tmp_path / "models").write_version("broken", b"this is not an ONNX model")
    settings = ServeSettings(model_repo=tmp_path / "models", model="broken", **_ports())
    before = _children()
    with pytest.raises(ServiceError, match=r"^inference-0 exited with code 1 while starting 'broken'"):
        supervise(settings, wait_s=60, on_ready=lambda stack: pytest.fail("never ready"))
    assert _children() - before == set()
