"""The model repository layout, known here and nowhere else.

A model repository is a folder of ONNX models by name and version, laid out as Triton lays it out, so one repository
moves between servers unchanged::

    MODEL_REPO/
      digits/
        config.yaml        optional: how the model is served (read by aiforge.serve.inference)
        1/model.onnx
        2/model.onnx       versions are positive integers; the newest is the default

:class:`ModelStore` turns names and versions into paths, lists what a repository holds, and adds versions the way the
rest of the workspace writes: a new version is built in a hidden staging folder next to its final place and renamed
into place when complete, so a crash or a failed check never leaves half a version behind, and readers never see one.

Reading is lenient, writing strict: any folder that does not start with ``.`` is a model to read (a repository made
by hand or by another tool is served as it is), while a new model must be named with letters, digits, ``_``, ``.``
and ``-``. Hidden folders (``.staging-*`` among them) are never models or versions.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiforge.errors import InvalidInput, ModelNotFound, WorkspaceError

__all__ = ["CONFIG_FILE", "LAYOUT", "MODEL_FILE", "ModelStore", "StagedVersion", "check_model_name", "parse_version"]

#: The file that holds one version of a model: ``MODEL_REPO/<name>/<version>/model.onnx``.
MODEL_FILE = "model.onnx"
#: The optional per-model settings file: ``MODEL_REPO/<name>/config.yaml``.
CONFIG_FILE = "config.yaml"
#: The layout in words, for messages that tell a user what a repository must hold.
LAYOUT = f"<model>/<version>/{MODEL_FILE}"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # used with fullmatch: '$' would let a trailing newline in
_DIGITS = re.compile(r"[0-9]+")
_STAGING_PREFIX = ".staging-"


def check_model_name(name: str) -> str:
    """Return ``name`` if a new model may be called so, else raise :class:`~aiforge.errors.InvalidInput`.

    A model name is a folder name: letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit.

    Examples
    --------
    >>> check_model_name("churn_v2")
    'churn_v2'
    >>> check_model_name("a/b")
    Traceback (most recent call last):
    ...
    aiforge.errors.InvalidInput: model name 'a/b' is not a folder name; use letters, digits, '_', '.', '-' (starting alphanumeric)
    """  # noqa: E501 (a doctest's expected line cannot be wrapped)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"model name {name!r} is not a folder name; use letters, digits, '_', '.', '-' (starting alphanumeric)"
        )
    return name


def parse_version(version: int | str) -> int:
    """The version number that ``version`` (``3`` or ``"3"``) stands for.

    Raises
    ------
    InvalidInput
        ``version`` is not a positive integer, or a string of ASCII digits that reads as one.

    Examples
    --------
    >>> parse_version("2"), parse_version(7)
    (2, 7)
    >>> parse_version("v2")
    Traceback (most recent call last):
    ...
    aiforge.errors.InvalidInput: version must be a positive integer such as 1; got 'v2'
    """
    integral = isinstance(version, numbers.Integral) and not isinstance(version, bool)
    digits = isinstance(version, str) and _DIGITS.fullmatch(version) is not None
    number = int(version) if integral or digits else 0
    if number < 1:
        raise InvalidInput(f"version must be a positive integer such as 1; got {version!r}")
    return number


def _folder_name(name: str) -> str:
    """Check that ``name`` is one visible path component, so it cannot reach outside the repository."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\0" in name
    ):
        raise InvalidInput(
            f"model name {name!r} is not a folder name; use letters, digits, '_', '.', '-' (starting alphanumeric)"
        )
    return name


@dataclass(frozen=True)
class StagedVersion:
    """A version being written by :meth:`ModelStore.stage`: fill ``path``; it moves to ``final`` when complete.

    Attributes
    ----------
    name : str
        The model.
    version : int
        The version it becomes.
    path : Path
        The private staging folder to write into.
    final : Path
        The version folder it is renamed to.
    """

    name: str
    version: int
    path: Path
    final: Path

    @property
    def model_file(self) -> Path:
        """Where to write the model: ``path / "model.onnx"``."""
        return self.path / MODEL_FILE


class ModelStore:
    """The model repository at ``root``: paths, listings and atomic writes of model versions.

    Constructing a store reads and writes nothing; ``root`` need not exist until a version is written.

    Parameters
    ----------
    root : str or path
        The repository folder (``~`` is expanded; it is not made absolute, so messages show it as given).

    Examples
    --------
    >>> import tempfile
    >>> store = ModelStore(tempfile.mkdtemp())
    >>> store.write_version("churn", b"onnx bytes").relative_to(store.root).as_posix()
    'churn/1/model.onnx'
    >>> store.write_version("churn", b"onnx bytes", version=5).parent.name
    '5'
    >>> store.versions("churn"), store.latest("churn"), store.next_version("churn")
    ([1, 5], 5, 6)
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------------------------------

    def model_dir(self, name: str) -> Path:
        """The folder of model ``name``: ``root/<name>``."""
        return self.root / _folder_name(name)

    def config_file(self, name: str) -> Path:
        """The optional settings file of model ``name``: ``root/<name>/config.yaml`` (it may not exist)."""
        return self.model_dir(name) / CONFIG_FILE

    def version_dir(self, name: str, version: int | str) -> Path:
        """The folder of one version: ``root/<name>/<version>``.

        An existing folder whose name reads as the same number (``01`` for 1) is returned when ``root/<name>/1``
        does not exist, so a repository made by hand resolves as the servers read it.
        """
        number = parse_version(version)
        canonical = self.model_dir(name) / str(number)
        if canonical.is_dir():
            return canonical
        return self.version_dirs(name).get(number, canonical)

    def model_file(self, name: str, version: int | str) -> Path:
        """The model file of one version: ``root/<name>/<version>/model.onnx`` (it may not exist)."""
        return self.version_dir(name, version) / MODEL_FILE

    # -- listings -------------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every model folder in the repository (hidden ones excepted), sorted; empty when ``root`` is missing.

        A folder is listed even when it holds no version yet; :meth:`versions` tells which ones can be served.
        """
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in self.root.iterdir() if entry.is_dir() and not entry.name.startswith("."))

    def version_dirs(self, name: str) -> dict[int, Path]:
        """Every version folder of model ``name`` (a folder named by a positive integer), oldest first.

        Folders without a model file are included (a repository made by hand may have them); :meth:`versions`
        leaves them out. When two folders read as the same number (``1`` and ``01``), the canonical one wins.

        Returns
        -------
        dict of int to Path
            Version number -> its folder; empty when the model folder is missing.
        """
        folder = self.model_dir(name)
        if not folder.is_dir():
            return {}
        found: dict[int, Path] = {}
        for entry in folder.iterdir():
            if not (_DIGITS.fullmatch(entry.name) and entry.is_dir()):
                continue
            number = int(entry.name)
            if number > 0 and (number not in found or entry.name == str(number)):
                found[number] = entry
        return dict(sorted(found.items()))

    def versions(self, name: str) -> list[int]:
        """The versions of model ``name`` that hold a model file, oldest first; empty when there is none."""
        return [number for number, folder in self.version_dirs(name).items() if (folder / MODEL_FILE).is_file()]

    def latest(self, name: str) -> int:
        """The newest version of model ``name`` that holds a model file.

        Raises
        ------
        ModelNotFound
            The repository has no such model, or the model has no version with a model file.
        """
        versions = self.versions(name)
        if versions:
            return versions[-1]
        if not self.model_dir(name).is_dir():
            present = [other for other in self.names() if self.versions(other)]
            raise ModelNotFound(
                f"model {name!r} is not in the model repository {self.root}; "
                f"models there: {', '.join(present) or 'none'}"
            )
        raise ModelNotFound(
            f"model {name!r} has no version in the model repository {self.root}; expected "
            f"{self.model_dir(name) / '<version>' / MODEL_FILE}"
        )

    def next_version(self, name: str, version: int | str | None = None) -> int:
        """The version a new write of model ``name`` gets.

        Parameters
        ----------
        name : str
            The model; checked with :func:`check_model_name`.
        version : int or str, optional
            The version wanted; ``None`` = one more than the newest version folder (1 for a new model).

        Returns
        -------
        int
            ``version`` when it is free, else the next free one.

        Raises
        ------
        InvalidInput
            The name or version is not acceptable, ``version`` already exists, or ``root`` is a file.
        """
        check_model_name(name)
        if self.root.exists() and not self.root.is_dir():
            raise InvalidInput(f"model repository {self.root} is a file; pass a folder (it is created if missing)")
        existing = self.version_dirs(name)
        following = max(existing, default=0) + 1
        if version is None:
            return following
        number = parse_version(version)
        if number in existing:
            raise InvalidInput(
                f"model {name!r} already has version {number} in {self.root}; pass another version, "
                f"or none to add version {following}"
            )
        return number

    # -- writing --------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def stage(self, name: str, version: int | str | None = None) -> Iterator[StagedVersion]:
        """Build a new version of model ``name`` in a private folder; it appears in the repository only when complete.

        Write the model (and any other file of the version) into the yielded :class:`StagedVersion`'s ``path``.
        When the block ends normally the folder is renamed to ``root/<name>/<version>``; when it raises, the
        staging folder is removed, and so are the model folder and ``root`` if this call created them.

        Parameters
        ----------
        name : str
            The model (created if new).
        version : int or str, optional
            The version to write; ``None`` = the next one. An existing version is never overwritten.

        Raises
        ------
        InvalidInput
            As :meth:`next_version`; or the block wrote no ``model.onnx``; or another writer took the version first.
        WorkspaceError
            The repository cannot be written (permissions, disk full).
        """
        number = self.next_version(name, version)
        folder = self.model_dir(name)
        created = [path for path in (self.root, folder) if not path.exists()]
        staging = folder / f"{_STAGING_PREFIX}{number}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        final = folder / str(number)
        try:
            try:
                staging.mkdir(parents=True)  # mkdir, not mkdtemp: the version gets the usual permissions
            except OSError as exc:
                raise WorkspaceError(
                    f"cannot write model {name!r} to the model repository {self.root}: {exc.strerror or exc}"
                ) from exc
            yield StagedVersion(name, number, staging, final)
            if not (staging / MODEL_FILE).is_file():
                raise InvalidInput(
                    f"version {number} of model {name!r} was staged without its {MODEL_FILE}; write it to "
                    f"{staging / MODEL_FILE} inside the block"
                )
            if final.exists():  # another writer chose the same number meanwhile
                raise InvalidInput(
                    f"model {name!r} already has version {number} in {self.root}; pass another version, "
                    f"or none to add version {self.next_version(name)}"
                )
            try:
                os.rename(staging, final)
            except OSError as exc:
                raise WorkspaceError(
                    f"cannot store version {number} of model {name!r} in {self.root}: {exc.strerror or exc}"
                ) from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for path in reversed(created):  # the model folder, then root: only if this call made them and left
                with contextlib.suppress(OSError):  # them empty
                    path.rmdir()
            raise

    def write_version(
        self,
        name: str,
        model: bytes,
        *,
        version: int | str | None = None,
        check: Callable[[Path], None] | None = None,
    ) -> Path:
        """Add ``model`` (the bytes of an ONNX file) as a new version of model ``name``, atomically.

        Parameters
        ----------
        name : str
            The model (created if new).
        model : bytes
            The content of ``model.onnx``; not inspected here.
        version : int or str, optional
            The version to write; ``None`` = the next one. An existing version is never overwritten.
        check : callable, optional
            Called with the staged file's path before the version is renamed into place; whatever it raises
            cancels the write (nothing is left behind) and propagates.

        Returns
        -------
        Path
            The written ``root/<name>/<version>/model.onnx``.

        Raises
        ------
        InvalidInput
            As :meth:`stage`.
        WorkspaceError
            The file cannot be written.
        """
        with self.stage(name, version) as staged:
            try:
                with staged.model_file.open("xb") as handle:
                    handle.write(model)
                    handle.flush()
                    os.fsync(handle.fileno())  # the bytes are on disk before the rename makes them visible
            except OSError as exc:
                raise WorkspaceError(
                    f"cannot write model {name!r} version {staged.version} in {self.root}: {exc.strerror or exc}"
                ) from exc
            if check is not None:
                check(staged.model_file)
        return staged.final / MODEL_FILE
