"""One command serves a model: start the inference server and the APS server on this machine, wait until both are
ready, and hand back their URLs.

Each server runs as its own process (``aiforge serve model`` and ``aiforge serve aps``), exactly as it would in a
container, so what works under ``up`` works under the Kubernetes manifests of :mod:`.manifests` (both
build their command lines with :func:`inference_args` and :func:`aps_args`). ``replicas=N`` starts N processes of
each server that share one port through ``SO_REUSEPORT``; the kernel spreads connections across them. Every process
gets ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` = 1, and each inference replica runs ONNX Runtime
with ``settings.threads`` intra-op threads (``cpus`` rounded)::

    with up(ServeSettings(model_repo="models", model="mlp")) as stack:
        httpx.post(stack.urls["aps"] + "/predict", json={...})
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType

from aiforge.errors import AiforgeError, ServiceError
from aiforge.serve.deploy.settings import ServeSettings
from aiforge.workspace.models import ModelStore

__all__ = ["Stack", "aps_args", "inference_args", "up"]

#: The ``aiforge`` CLI in a child process, run by the interpreter that runs us (so the same environment).
_CLI = [sys.executable, "-m", "aiforge"]
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_LIVE: weakref.WeakSet[Stack] = weakref.WeakSet()


def inference_args(settings: ServeSettings, *, model_repo: str, host: str, reuse_port: bool = False) -> list[str]:
    """The ``aiforge`` arguments that start one inference server replica for ``settings``.

    Parameters
    ----------
    settings : ServeSettings
    model_repo : str
        The model repository as the process sees it (a local path, or the mount path in a container).
    host : str
        The address to listen on.
    reuse_port : bool, default False
        Listen with ``SO_REUSEPORT`` so replicas share the ports.

    Returns
    -------
    list of str
        ``["serve", "model", MODEL_REPO, "--host", ...]``.
    """
    args = [
        "serve", "model", model_repo,
        "--host", host, "--port", str(settings.http_port), "--grpc-port", str(settings.grpc_port),
        "--threads", str(settings.threads),
    ]
    if settings.max_batch_size is not None:
        args += ["--max-batch-size", str(settings.max_batch_size)]
    if settings.max_queue_delay_ms is not None:
        args += ["--max-queue-delay-ms", f"{settings.max_queue_delay_ms:g}"]
    if settings.token_env is not None:
        args += ["--token-env", settings.token_env]
    if reuse_port:
        args.append("--reuse-port")
    if not settings.metrics_public:
        args.append("--no-metrics-public")
    return args


def aps_args(
    settings: ServeSettings, *, predictor: str, host: str, handler: str | None = None, transform: str | None = None,
    reuse_port: bool = False,
) -> list[str]:
    """The ``aiforge`` arguments that start one APS replica for ``settings``.

    Parameters
    ----------
    settings : ServeSettings
    predictor : str
        Where the inference server's gRPC endpoint is: ``grpc://HOST:PORT``.
    host : str
        The address to listen on.
    handler : str, optional
        The handler spec as the process sees it; default ``settings.handler``, or ``default`` (the APS's default
        handler) when that is ``None``.
    transform : str, optional
        ``--transform``: where a TransformHandler reads its transform, instead of its own ``source``.
    reuse_port : bool, default False
        Listen with ``SO_REUSEPORT`` so replicas share the port.

    Returns
    -------
    list of str
        ``["serve", "aps", HANDLER, "--predictor", ...]``.
    """
    spec = handler or settings.handler or "default"
    args = ["serve", "aps", spec, "--predictor", predictor, "--model", settings.model]
    if transform is not None:
        args += ["--transform", transform]
    if settings.version is not None:
        args += ["--version", settings.version]
    args += ["--host", host, "--port", str(settings.aps_port)]
    if settings.token_env is not None:
        args += ["--token-env", settings.token_env]
    if reuse_port:
        args.append("--reuse-port")
    if not settings.metrics_public:
        args.append("--no-metrics-public")
    return args


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Stack:
    """The running processes of one :func:`up`: a context manager that stops them on exit.

    Attributes
    ----------
    urls : dict
        ``aps`` (``http://HOST:PORT``; ``POST {aps}/predict``), ``inference_http`` (OIP v2 REST) and
        ``inference_grpc`` (``grpc://HOST:PORT``).
    processes : list of subprocess.Popen
        The APS replicas first, then the inference replicas (the order :meth:`stop` ends them in).
    log_dir : Path
        Where each process writes its output (``inference-0.log``, ``aps-0.log``, ...).
    """

    def __init__(self, settings: ServeSettings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        host = _url_host(settings.host)
        self.urls = {
            "aps": f"http://{host}:{settings.aps_port}",
            "inference_http": f"http://{host}:{settings.http_port}",
            "inference_grpc": f"grpc://{host}:{settings.grpc_port}",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, tuple[Path, int]] = {}  # pid -> (log file, where this run's output starts in it)
        self._names: dict[int, str] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"{name}.log"
        restarting = name in self._commands
        # a restart appends, so the output of the run that crashed stays in the log
        with log.open("ab" if restarting else "wb") as out:
            start = out.tell()  # before the child writes: it shares this file offset
            # a session of its own: Ctrl-C in the terminal reaches `up`, which stops the servers in order
            process = subprocess.Popen(
                [*_CLI, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )
        self._logs[process.pid] = (log, start)
        self._names[process.pid] = name
        self._commands[name] = (args, env)
        return process

    def _add(self, process: subprocess.Popen[bytes]) -> None:
        # APS replicas go first in the list so that stop() ends them before the inference servers they call
        if self.name_of(process).startswith("aps"):
            self.processes.insert(0, process)
        else:
            self.processes.append(process)

    def restart(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """Start ``process``'s replica again, with the same command line, after it exited; return the new process.

        The new process takes the old one's place in :attr:`processes`; its output is appended to the same log.
        Wait for :meth:`reported_ready` before counting on it: replicas share their ports, so only the replica's own
        ready line says that it (and not a sibling) answers.

        Raises
        ------
        ValueError
            ``process`` is not one of this stack's processes, or it is still running.
        """
        if process not in self.processes or process.poll() is None:
            raise ValueError(f"{self.name_of(process)} is not a stopped process of this stack; only those restart")
        args, env = self._commands[self.name_of(process)]
        fresh = self._spawn(self.name_of(process), args, env)
        self.processes[self.processes.index(process)] = fresh
        return fresh

    def _output(self, process: subprocess.Popen[bytes]) -> bytes:
        """What this run of ``process`` wrote (stdout and stderr) so far."""
        try:
            log, start = self._logs[process.pid]
            with log.open("rb") as file:
                file.seek(start)
                return file.read()
        except (KeyError, OSError):
            return b""

    def log_tail(self, process: subprocess.Popen[bytes], lines: int = 20) -> str:
        """The last ``lines`` lines a process wrote (stdout and stderr)."""
        text = self._output(process).decode("utf-8", errors="replace")
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def log_path(self, process: subprocess.Popen[bytes]) -> Path:
        """The file ``process`` writes its output to: ``log_dir/<name>.log``."""
        return self.log_dir / f"{self.name_of(process)}.log"

    def reported_ready(self, process: subprocess.Popen[bytes]) -> bool:
        """Whether ``process`` has printed its ready line (replicas share ports, so only their own output tells them
        apart)."""
        from aiforge.server import READY_PREFIX

        log = self._output(process)
        return log.startswith(READY_PREFIX.encode()) or b"\n" + READY_PREFIX.encode() in log

    def name_of(self, process: subprocess.Popen[bytes]) -> str:
        """``inference-0``, ``aps-1``, ...: the replica's name (its log file is ``log_dir/<name>.log``)."""
        return self._names.get(process.pid, str(process.pid))

    def curl_example(self) -> str:
        """A ``curl`` command that calls the APS's ``/predict``, to print for a user who just started the stack.

        With the default handler it sends one row of zeros as wide as the model's 2-D input (``[...]`` when the width
        is unknown or above 64); with a TransformHandler, one record with a zero, ``""`` or ``false`` for each column
        its transform reads; with another handler, a placeholder naming the handler, since only it knows its request
        format. With ``token_env`` it passes ``$TOKEN_ENV`` as the bearer token, never the token.
        """
        settings, aps_url = self.settings, self.urls["aps"]
        auth = f" -H \"Authorization: Bearer ${settings.token_env}\"" if settings.token_env else ""
        if settings.handler is not None:
            record = _example_record(settings.handler)
            body = json.dumps(record) if record is not None else f"<the JSON body {settings.handler} reads>"
            return f"curl -s -X POST {aps_url}/predict -H 'Content-Type: application/json'{auth} -d '{body}'"
        width = _row_width(settings)
        row = "[" + ", ".join(["0.0"] * width) + "]" if width else "[...]"
        return (
            f"curl -s -X POST {aps_url}/predict -H 'Content-Type: application/json'{auth} "
            f"-d '{{\"instances\": [{row}]}}'"
        )

    def alive(self) -> bool:
        """Whether every process is still running."""
        return bool(self.processes) and all(process.poll() is None for process in self.processes)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every process: SIGTERM (graceful: in-flight requests finish), then SIGKILL after ``timeout_s``.

        The APS replicas are stopped first so their in-flight requests can still reach the inference servers.
        Safe to call twice.
        """
        aps = [p for p in self.processes if self.name_of(p).startswith("aps")]
        inference = [p for p in self.processes if p not in aps]
        for group in (aps, inference):
            for process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            for process in group:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        _LIVE.discard(self)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"Stack({self.settings.model!r}, {len(self.processes)} processes, {state}, aps={self.urls['aps']})"


def _example_record(spec: str) -> dict[str, object] | None:
    """A record a TransformHandler accepts (a zero, ``""`` or ``false`` per column), or ``None`` for other handlers
    or when the handler or its transform cannot be read (the APS process reports that; this is only a hint)."""
    from aiforge.serve.aps.handler import TransformHandler, load_handler

    try:
        handler = load_handler(spec)
        if not isinstance(handler, TransformHandler) or handler.source is None:
            return None
        handler.load()
        types = handler.transform_.input_types_
    except Exception:  # a hint must never stop serve up; the APS process reports the cause at its start
        return None
    values = {"string": "", "large_string": "", "bool": False}
    return {column: values.get(kind, 0) for column, kind in types.items()}


def _row_width(settings: ServeSettings) -> int | None:
    """The columns of the served model's 2-D input (1 to 64), read from the ONNX graph; ``None`` otherwise."""
    import onnx
    from google.protobuf.message import DecodeError

    store = ModelStore(settings.model_repo)
    try:
        version = settings.version or store.latest(settings.model)
        graph = onnx.load(str(store.model_file(settings.model, version)), load_external_data=False).graph
    except (OSError, DecodeError, AiforgeError):  # only the example line needs it; the servers report a model
        return None  # that cannot be read
    if not graph.input:
        return None
    dims = graph.input[0].type.tensor_type.shape.dim
    width = dims[1].dim_value if len(dims) == 2 else 0
    return int(width) if 0 < width <= 64 else None


@atexit.register
def _stop_all() -> None:  # never leave servers behind when the Python that started them exits
    for stack in list(_LIVE):
        stack.stop(timeout_s=5.0)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def default_log_dir(model: str, home: str | os.PathLike[str] | None = None) -> Path:
    """``HOME/logs/serve/<model>-<YYYYmmdd-HHMMSS>-<pid>``: where a stack's processes write, in the workspace
    (``home``, default ``AIFORGE_HOME`` or ``./.aiforge``), so the logs outlive the stack and a reboot."""
    root = Path(home if home is not None else os.environ.get("AIFORGE_HOME", ".aiforge")).absolute()
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model) or "model"
    return root / "logs" / "serve" / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def up(settings: ServeSettings, *, wait_s: float = 60.0, log_dir: str | os.PathLike[str] | None = None) -> Stack:
    """Start the inference server and the APS server for ``settings`` and wait until both are ready.

    Parameters
    ----------
    settings : ServeSettings
        The model, handler, replicas, CPUs and ports (all on ``settings.host``).
    wait_s : float, default 60
        How long the servers may take to answer ``GET /v2/health/ready`` and ``GET /health/ready`` with 200.
    log_dir : path, optional
        Where each process writes its output; default :func:`default_log_dir` (in the workspace, kept after stop).

    Returns
    -------
    Stack
        The running processes and their ``urls``; use it as a context manager or call ``stop()``.

    Raises
    ------
    ServiceError
        A process exited during start-up (a bad model repository, a handler that fails to load, a port in use)
        or the servers were not ready within ``wait_s``; the message names the process and ends with the last lines
        it wrote. Every process already started is stopped first.
    InvalidInput
        ``settings.token_env`` names an unset variable.
    """
    settings.token  # noqa: B018 (fails early, here, when token_env names an unset variable)
    folder = Path(log_dir) if log_dir is not None else default_log_dir(settings.model)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the log folder {folder}: {exc.strerror or exc}") from exc
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, "1"), "PYTHONUNBUFFERED": "1"}
    stack = Stack(settings, folder)
    _LIVE.add(stack)
    reuse = settings.replicas > 1
    predictor = f"grpc://{_url_host(settings.host)}:{settings.grpc_port}"
    try:
        for index in range(settings.replicas):
            args = inference_args(settings, model_repo=str(settings.model_repo), host=settings.host, reuse_port=reuse)
            stack._add(stack._spawn(f"inference-{index}", args, env))
        for index in range(settings.replicas):
            stack._add(stack._spawn(f"aps-{index}", aps_args(settings, predictor=predictor, host=settings.host,
                                                             reuse_port=reuse), env))
        _wait_ready(stack, wait_s)
    except BaseException:
        stack.stop(timeout_s=5.0)
        raise
    return stack


def _wait_ready(stack: Stack, wait_s: float) -> None:
    checks = [stack.urls["inference_http"] + "/v2/health/ready", stack.urls["aps"] + "/health/ready"]
    deadline = time.monotonic() + wait_s
    pending = list(checks)
    starting = list(stack.processes)
    while True:
        for process in stack.processes:
            code = process.poll()
            if code is not None:
                name = stack.name_of(process)
                raise ServiceError(
                    f"{name} exited with code {code} while starting {stack.settings.model!r} from "
                    f"{stack.settings.model_repo}; its last output ({stack.log_dir / (name + '.log')}):\n"
                    f"{stack.log_tail(process) or '(nothing)'}"
                )
        starting = [process for process in starting if not stack.reported_ready(process)]
        pending = [url for url in pending if not _ready(url)]
        if not pending and not starting:
            return
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {stack.name_of(p)}:\n{stack.log_tail(p, 10) or '(nothing)'}" for p in stack.processes
            )
            raise ServiceError(
                f"the servers for {stack.settings.model!r} were not ready within {wait_s:g} s: "
                f"{', '.join([*pending, *(stack.name_of(p) for p in starting)])} did not answer 200 or report ready; "
                f"raise wait_s if the model is slow to load. "
                f"Last output:\n{tails}"
            )
        time.sleep(0.05)  # polling interval between readiness checks
