"""The inside of a training job: ``python -m aiforge.train.job RUN_DIR``, the one command every runtime runs.

It reads ``RUN_DIR/job.json``, builds the :class:`~aiforge.train.context.Context`, calls the user's entrypoint and
exports the model it returns (or saved) to ``RUN_DIR/out/model.onnx``. When the user's code raises, the traceback
(the user's frames only) goes to stderr, which the runtime writes to ``job.log``, and to ``RUN_DIR/error.json``; the
exit code is 1. It writes nothing outside ``RUN_DIR``, so runtimes need only run the command and read the folder.

Paths in ``job.json`` that are relative (the package) are read against the workspace: ``AIFORGE_HOME`` when set (a
pod mounts the workspace elsewhere), else ``job.json``'s ``workspace``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import runpy
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main", "run_job"]


def run_job(run_dir: Path) -> int:
    """Run the job described by ``run_dir/job.json``; return the process exit code (0 = a model was saved)."""
    job = json.loads((run_dir / "job.json").read_text(encoding="utf-8"))
    home = Path(os.environ.get("AIFORGE_HOME") or job["workspace"])
    package = Path(job["package"])
    package = package if package.is_absolute() else home / package
    from aiforge.train import context as context_module
    from aiforge.workspace import Workspace

    ctx = context_module.Context(
        run_dir, run_id=job["run_id"], params=job.get("params", {}), data=job.get("data", {}),
        workspace=Workspace(home), fraction=float(job.get("fraction", 1.0)),
    )
    context_module._set_current(ctx)
    sys.path.insert(0, str(package))
    try:
        result = _call(package, job["entrypoint"], ctx)
        needs_model = job.get("needs_model", True)
        if needs_model and ctx.model_path is None and result is not None:
            ctx.save_model(result)  # a job that registers nothing (register_model: false) exports nothing either
        if needs_model and ctx.model_path is None:
            raise RuntimeError(
                "the job saved no model: return the fitted model from the entrypoint function, or call "
                "ctx.save_model(model) (aiforge.train.current() in a script); or set register_model: false"
            )
    except BaseException as exc:  # the user's error, reported and turned into an exit code
        if isinstance(exc, SystemExit) and exc.code in (0, None) and ctx.model_path is not None:
            return 0
        _report(run_dir, exc)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        return 1
    finally:
        context_module._set_current(None)
    return 0


def _call(package: Path, entrypoint: str, ctx: Any) -> Any:
    target, _, function = entrypoint.partition(":")
    if target.endswith(".py"):
        path = package / target
        if not function:
            runpy.run_path(str(path), run_name="__main__")
            return None
        name = Path(target).with_suffix("").as_posix().replace("/", ".")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # so pickle and dataclasses find what the module defines
        spec.loader.exec_module(module)
    elif not function:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return None
    else:
        module = importlib.import_module(target)
    return getattr(module, function)(ctx)


def _report(run_dir: Path, exc: BaseException) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = {__file__, runpy.__file__, importlib.util.__file__}
    user = [frame for frame in frames if frame.filename not in mine and "<frozen" not in frame.filename]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(user),
             *traceback.format_exception_only(type(exc), exc)]
    text = "".join(lines)
    sys.stderr.write(text)
    sys.stderr.flush()
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    error = {"type": type(exc).__name__, "message": message, "traceback": text}
    tmp = run_dir / ".error.json.tmp"
    tmp.write_text(json.dumps(error, indent=2), encoding="utf-8")
    os.replace(tmp, run_dir / "error.json")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # a runtime stopping the job: report it as interrupted, like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m aiforge.train.job RUN_DIR\n")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    return run_job(Path(args[0]).absolute())


if __name__ == "__main__":
    sys.exit(main())
