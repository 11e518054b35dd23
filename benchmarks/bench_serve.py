"""SERVE benchmark (issue 6): aiforge's APS + inference server against KServe's Python ModelServer, one run.

Same machine, same ONNX models (an MLP on the digits features, a small CNN: see ``_serve_models.py``), same JSON
payloads, and the same load generator for every side (``aiforge.serve.sizing.loadtest``, closed loop):

a. concurrency 1, p50: the inference server called directly (REST, OIP v2 JSON of the pre-processed tensor) vs
   through the APS (the user's JSON -> handler -> gRPC -> inference server). Goal: the APS adds <= 1 ms.
b. concurrency 32: APS + inference server vs a KServe transformer + predictor (``_serve_anchor/``, kserve 0.21.0
   in its own venv ``.venv-kserve``, each a single default worker process), with the transformer calling the
   predictor over REST v2 and over gRPC v2, each with KServe's default logging (an access log line and a latency
   line per request) and with that logging off; we compare against the best of the four. Goal: >= 2x the
   throughput, p99 no worse.
c. concurrency 64: the inference server with dynamic batching (its defaults) vs ``--no-batching``. Goal >= 3x
   on the CNN (the MLP is shown for information).

Every server runs in its own process, started and stopped here (free ports, readiness polled, killed on exit even on
error), with OMP/OPENBLAS/MKL threads = 1 and ONNX Runtime on one intra-op and one inter-op thread on both sides.
All servers are started up front (an idle one uses about 0.2% of a core) and the repeats are interleaved: every
point runs once (a warm-up, then ``--duration`` seconds), then every point again, ``--repeats`` times; the median is
reported. So a change in the machine's load during the run hits every side alike. The CPU columns are the cores each
side's server processes kept busy during the runs (CPU seconds / wall seconds) and their CPU time per request; the
load generator shares the same cores.

    python benchmarks/bench_serve.py [--quick] [--duration 10] [--repeats 3] [--record]

The first run creates ``.venv-kserve`` (pip install kserve==0.21.0 onnxruntime) and the models under
``benchmarks/.data/serve/`` (server logs go to ``benchmarks/.data/serve/logs/``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(THREADS_ENV)

import httpx  # noqa: E402
import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, record  # noqa: E402
from _serve_models import DATA_ROOT, OUTPUTS, build  # noqa: E402

from aiforge.serve import LoadTestResult, loadtest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = Path(__file__).resolve().parent / "_serve_anchor"
KSERVE_VENV = ROOT / ".venv-kserve"
KSERVE_PIP = ["kserve==0.21.0", "onnxruntime"]
LOGS = DATA_ROOT / "logs"


# -- processes --------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_kserve_venv() -> Path:
    """The python of ``.venv-kserve``, created with kserve==0.21.0 and onnxruntime when it is missing."""
    python = KSERVE_VENV / "bin" / "python"
    check = [str(python), "-c", "import kserve, onnxruntime"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {KSERVE_VENV.name} with {' '.join(KSERVE_PIP)} (one-time, a minute or two)...", flush=True)
    base = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(KSERVE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *KSERVE_PIP], check=True)
    return python


@dataclass
class Server:
    """One server process: started in its own session, ready when ``ready_url`` answers 200, stopped with SIGTERM."""

    name: str
    argv: list[str]
    ready_url: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> Server:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = LOGS / f"{self.name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                         env={**os.environ, **THREADS_ENV}, start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready:\n{self.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready at {self.ready_url} after {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def cpu_s(self) -> float:
        """CPU seconds used so far by the process and its children."""
        assert self.proc is not None
        try:
            process = psutil.Process(self.proc.pid)
            total = sum(process.cpu_times()[:2])
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += sum(child.cpu_times()[:2])
            return total
        except psutil.Error:
            return 0.0

    def terminate(self) -> None:
        """Send SIGTERM to the process group (a no-op when it is not running)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it is still running after ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


@contextlib.contextmanager
def running(*stages: list[Server]) -> Iterator[None]:
    """Start each stage's servers together, wait until all of them are ready, then the next stage; on exit (error
    or not) stop every started server."""
    started: list[Server] = []
    try:
        for stage in stages:
            for server in stage:
                started.append(server.start())
            for server in stage:
                server.wait_ready()
        yield
    finally:
        for server in started:
            server.terminate()
        for server in started:
            server.stop()


def aiforge_inference(repo: Path, *, batching: bool) -> tuple[Server, str, str]:
    port, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "aiforge", "serve", "model", str(repo), "--port", str(port),
            "--grpc-port", str(grpc_port)]
    if not batching:
        argv.append("--no-batching")
    name = "aiforge-inference" + ("" if batching else "-nobatch")
    server = Server(name, argv, f"http://127.0.0.1:{port}/v2/health/ready")
    return server, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"


def aiforge_aps(model: str, grpc_target: str) -> tuple[Server, str]:
    port = free_port()
    argv = [sys.executable, "-m", "aiforge", "serve", "aps", f"{ANCHOR / 'handler.py'}:DigitsHandler",
            "--predictor", f"grpc://{grpc_target}", "--model", model, "--port", str(port)]
    return Server(f"aiforge-aps-{model}", argv, f"http://127.0.0.1:{port}/health/ready"), f"http://127.0.0.1:{port}"


def kserve_logging(quiet: bool) -> list[str]:
    if not quiet:
        return []
    return ["--enable_latency_logging", "false", "--log_config_file", str(ANCHOR / "quiet_logging.json")]


def kserve_predictor(python: Path, repo: Path, model: str, *, quiet: bool) -> tuple[Server, int, int]:
    port, grpc_port = free_port(), free_port()
    argv = [str(python), str(ANCHOR / "predictor.py"), "--model_name", model,
            "--model_path", str(repo / model / "1" / "model.onnx"), "--http_port", str(port),
            "--grpc_port", str(grpc_port), *kserve_logging(quiet)]
    server = Server(f"kserve-predictor-{model}" + ("-quiet" if quiet else ""), argv, f"http://127.0.0.1:{port}/v2/models/{model}/ready")
    return server, port, grpc_port


def kserve_transformer(python: Path, model: str, predictor: str, protocol: str, *, quiet: bool) -> tuple[Server, str]:
    port = free_port()
    argv = [str(python), str(ANCHOR / "transformer.py"), "--model_name", model, "--output", OUTPUTS[model],
            "--predictor_host", predictor, "--predictor_protocol", protocol, "--http_port", str(port),
            "--grpc_port", str(free_port()), *kserve_logging(quiet)]
    server = Server(f"kserve-transformer-{model}-{protocol}" + ("-quiet" if quiet else ""), argv, f"http://127.0.0.1:{port}/v1/models/{model}")
    return server, f"http://127.0.0.1:{port}/v1/models/{model}:predict"


# -- measuring --------------------------------------------------------------------------------------------------------


@dataclass
class Point:
    """The median of ``repeats`` load-test runs against one endpoint, with the cores its servers kept busy."""

    runs: list[LoadTestResult] = field(default_factory=list)
    server_cores: list[float] = field(default_factory=list)
    client_cores: list[float] = field(default_factory=list)

    def median(self, what: str) -> float:
        if what == "rps":
            values = [run.throughput_rps for run in self.runs]
        else:
            values = [run.latency_ms[what] or float("nan") for run in self.runs]
        return statistics.median(values)

    @property
    def errors(self) -> int:
        return sum(sum(run.errors.values()) for run in self.runs)

    @property
    def cores(self) -> str:
        """Cores kept busy: the servers' processes + the load generator."""
        return f"{statistics.median(self.server_cores):.2f} + {statistics.median(self.client_cores):.2f}"

    @property
    def cpu_ms(self) -> str:
        """The servers' CPU milliseconds per answered request (all their processes together)."""
        per = [cores / run.throughput_rps * 1e3 for cores, run in zip(self.server_cores, self.runs, strict=True)
               if run.throughput_rps]
        return f"{statistics.median(per):.2f}" if per else "-"


@dataclass
class Spec:
    """One measured point: which endpoint, with what payload and concurrency, and whose processes serve it."""

    part: str
    model: str
    side: str
    url: str
    payload: Path
    concurrency: int
    servers: list[Server]
    point: Point = field(default_factory=Point)


def run_once(spec: Spec, args: argparse.Namespace) -> None:
    """One load-test run of ``spec`` (after its warm-up), appended to ``spec.point``."""
    point = spec.point
    # the warm-up is part of the same loadtest call; CPU is taken over the whole call and divided by its wall time
    cpu0, own0, wall0 = [s.cpu_s() for s in spec.servers], time.process_time(), time.perf_counter()
    result = loadtest(spec.url, spec.payload.read_bytes(), concurrency=spec.concurrency, duration_s=args.duration,
                      warmup_s=args.warmup, timeout_s=10.0)
    wall = time.perf_counter() - wall0
    point.server_cores.append(sum(s.cpu_s() - c for s, c in zip(spec.servers, cpu0, strict=True)) / wall)
    point.client_cores.append((time.process_time() - own0) / wall)
    point.runs.append(result)
    errors = sum(result.errors.values())
    p50, p99 = (result.latency_ms[key] or float("nan") for key in ("p50", "p99"))
    print(f"  {spec.part} {spec.model} {spec.side:<34} c={spec.concurrency:<3} {result.throughput_rps:8.0f} rps  "
          f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  cores {point.server_cores[-1]:.2f} + {point.client_cores[-1]:.2f}"
          + (f"  {errors} errors" if errors else ""), flush=True)


def answer(url: str, payload: Path) -> Any:
    response = httpx.post(url, content=payload.read_bytes(), headers={"Content-Type": "application/json"}, timeout=10)
    response.raise_for_status()
    return response.json()


def ort_timing(repo: Path, model: str) -> tuple[float, float]:
    """ONNX Runtime alone (one thread): ms for one sample, and ms per sample in a batch of 32."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(repo / model / "1" / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    result = []
    for batch in (1, 32):
        x = np.random.default_rng(0).random([batch, *shape[1:]], dtype=np.float32)
        runs = 400 if batch == 1 else 40
        for _ in range(10):
            session.run([OUTPUTS[model]], {"input": x})
        start = time.perf_counter()
        for _ in range(runs):
            session.run([OUTPUTS[model]], {"input": x})
        result.append((time.perf_counter() - start) / runs / batch * 1e3)
    return result[0], result[1]


# -- the run ----------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> str:
    repo = build(DATA_ROOT)
    payload = {m: DATA_ROOT / f"{m}.json" for m in args.models}
    payload_v2 = {m: DATA_ROOT / f"{m}_v2.json" for m in args.models}
    backends: list[Server] = []
    fronts: list[Server] = []
    specs: list[Spec] = []
    answers: dict[str, dict[str, Any]] = {m: {} for m in args.models}

    inference, http, grpc_target = aiforge_inference(repo, batching=True)
    backends.append(inference)
    if "c" in args.parts:
        no_batching, http_off, _ = aiforge_inference(repo, batching=False)
        backends.append(no_batching)
    for m in args.models:
        aps, aps_url = aiforge_aps(m, grpc_target)
        fronts.append(aps)
        direct = f"{http}/v2/models/{m}/infer"
        answers[m]["aiforge"] = (aps_url + "/predict", payload[m])
        if "a" in args.parts:
            specs.append(Spec("a", m, "direct", direct, payload_v2[m], 1, [inference]))
            specs.append(Spec("a", m, "aps", aps_url + "/predict", payload[m], 1, [inference, aps]))
        if "b" in args.parts:
            specs.append(Spec("b", m, "aiforge", aps_url + "/predict", payload[m], 32, [inference, aps]))
        if "c" in args.parts:
            specs.append(Spec("c", m, "on", direct, payload_v2[m], 64, [inference]))
            specs.append(Spec("c", m, "off", f"{http_off}/v2/models/{m}/infer", payload_v2[m], 64, [no_batching]))
    if "b" in args.parts:
        python = ensure_kserve_venv()
        for quiet in (False, True):
            for m in args.models:
                predictor, port, grpc_port = kserve_predictor(python, repo, m, quiet=quiet)
                backends.append(predictor)
                for protocol, target in (("v2", f"127.0.0.1:{port}"), ("grpc-v2", f"127.0.0.1:{grpc_port}")):
                    transformer, url = kserve_transformer(python, m, target, protocol, quiet=quiet)
                    fronts.append(transformer)
                    side = f"KServe {'REST' if protocol == 'v2' else 'gRPC'} v2" + (", quiet" if quiet else "")
                    answers[m][side] = (url, payload[m])
                    specs.append(Spec("b", m, side, url, payload[m], 32, [predictor, transformer]))

    print(f"starting {len(backends) + len(fronts)} server processes...", flush=True)
    load_before = os.getloadavg()
    started = time.time()
    with running(backends, fronts):
        for m, by_side in answers.items():
            got = {side: answer(url, body) for side, (url, body) in by_side.items()}
            if len({json.dumps(v, sort_keys=True) for v in got.values()}) != 1:
                raise RuntimeError(f"{m}: the sides answer differently: {got}")
        # repeats are interleaved (every point once, then again), so a change in the machine's load during the run
        # hits every side alike instead of whichever was measured at that moment
        for repeat in range(args.repeats):
            print(f"round {repeat + 1} of {args.repeats}", flush=True)
            for spec in specs:
                run_once(spec, args)
    timings = {m: ort_timing(repo, m) for m in args.models}
    load_after = os.getloadavg()
    points: dict[str, dict[str, dict[str, Point]]] = {part: {m: {} for m in args.models} for part in "abc"}
    for spec in specs:
        points[spec.part][spec.model][spec.side] = spec.point
    return report(args, points["a"], points["b"], points["c"], timings, load_before, load_after,
                  time.time() - started)


def goal(met: bool) -> str:
    return "**met**" if met else "**missed**"


def report(args: argparse.Namespace, a: dict[str, dict[str, Point]], b: dict[str, dict[str, Point]],
           c: dict[str, dict[str, Point]], timings: dict[str, tuple[float, float]],
           load_before: tuple[float, ...], load_after: tuple[float, ...], elapsed: float) -> str:
    def ms(value: float) -> str:
        return f"{value:.2f}"

    parts = [
        f"Machine: {os.cpu_count()} CPU cores, shared by every server process and the load generator "
        f"(aiforge.serve.sizing.loadtest(), one process, closed loop). Load average (1 min) before the run: "
        f"{load_before[0]:.2f}; at its end, this run's own load included: {load_after[0]:.2f}. "
        f"{args.repeats} interleaved round(s) of {args.duration:g} s per point, each after "
        f"{args.warmup:g} s of warm-up; medians. Cores = CPU seconds / wall seconds of the servers' processes + the "
        f"load generator during the runs; server CPU ms/req = the servers' CPU time per answered request (less "
        f"sensitive to other load on the machine than req/s). Whole run: {elapsed / 60:.1f} min.",
        "",
        "ONNX Runtime alone, one thread: " + "; ".join(
            f"{m} {one * 1e3:.0f} us per sample alone, {per * 1e3:.0f} us per sample in a batch of 32"
            for m, (one, per) in timings.items()) + ".",
    ]
    if any(a.values()):
        rows = []
        for m, points in a.items():
            hop = points["aps"].median("p50") - points["direct"].median("p50")
            rows.append([m, ms(points["direct"].median("p50")), ms(points["aps"].median("p50")), f"{hop:+.2f}",
                         f"{goal(hop <= 1.0)} (<= 1 ms)"])
        parts += ["", "**a. APS hop, concurrency 1** (p50 ms; direct = inference server REST, OIP v2 JSON of the "
                  "pre-processed tensor; APS = user JSON -> handler -> gRPC -> inference server)", "",
                  markdown_table(["model", "direct p50", "APS p50", "APS hop", "goal"], rows)]
    if any(b.values()):
        rows = []
        verdicts = []
        for m, points in b.items():
            ours = points["aiforge"]
            kserve = {k: p for k, p in points.items() if k != "aiforge"}
            best_key = max(kserve, key=lambda k: kserve[k].median("rps"))
            best = kserve[best_key]
            for key, point in points.items():
                mark = " (best KServe)" if key == best_key else ""
                rows.append([m, key + mark, f"{point.median('rps'):.0f}", ms(point.median("p50")),
                             ms(point.median("p99")), point.cpu_ms, point.cores, str(point.errors)])
            ratio = ours.median("rps") / best.median("rps")
            p99_ok = ours.median("p99") <= best.median("p99")
            verdicts.append(f"- {m}: aiforge / best KServe ({best_key}) = **{ratio:.2f}x** throughput "
                            f"({goal(ratio >= 2.0)}, >= 2x); p99 {ms(ours.median('p99'))} vs "
                            f"{ms(best.median('p99'))} ms ({goal(p99_ok)}, no worse)")
        parts += ["", "**b. APS + inference server vs KServe transformer + predictor, concurrency 32** (same user "
                  "JSON; KServe: kserve 0.21.0, one default worker per server; 'quiet' = "
                  "`--enable_latency_logging false` and a log config at WARNING)", "",
                  markdown_table(["model", "side", "req/s", "p50 ms", "p99 ms", "server CPU ms/req",
                                  "cores (servers + client)", "errors"], rows), "", *verdicts]
    if any(c.values()):
        rows = []
        verdicts = []
        for m, points in c.items():
            for key in ("on", "off"):
                point = points[key]
                rows.append([m, key, f"{point.median('rps'):.0f}", ms(point.median("p50")),
                             ms(point.median("p99")), point.cpu_ms, point.cores, str(point.errors)])
            ratio = points["on"].median("rps") / points["off"].median("rps")
            verdicts.append(f"- {m}: batching on / off = **{ratio:.2f}x** throughput"
                            + (f" ({goal(ratio >= 3.0)}, >= 3x)" if m == "cnn" else " (information)"))
        parts += ["", "**c. Dynamic batching, concurrency 64** (inference server REST direct; on = its defaults, "
                  "max batch 32 and 1 ms queue delay; off = `--no-batching`)", "",
                  markdown_table(["model", "batching", "req/s", "p50 ms", "p99 ms", "server CPU ms/req",
                                  "cores (servers + client)", "errors"], rows), "", *verdicts]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run of 2 s per point, 0.5 s warm-up")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each run (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point; the median is reported (default 3)")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--parts", default="abc", help="which of the measurements a, b, c to run (default abc)")
    parser.add_argument("--record", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.repeats = 2.0, 0.5, 1
    # SIGTERM (e.g. from a CI timeout) unwinds the with-blocks, so every server is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    body = run(args)
    print()
    print(body)
    if args.record:
        record("serve", body)


if __name__ == "__main__":
    main()
