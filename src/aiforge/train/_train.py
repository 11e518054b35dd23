"""``aiforge.train(spec)``: freeze the code, resolve the data, plan the resources, run the job, register the model."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiforge import progress as progress_bars
from aiforge import reprs
from aiforge.errors import InvalidInput, JobFailed
from aiforge.train import planner
from aiforge.train.deadline import parse_deadline, parse_duration
from aiforge.train.package import Environment, Package, environment, freeze
from aiforge.train.runtimes import Launch, Outcome, Resources, get_runtime
from aiforge.train.runtimes.local import RUNTIME as LOCAL
from aiforge.train.spec import TrainSpec, load_spec
from aiforge.workspace import Registry, RunStore, Workspace

if TYPE_CHECKING:
    from aiforge.workspace import ModelVersion, RunRecord

__all__ = ["TrainResult", "plan", "train"]

log = logging.getLogger("aiforge.train")


@dataclass
class TrainResult:
    """What one ``aiforge train`` did.

    Attributes
    ----------
    run : RunRecord or None
        The run's record (``None`` for a plan only).
    model : ModelVersion or None
        The registered version (``None`` when nothing was registered: a plan, ``register: false``, k8s export).
    plan : Plan or None
        The deadline plan, when the spec has a deadline.
    outcome : Outcome or None
        How the job ended.
    package, environment
        The frozen code and the environment it ran in.
    """

    run: RunRecord | None
    model: ModelVersion | None
    plan: planner.Plan | None
    outcome: Outcome | None
    package: Package
    environment: Environment
    calibration: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "run": self.run.summary() if self.run else None,
            "model": self.model.summary() if self.model else None,
            "plan": self.plan.summary() if self.plan else None,
            "status": self.outcome.status if self.outcome else "planned",
            "code_hash": self.package.hash,
            "env_hash": self.environment.hash,
            "env_built_s": round(self.environment.seconds, 3) if self.environment.built else None,
            "files": dict(self.outcome.files) if self.outcome else {},
        }

    def _repr_html_(self) -> str:
        facts: list[tuple[str, object]] = [
            ("status", self.outcome.status if self.outcome else "planned"),
            ("run", self.run.id if self.run else None),
            ("model", self.model.ref if self.model else None),
            ("CPUs", self.plan.cpus if self.plan else (self.run.info.get("resources", {}).get("cpus")
                                                        if self.run else None)),
            ("code", self.package.hash[:12]),
        ]
        return reprs.summary("Training run", facts)


def _workspace(workspace: Workspace | str | os.PathLike[str] | None) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace(workspace)


def train(
    spec: TrainSpec | Mapping[str, Any] | str | os.PathLike[str],
    *,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    progress: bool = False,
    plan_only: bool = False,
    build: bool = False,
) -> TrainResult:
    """Run a training job and register the model it returns.

    Parameters
    ----------
    spec : TrainSpec, mapping or path
        The job (a YAML file, a mapping of its keys, or a :class:`TrainSpec`).
    workspace : Workspace or path, optional
        Default ``AIFORGE_HOME`` or ``./.aiforge``.
    progress : bool
        Show the calibration and the job's progress.
    plan_only : bool
        Calibrate and plan, print nothing, run nothing (needs a ``deadline``).
    build : bool
        k8s runtime: also build the image (podman or buildah).

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidInput
        A bad spec, entrypoint, deadline or resources; no resources meet the deadline; requirements fail to install.
    SnapshotNotFound
        A data reference names no snapshot.
    JobFailed
        The user's code raised (its traceback is in the message), exited non-zero, was killed or passed its limits;
        nothing is registered.
    ServiceError
        The Ray cluster does not answer.

    Examples
    --------
    >>> result = aiforge.train("train.yaml")  # doctest: +SKIP
    >>> result.model.ref  # doctest: +SKIP
    'digits@v3'
    """
    spec = load_spec(spec)
    ws = _workspace(workspace)
    now = datetime.now(UTC)
    deadline = parse_deadline(spec.deadline, now=now) if spec.deadline is not None else None
    if plan_only and deadline is None:
        raise InvalidInput(
            "--plan needs a deadline: add `deadline: 2h` (or a cron line such as '0 3 * * *') to the spec"
        )
    _check_resources(spec)
    data = {name: ws.get_snapshot(ref).ref for name, ref in spec.data.items()}  # pinned to exact versions
    package = freeze(spec.code, spec.requirements, home=ws.home)
    _check_entrypoint(package, spec)
    if spec.runtime.kind == "local" or deadline is not None:  # calibration always runs here
        env = environment(package, home=ws.home, log=ws.home / "logs" / f"env-{package.lock_hash}.log")
    else:  # Ray builds the lock's environment on its nodes, the image holds it for Kubernetes: nothing to build here
        env = Environment("python", package.lock_hash, None)
    runs = RunStore(ws)
    runs.mark_abandoned()

    chosen: planner.Plan | None = None
    calibration: list[dict[str, Any]] = []
    if deadline is not None:
        chosen = _plan(spec, ws, package, env, data, deadline, runs, calibration, progress=progress)
        if plan_only:
            return TrainResult(None, None, chosen, None, package, env, calibration)
    cpus = chosen.cpus if chosen is not None else (spec.resources.cpus or 1.0)
    resources = Resources(cpus=cpus, memory=spec.resources.memory, gpus=spec.resources.gpus)
    timeout = parse_duration(spec.timeout) if spec.timeout is not None else None

    run = runs.start(
        "train", spec.name, spec.model_dump(mode="json"),
        code_hash=package.hash, code_source=package.source, env_hash=env.hash, data=data, params=spec.params,
        resources=resources.to_dict(), runtime=spec.runtime.kind, pid=os.getpid(),
        deadline=deadline.isoformat() if deadline else None,
        plan=chosen.summary() if chosen else None, predicted_s=chosen.predicted_s if chosen else None,
        model_predicted_s=chosen.model_predicted_s if chosen else None,
    )
    _write_job(run.dir, run.id, spec, package, data, ws, fraction=1.0)
    launch = Launch(
        run.id, run.dir, package.path, env.python, package.requirements, resources, timeout,
        env={"AIFORGE_HOME": str(ws.home)}, options=_options(spec, build),
    )
    runtime = get_runtime(spec.runtime.kind)
    try:
        with _watch(run.dir, chosen, spec.name, progress=progress) as warnings_seen:
            outcome = runtime.launch(launch)
    except BaseException as exc:
        _discard(run.dir)
        status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
        runs.finish(run.id, status, error=_one_line(exc) if status == "failed" else "interrupted (Ctrl-C)")
        raise
    metrics = _metrics(run.dir)
    info: dict[str, Any] = {"actual_s": round(outcome.wall_s, 3), "cpu_s": outcome.cpu_s, "metrics": metrics,
                            "enforced": outcome.enforced, "warnings": warnings_seen, "files": outcome.files}
    if outcome.status == "exported":
        run = runs.finish(run.id, "exported", **info)
        return TrainResult(run, None, chosen, outcome, package, env, calibration)
    if outcome.status != "succeeded":
        _discard(run.dir)
        message = _failure(spec.name, run.id, outcome, run.dir)
        error = (_user_error_line(run.dir) if outcome.status == "failed" else None) or outcome.error
        runs.finish(run.id, outcome.status, exit_code=outcome.exit_code, error=error, **info)
        raise JobFailed(message, run.id)
    model = None
    try:
        if spec.register_model:
            model = Registry(ws).register(
                spec.name, run.dir / "out" / "model.onnx", run_id=run.id, metrics=metrics,
                lineage={"run": run.id, "code_hash": package.hash, "code": package.source, "env_hash": env.hash,
                         "data": data, "params": spec.params, "resources": resources.to_dict()},
                extra_files={"model.json": run.dir / "out" / "model.json"}, aliases=spec.aliases,
            )
        _keep_artifacts(run.dir)
    except BaseException as exc:
        _discard(run.dir)
        runs.finish(run.id, "failed", exit_code=0, error=f"registering the model failed: {_one_line(exc)}", **info)
        raise
    run = runs.finish(run.id, "succeeded", exit_code=0, model=model.ref if model else None, **info)
    return TrainResult(run, model, chosen, outcome, package, env, calibration)


def plan(
    spec: TrainSpec | Mapping[str, Any] | str | os.PathLike[str],
    *,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> planner.Plan:
    """Calibrate the job and return its deadline plan without running it (``aiforge train SPEC --plan``)."""
    result = train(spec, workspace=workspace, progress=progress, plan_only=True)
    assert result.plan is not None
    return result.plan


# -- checks -----------------------------------------------------------------------------------------------------------


def _check_resources(spec: TrainSpec) -> None:
    if spec.runtime.kind != "local":
        return  # a cluster's capacity is the cluster's to judge
    cores = len(os.sched_getaffinity(0))
    if spec.resources.cpus is not None and spec.resources.cpus > cores:
        raise InvalidInput(
            f"resources.cpus is {spec.resources.cpus:g} but this machine gives aiforge {cores} CPUs; ask for at most "
            f"{cores}, or run on a cluster with runtime: ray"
        )
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if spec.resources.memory is not None and spec.resources.memory > total:
        raise InvalidInput(
            f"resources.memory is {spec.resources.memory / 1024**3:.1f} GiB but this machine has "
            f"{total / 1024**3:.1f} GiB; ask for less, or run on a cluster with runtime: ray"
        )
    if spec.resources.gpus and not Path("/dev/nvidia0").exists():
        raise InvalidInput(
            f"resources.gpus is {spec.resources.gpus} but this machine has no GPU; set gpus: 0, or run on a cluster "
            "with GPUs (runtime: ray or k8s)"
        )


def _check_entrypoint(package: Package, spec: TrainSpec) -> None:
    import ast

    target, function = spec.entry()
    if target.endswith(".py"):
        path = package.path / target
        shown = f"{spec.code}" if isinstance(spec.code, Path) else "the code package"
        if not path.is_file():
            scripts = sorted(p.relative_to(package.path).as_posix() for p in package.path.rglob("*.py"))[:10]
            raise InvalidInput(
                f"entrypoint {spec.entrypoint!r}: {target} is not in {shown}; Python files there: "
                f"{', '.join(scripts) or 'none'}"
            )
        if function is not None:
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except SyntaxError as exc:
                raise InvalidInput(f"entrypoint {spec.entrypoint!r}: {target} line {exc.lineno}: {exc.msg}") from None
            defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
            assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                        if isinstance(t, ast.Name)}
            if function not in defined and function not in assigned:
                raise InvalidInput(
                    f"entrypoint {spec.entrypoint!r}: {target} defines no function {function!r}; functions there: "
                    f"{', '.join(defined) or 'none'}"
                )
        return
    module = target.replace(".", "/")
    if (package.path / f"{module}.py").is_file() or (package.path / module / "__init__.py").is_file():
        return
    import importlib.util

    with contextlib.suppress(ImportError, ValueError):
        if importlib.util.find_spec(target) is not None:
            return
    raise InvalidInput(
        f"entrypoint {spec.entrypoint!r}: no module {target!r} in the code package or the environment; use "
        "'file.py:function' for a file in the code folder"
    )


# -- planning ---------------------------------------------------------------------------------------------------------


def _plan(
    spec: TrainSpec, ws: Workspace, package: Package, env: Environment, data: dict[str, str], deadline: datetime,
    runs: RunStore, calibration: list[dict[str, Any]], *, progress: bool,
) -> planner.Plan:
    reserve = parse_duration(spec.reserve)
    budget = (deadline - datetime.now(UTC)).total_seconds() - reserve
    if budget <= 0:
        raise InvalidInput(
            f"the deadline {deadline:%Y-%m-%d %H:%M:%S} UTC leaves no time once {reserve:g} s are reserved to validate "
            "and deploy; give a later deadline or a smaller reserve"
        )
    cores = len(os.sched_getaffinity(0))
    max_cpus = min(spec.resources.cpus or cores, cores)
    history = [(float(r.info["model_predicted_s"]), float(r.info["actual_s"]))  # oldest first
               for r in reversed(runs.list(kind="train", name=spec.name, limit=20))
               if r.status == "succeeded" and r.info.get("model_predicted_s") and r.info.get("actual_s")]
    points = planner.calibration_points(max_cpus)
    bars = progress_bars.progress(f"calibrating {spec.name}", total=len(points) + 1, enabled=progress, unit="runs")
    with bars as bar:
        # A first, discarded run starts the environment's warm interpreter and fills the file cache, so the runs
        # that are measured all start the way the real run will.
        _calibrate(spec, ws, package, env, data, points[0][0], max_cpus)
        bar.advance()

        def measure(fraction: float, cpus: float) -> float:
            seconds = _calibrate(spec, ws, package, env, data, fraction, cpus)
            calibration.append({"fraction": fraction, "cpus": cpus, "seconds": round(seconds, 3)})
            bar.advance()
            return seconds

        return planner.plan(measure, budget_s=budget, max_cpus=max_cpus, margin=spec.margin, history=history,
                            deadline=deadline, points=points)


def _calibrate(
    spec: TrainSpec, ws: Workspace, package: Package, env: Environment, data: dict[str, str], fraction: float,
    cpus: float,
) -> float:
    """Run the job on ``fraction`` of the data with ``cpus`` CPUs, locally; its wall time. Nothing is kept."""
    run_id = f"calibrate-{uuid.uuid4().hex[:8]}"
    with ws.staging("calibrate") as folder:
        _write_job(folder, run_id, spec, package, data, ws, fraction=fraction)
        launch = Launch(run_id, folder, package.path, env.python, package.requirements,
                        Resources(cpus=cpus, memory=spec.resources.memory), None, env={"AIFORGE_HOME": str(ws.home)})
        outcome = LOCAL.launch(launch)
        if outcome.status != "succeeded":
            raise JobFailed(
                f"calibration run of {spec.name} ({fraction:.0%} of the data, {cpus:g} CPUs) {outcome.status}: "
                f"{_user_error(folder) or outcome.error}\n{_log_tail(folder)}"
            )
        return outcome.wall_s


# -- the run folder ---------------------------------------------------------------------------------------------------


def _write_job(
    folder: Path, run_id: str, spec: TrainSpec, package: Package, data: dict[str, str], ws: Workspace, *,
    fraction: float,
) -> None:
    package_ref = package.path.relative_to(ws.home) if package.path.is_relative_to(ws.home) else package.path
    job = {"run_id": run_id, "name": spec.name, "entrypoint": spec.entrypoint, "package": str(package_ref),
           "data": data, "params": spec.params, "fraction": fraction, "workspace": str(ws.home),
           "needs_model": spec.register_model}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps(job, indent=2, default=str), encoding="utf-8")


def _options(spec: TrainSpec, build: bool) -> dict[str, Any]:
    options = {k: v for k, v in spec.runtime.model_dump().items() if v is not None and k != "kind"}
    if build:
        options["build"] = True
    return options


def _metrics(run_dir: Path) -> dict[str, float]:
    metrics: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError):
                record = json.loads(line)
                metrics[record["name"]] = record["value"]
    return metrics


def _keep_artifacts(run_dir: Path) -> None:
    out = run_dir / "out"
    artifacts = out / "artifacts"
    if artifacts.is_dir() and any(artifacts.iterdir()):
        os.replace(artifacts, run_dir / "artifacts")
    shutil.rmtree(out, ignore_errors=True)


def _discard(run_dir: Path) -> None:
    """A run that did not succeed keeps its log and error, and nothing it made."""
    shutil.rmtree(run_dir / "out", ignore_errors=True)


def _user_error(run_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads((run_dir / "error.json").read_text(encoding="utf-8"))["traceback"]).rstrip()
    return None


def _user_error_line(run_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads((run_dir / "error.json").read_text(encoding="utf-8"))["message"])
    return None


def _log_tail(run_dir: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        text = (run_dir / "job.log").read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
        return "\n".join(text[-lines:])
    return ""


def _failure(name: str, run_id: str, outcome: Outcome, run_dir: Path) -> str:
    user = _user_error(run_dir)
    what = {"oom": "ran out of memory", "timeout": "timed out", "killed": "was killed"}.get(outcome.status, "failed")
    head = f"training job {name!r} {what} (run {run_id}); nothing was registered"
    if user and outcome.status == "failed":
        body = user
    elif user:  # stopped from outside: why first, then where the code was
        body = f"{outcome.error}\nit was stopped in:\n{user}"
    else:
        tail = _log_tail(run_dir)
        body = (outcome.error or "") + (f"\nlast lines of its log:\n{tail}" if tail else "")
    return f"{head}\n{body}\nfull log: aiforge runs logs {run_id}"


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- watching a run ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _watch(run_dir: Path, chosen: planner.Plan | None, name: str, *, progress: bool) -> Iterator[list[str]]:
    """Follow ``progress.jsonl`` while the job runs: a bar, and one early warning when the deadline is at risk."""
    seen: list[str] = []
    stop = threading.Event()
    start = time.monotonic()
    with progress_bars.progress(f"training {name}", total=None, enabled=progress, unit="") as bar:

        def follow() -> None:
            done = 0.0
            while not stop.wait(0.25):
                last = _last_progress(run_dir)
                if last is None:
                    continue
                step, total = last
                if step > done:
                    bar.update(total=total)
                    bar.advance(step - done)
                    done = step
                if chosen is not None and not seen and total > 0:
                    warning = planner.at_risk(chosen, time.monotonic() - start, min(1.0, step / total))
                    if warning:
                        seen.append(warning)
                        log.warning(warning)
                        if progress:
                            sys.stderr.write(f"Warning: {warning}\n")

        thread = threading.Thread(target=follow, name=f"aiforge-watch-{name}", daemon=True)
        thread.start()
        try:
            yield seen
        finally:
            stop.set()
            thread.join(timeout=2)


def _last_progress(run_dir: Path) -> tuple[float, float] | None:
    path = run_dir / "progress.jsonl"
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 512))
            line = handle.read().decode("utf-8", errors="replace").strip().splitlines()[-1]
        record = json.loads(line)
        return float(record["step"]), float(record["total"])
    return None
