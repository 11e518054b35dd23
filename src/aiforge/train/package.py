"""Freezing a job's code into a content-addressed package, and its Python environment, built once per lock.

A run must be reproducible from its record, so the code is copied, at submit time, into
``AIFORGE_HOME/train/packages/<hash>/``, where ``hash`` covers every file (path and bytes) and the lock (the
requirements' text): the same code and requirements always give the same package, and a changed byte a new one.

Environments are the slow part of a job and change far less often than its data, so each is built once per lock and
reused: ``AIFORGE_HOME/train/envs/<env hash>/`` is a virtual environment that sees the platform's own packages (the
interpreter aiforge runs in, with aiforge, NumPy, scikit-learn...) and gets only what the lock adds on top of them.
A job without requirements runs in the platform's interpreter directly. Building is guarded by a file lock, so two
jobs with the same lock build it once, and an environment whose build failed or was interrupted is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiforge.errors import InvalidInput, WorkspaceError
from aiforge.train.spec import GitCode
from aiforge.version import __version__

__all__ = ["Environment", "Package", "environment", "freeze"]

#: Folders and files never copied into a package.
IGNORED = frozenset({".git", "__pycache__", ".venv", "venv", ".aiforge", ".ipynb_checkpoints", ".mypy_cache",
                     ".pytest_cache", ".ruff_cache", "node_modules", ".DS_Store"})
_READY = ".ready"
_MAX_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class Package:
    """A frozen code package.

    Attributes
    ----------
    hash : str
        SHA-256 of the files (paths and bytes) and the lock.
    path : Path
        Its folder, ``AIFORGE_HOME/train/packages/<hash>``; the job's working directory.
    requirements : list of str
        The lock's requirement lines.
    files : int
        How many files it holds.
    source : dict
        Where it came from: ``{"path": ...}`` or ``{"git": URL, "rev": REV, "commit": SHA}``.
    """

    hash: str
    path: Path
    requirements: list[str]
    files: int
    source: dict[str, str] = field(default_factory=dict)

    @property
    def lock_hash(self) -> str:
        return _lock_hash(self.requirements)


@dataclass(frozen=True)
class Environment:
    """The job's Python: ``python`` to run, ``hash`` of what it holds, whether this call ``built`` it, how long."""

    python: str
    hash: str
    path: Path | None
    built: bool = False
    seconds: float = 0.0


def freeze(code: Path | GitCode, requirements: list[str] | Path, *, home: Path) -> Package:
    """Copy ``code`` (a folder, or a :class:`~aiforge.train.spec.GitCode`) and its lock into a package.

    Parameters
    ----------
    code : Path or GitCode
        The code folder, or a git repository and revision.
    requirements : list of str or Path
        Requirement lines, or a lock file (a path relative to the code folder).
    home : Path
        The workspace folder (``AIFORGE_HOME``).

    Raises
    ------
    InvalidInput
        The folder or lock file does not exist, git cannot check out the revision, or the code is over 512 MB.
    """
    if isinstance(code, Path):
        source = {"path": str(code)}
        return _freeze_folder(code, requirements, home=home, source=source)
    with _git_checkout(code) as (folder, source):
        return _freeze_folder(folder, requirements, home=home, source=source)


def _freeze_folder(folder: Path, requirements: list[str] | Path, *, home: Path, source: dict[str, str]) -> Package:
    if not folder.is_dir():
        raise InvalidInput(
            f"code folder {folder} does not exist; set code: to the folder that holds your training code"
        )
    lines = _requirements(folder, requirements)
    files = _files(folder)
    digest = hashlib.sha256()
    total = 0
    for relative in files:
        data = (folder / relative).read_bytes()
        total += len(data)
        if total > _MAX_BYTES:
            raise InvalidInput(
                f"code folder {folder} holds over 512 MB; keep data out of it (use data: references) or list big "
                "files' folders in .gitignore-like names such as data/ outside the code folder"
            )
        digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
    digest.update(b"lock\0" + "\n".join(lines).encode())
    package_hash = digest.hexdigest()
    final = home / "train" / "packages" / package_hash
    if not final.is_dir():
        staging = final.parent / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            for relative in files:
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / relative, target)
            staging.mkdir(parents=True, exist_ok=True)
            (staging / "requirements.lock").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            with contextlib.suppress(FileExistsError, OSError):
                os.rename(staging, final)  # another submit of the same code may have won: same content
            if not final.is_dir():
                raise WorkspaceError(f"cannot store the code package in {final.parent}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Package(package_hash, final, lines, len(files), source)


def _files(folder: Path) -> list[str]:
    found: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED)
        for name in sorted(names):
            if name in IGNORED or name.endswith(".pyc"):
                continue
            path = Path(root) / name
            if path.is_file():
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def _requirements(folder: Path, requirements: list[str] | Path) -> list[str]:
    if isinstance(requirements, Path):
        lock = requirements if requirements.is_absolute() else folder / requirements
        try:
            text = lock.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(
                f"cannot read the requirements lock file {lock}: {exc.strerror or exc}; give a path relative to the "
                "code folder, or a list of packages"
            ) from exc
        raw = text.splitlines()
    else:
        raw = list(requirements)
    return [line.strip() for line in raw if line.strip() and not line.strip().startswith("#")]


@contextlib.contextmanager
def _git_checkout(code: GitCode) -> Iterator[tuple[Path, dict[str, str]]]:
    url, rev, subdir = code.git, code.rev, code.subdir
    with tempfile.TemporaryDirectory(prefix="aiforge-git-") as tmp:
        checkout = Path(tmp) / "repo"
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        for args in (["clone", "--quiet", "--no-checkout", url, str(checkout)],
                     ["-C", str(checkout), "checkout", "--quiet", "--detach", rev]):
            done = subprocess.run(["git", *args], capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise InvalidInput(
                    f"cannot check out {url} at {rev!r}: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}"
                    "; check code.git and code.rev"
                )
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        folder = checkout / subdir if subdir else checkout
        yield folder, {"git": url, "rev": rev, "commit": commit, **({"subdir": subdir} if subdir else {})}


# -- environments -----------------------------------------------------------------------------------------------------


def _lock_hash(lines: list[str]) -> str:
    text = "\n".join(lines) + f"\npython {sys.version_info[0]}.{sys.version_info[1]}\naiforge {__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def environment(package: Package, *, home: Path, log: Path | None = None) -> Environment:
    """The environment of ``package``'s lock: the platform's interpreter without requirements, else a cached venv.

    Parameters
    ----------
    package : Package
        The frozen package.
    home : Path
        The workspace folder; environments live in ``home/train/envs``.
    log : Path, optional
        Where pip's output goes while building.

    Raises
    ------
    InvalidInput
        pip could not install the requirements (its last lines are in the message; nothing is kept).
    """
    env_hash = package.lock_hash
    if not package.requirements:
        return Environment(sys.executable, env_hash, None)
    folder = home / "train" / "envs" / env_hash
    python = folder / "bin" / "python"
    if (folder / _READY).exists():
        return Environment(str(python), env_hash, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(folder.parent / f"{env_hash}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another job with the same lock builds it once; we wait and reuse it
        if (folder / _READY).exists():
            return Environment(str(python), env_hash, folder)
        shutil.rmtree(folder, ignore_errors=True)  # a build that failed or was interrupted
        try:
            _build(folder, package.requirements, log)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        (folder / _READY).write_text(__version__, encoding="utf-8")
    return Environment(str(python), env_hash, folder, built=True, seconds=time.perf_counter() - start)


def _build(folder: Path, requirements: list[str], log: Path | None) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    base = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    # An import line, not bare paths: addsitedir also reads the platform's .pth files (aiforge's editable install).
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in base)
    Path(purelib, "_aiforge_platform.pth").write_text(lines, encoding="utf-8")
    lock = folder / "requirements.lock"
    lock.write_text("".join(f"{line}\n" for line in requirements), encoding="utf-8")
    command = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "install",
               "--quiet", "-r", str(lock)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise InvalidInput(f"cannot install the job's requirements ({', '.join(requirements)}):\n{tail}")
