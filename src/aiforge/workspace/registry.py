"""The model registry: numbered versions of each model with their lineage and metrics, and movable aliases.

The files live in the workspace's model repository (``<AIFORGE_HOME>/models/<name>/<version>/model.onnx``, the layout
SERVE serves, owned by :class:`~aiforge.workspace.models.ModelStore`); the rows live in the catalog database
(:class:`~aiforge.workspace.db.CatalogDB`: the workspace's SQLite file, or PostgreSQL through ``AIFORGE_CATALOG``
for a team sharing one registry).

A registration picks its version number inside a serialised write transaction (one more than the newest of the
catalog's rows and the folders on disk), stages the files, renames them into place and commits the row: two writers
never get the same number, and a failure leaves neither a row nor a folder. Versions written straight into the
repository (by ``export_sklearn(..., name=)`` or by hand) are listed too, with empty lineage.

An alias (``production``, ``candidate``, any name) points at one version; moving it is one transaction, and each move
is kept in the alias history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiforge.errors import InvalidInput, ModelNotFound, NotFound, WorkspaceError
from aiforge.workspace.catalog import Workspace
from aiforge.workspace.db import CatalogDB, Cursor, catalog_url
from aiforge.workspace.models import MODEL_FILE, ModelStore, check_model_name, parse_version

__all__ = ["ModelVersion", "Registry", "parse_model_ref"]

_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VERSION_WORD = re.compile(r"v?[0-9]+")  # 'v3' or '3' name a version, so no alias may look like one
_EXTRA = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """Split a model reference into its name and what follows ``@``.

    Examples
    --------
    >>> parse_model_ref("digits@production"), parse_model_ref("digits@v3"), parse_model_ref("digits")
    (('digits', 'production'), ('digits', 'v3'), ('digits', None))

    Raises
    ------
    InvalidInput
        The name is not a model name, or ``@`` is followed by nothing.
    """
    if not isinstance(ref, str):
        raise InvalidInput(f"model reference must be a string such as 'digits@production'; got {ref!r}")
    name, sep, rest = ref.strip().partition("@")
    if sep and not rest:
        raise InvalidInput(f"model reference {ref!r} ends with '@'; use NAME, NAME@vN or NAME@ALIAS")
    return check_model_name(name), (rest if sep else None)


def check_alias(alias: str) -> str:
    """Return ``alias`` if it may name an alias: 1-64 letters, digits, ``_`` or ``-``, and not a version (``v3``)."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or _VERSION_WORD.fullmatch(alias):
        raise InvalidInput(
            f"alias {alias!r} is not an alias name; use letters, digits, '_' or '-' (for example 'production'), "
            "not a version such as 'v3'"
        )
    return alias


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model.

    Attributes
    ----------
    name, version : str, int
        The model and its version number.
    path : Path
        Its ``model.onnx``.
    created : str
        When it was registered, UTC to the second (``2026-12-01T21:11:32Z``).
    run_id : str or None
        The run that made it.
    lineage : dict
        Where it comes from: code and data versions, the spec...; empty for a version written outside the registry.
    metrics : dict
        Its metrics.
    aliases : tuple of str
        The aliases pointing at it.
    """

    name: str
    version: int
    path: Path
    created: str
    run_id: str | None = None
    lineage: dict[str, Any] = field(default_factory=dict, compare=False)
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of everything above."""
        return {
            "ref": self.ref, "name": self.name, "version": self.version, "path": str(self.path),
            "created": self.created, "run_id": self.run_id, "aliases": list(self.aliases),
            "lineage": self.lineage, "metrics": self.metrics,
        }


class Registry:
    """The model registry of a workspace.

    Parameters
    ----------
    workspace : Workspace or path, optional
        Default ``AIFORGE_HOME`` or ``./.aiforge``; the files go to its ``models/`` folder.
    catalog : str, optional
        The catalog database URL; default ``AIFORGE_CATALOG``, else the workspace's ``catalog.sqlite``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> home = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (home / "m.onnx").write_bytes(b"onnx")
    >>> registry = Registry(home, catalog=f"sqlite:///{home}/catalog.sqlite")
    >>> registry.register("churn", home / "m.onnx", metrics={"auc": 0.91}, aliases=["candidate"]).ref
    'churn@v1'
    >>> registry.get("churn@candidate").metrics
    {'auc': 0.91}
    """

    def __init__(self, workspace: Workspace | str | os.PathLike[str] | None = None, *,
                 catalog: str | None = None) -> None:
        home = workspace.home if isinstance(workspace, Workspace) else Workspace(workspace).home
        self.home = home
        self.store = ModelStore(home / "models")
        self.db = CatalogDB(catalog_url(home, catalog))

    def __repr__(self) -> str:
        return f"Registry({str(self.home)!r}, catalog={self.db.shown!r})"

    # -- writing --------------------------------------------------------------------------------------------------

    def register(self, name: str, model_file: str | os.PathLike[str], *, run_id: str | None = None,
                 lineage: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                 extra_files: Mapping[str, str | os.PathLike[str]] | None = None,
                 aliases: Sequence[str] = ()) -> ModelVersion:
        """Copy ``model_file`` into a new version of ``name``, with its lineage and metrics; all or nothing.

        Parameters
        ----------
        name : str
            The model (letters, digits, ``_``, ``.``, ``-``).
        model_file : path
            The ONNX file (not inspected here: the exporters check their models).
        run_id : str, optional
            The run that made it.
        lineage, metrics : mapping, optional
            JSON-ready facts about where it comes from and how good it is.
        extra_files : mapping of str to path, optional
            More files of the version: the name in the version folder -> the file to copy (e.g. ``model.json``).
        aliases : sequence of str
            Aliases to point at the new version, in the same transaction.

        Returns
        -------
        ModelVersion

        Raises
        ------
        InvalidInput
            A bad name, alias or extra file name; a file to copy that does not exist; lineage or metrics not JSON.
        WorkspaceError
            The repository or the catalog cannot be written (nothing is left behind).
        """
        check_model_name(name)
        source = Path(model_file)
        if not source.is_file():
            raise InvalidInput(f"model file {source} does not exist; pass the exported model.onnx of {name!r}")
        extras = {self._extra_name(key): Path(value) for key, value in (extra_files or {}).items()}
        wanted = [check_alias(alias) for alias in aliases]
        lineage_text, metrics_text = self._json(lineage, "lineage"), self._json(metrics, "metrics")
        created = _now()
        final: Path | None = None
        # The bytes are copied before the write lock is taken (a model can be large); under the lock the files
        # are only renamed, which is quick. The upload folder is private and removed whatever happens.
        with Workspace(self.home).staging("model") as upload:
            _copy(source, upload / MODEL_FILE, f"model file of {name!r}")
            for target, path in extras.items():
                _copy(path, upload / target, f"extra file {target!r} of {name!r}")
            try:
                with self.db.transaction(write=True) as cur:
                    row = cur.execute("SELECT MAX(version) FROM models WHERE name = ?", (name,)).fetchone()
                    version = max((row[0] if row else None) or 0, *self.store.version_dirs(name), 0) + 1
                    with self.store.stage(name, version) as staged:
                        for file in upload.iterdir():
                            _move_file(file, staged.path / file.name, name)
                        cur.execute(
                            "INSERT INTO models (name, version, path, created, run_id, lineage, metrics) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (name, version, f"{name}/{version}/{MODEL_FILE}", created, run_id, lineage_text,
                             metrics_text),
                        )
                        for alias in wanted:
                            self._move(cur, name, alias, version, created)
                    final = staged.final  # renamed into place; the commit at the end of the block makes it known
            except BaseException:
                if final is not None:  # the rename happened but the commit did not
                    shutil.rmtree(final, ignore_errors=True)
                raise
        return self.get(f"{name}@v{version}")

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        """Point ``alias`` of model ``name`` at ``version`` (``3``, ``"3"`` or ``"v3"``), atomically; the move is
        recorded in :meth:`alias_history`.

        Raises
        ------
        InvalidInput
            A bad alias name or version.
        ModelNotFound
            The model has no such version.
        """
        check_model_name(name)
        check_alias(alias)
        number = self._version_number(version)
        with self.db.transaction(write=True) as cur:
            if number not in self._numbers(cur, name):
                raise self._missing(cur, name, f"v{number}")
            self._move(cur, name, alias, number, _now())
        return self.get(f"{name}@v{number}")

    def remove_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` of model ``name`` (recorded in the history as a move to no version).

        Raises
        ------
        NotFound
            The model has no such alias.
        """
        check_model_name(name)
        check_alias(alias)
        with self.db.transaction(write=True) as cur:
            current = self._alias_rows(cur, name)
            if alias not in current:
                known = ", ".join(f"{a} -> v{v}" for a, v in current.items()) or "none"
                raise NotFound(f"model {name!r} has no alias {alias!r}; its aliases: {known}")
            cur.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
            self._history(cur, name, alias, None, current[alias], _now())

    # -- reading --------------------------------------------------------------------------------------------------

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``name`` (the newest version), ``name@v3``, ``name@3`` or ``name@ALIAS``.

        Raises
        ------
        InvalidInput
            ``ref`` is not a model reference.
        ModelNotFound
            No such model, version or alias; the message lists what exists.
        """
        name, which = parse_model_ref(ref)
        with self.db.transaction() as cur:
            found = self._versions(cur, name)
            aliases = self._alias_rows(cur, name)
            if which is None:
                if found:
                    return found[-1]
                raise self._missing(cur, name, None)
            if _VERSION_WORD.fullmatch(which):
                number = int(which.lstrip("v"))
            elif which in aliases:
                number = aliases[which]
            else:
                raise self._missing(cur, name, which)
            for candidate in found:
                if candidate.version == number:
                    return candidate
            if which in aliases:
                raise ModelNotFound(
                    f"alias {which!r} of model {name!r} points at v{number}, which is no longer in the model "
                    f"repository {self.store.root}; move it with `aiforge models alias {name}@vN {which}`"
                )
            raise self._missing(cur, name, which)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` with a model file, oldest first (catalog rows and folders on disk)."""
        check_model_name(name)
        with self.db.transaction() as cur:
            return self._versions(cur, name)

    def names(self) -> list[str]:
        """Every model with at least one version, sorted."""
        with self.db.transaction() as cur:
            return self._names(cur)

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of model ``name``: alias -> version."""
        check_model_name(name)
        with self.db.transaction() as cur:
            return self._alias_rows(cur, name)

    def alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every move of the aliases of ``name`` (or of one alias), oldest first.

        Returns
        -------
        list of dict
            ``alias``, ``version`` (``None`` when removed), ``previous`` (``None`` when new) and ``at`` (UTC).
        """
        check_model_name(name)
        query, args = "SELECT alias, version, previous, at FROM model_alias_history WHERE name = ?", [name]
        if alias is not None:
            query, args = query + " AND alias = ?", [name, check_alias(alias)]
        with self.db.transaction() as cur:
            rows = cur.execute(query + " ORDER BY seq", args).fetchall()
        return [dict(zip(("alias", "version", "previous", "at"), row, strict=True)) for row in rows]

    # -- helpers --------------------------------------------------------------------------------------------------

    def _versions(self, cur: Cursor, name: str) -> list[ModelVersion]:
        rows = cur.execute(
            "SELECT version, created, run_id, lineage, metrics FROM models WHERE name = ? ORDER BY version", (name,)
        ).fetchall()
        tags: dict[int, list[str]] = {}
        for alias, number in sorted(self._alias_rows(cur, name).items()):
            tags.setdefault(number, []).append(alias)
        on_disk = self._safe_versions(name)
        found: dict[int, ModelVersion] = {}
        for number, created, run_id, lineage, metrics in rows:
            if number in on_disk:  # a row whose folder was removed by hand cannot be served: not listed
                found[number] = ModelVersion(name, number, self.store.model_file(name, number), created, run_id,
                                             json.loads(lineage), json.loads(metrics), tuple(tags.get(number, ())))
        for number in on_disk:
            if number not in found:  # written straight into the repository
                path = self.store.model_file(name, number)
                stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                found[number] = ModelVersion(name, number, path, stamp, None, {}, {}, tuple(tags.get(number, ())))
        return [found[number] for number in sorted(found)]

    def _safe_versions(self, name: str) -> list[int]:
        try:
            return self.store.versions(name)
        except InvalidInput:  # a folder name no model may have
            return []

    def _numbers(self, cur: Cursor, name: str) -> set[int]:
        return {version.version for version in self._versions(cur, name)}

    def _alias_rows(self, cur: Cursor, name: str) -> dict[str, int]:
        rows = cur.execute("SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,))
        return {alias: int(number) for alias, number in rows.fetchall()}

    def _move(self, cur: Cursor, name: str, alias: str, version: int, at: str) -> None:
        previous = self._alias_rows(cur, name).get(alias)
        cur.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
        cur.execute("INSERT INTO model_aliases (name, alias, version, updated) VALUES (?, ?, ?, ?)",
                    (name, alias, version, at))
        self._history(cur, name, alias, version, previous, at)

    def _history(self, cur: Cursor, name: str, alias: str, version: int | None, previous: int | None,
                 at: str) -> None:
        row = cur.execute("SELECT MAX(seq) FROM model_alias_history WHERE name = ?", (name,)).fetchone()
        seq = ((row[0] if row else None) or 0) + 1
        cur.execute(
            "INSERT INTO model_alias_history (name, seq, alias, version, previous, at) VALUES (?, ?, ?, ?, ?, ?)",
            (name, seq, alias, version, previous, at),
        )

    def _missing(self, cur: Cursor, name: str, which: str | None) -> ModelNotFound:
        found = self._versions(cur, name)
        if not found:
            known = [other for other in self._names(cur) if other != name]
            return ModelNotFound(
                f"model {name!r} is not in the registry of workspace {self.home}; models there: "
                f"{', '.join(known) or 'none (register one with `aiforge train` or Registry.register)'}"
            )
        versions = ", ".join(f"v{v.version}" for v in found)
        aliases = ", ".join(f"{a} -> v{v}" for a, v in self._alias_rows(cur, name).items()) or "none"
        what = "version" if which and _VERSION_WORD.fullmatch(which) else "alias"
        return ModelNotFound(
            f"model {name!r} has no {what} {which!r}; its versions: {versions}; its aliases: {aliases}"
        )

    def _names(self, cur: Cursor) -> list[str]:
        rows = {row[0] for row in cur.execute("SELECT DISTINCT name FROM models").fetchall()}
        return sorted(name for name in rows | set(self.store.names()) if self._safe_versions(name))

    @staticmethod
    def _version_number(version: int | str) -> int:
        text = version[1:] if isinstance(version, str) and version.startswith("v") else version
        try:
            return parse_version(text)
        except InvalidInput:
            raise InvalidInput(f"version must be a positive integer such as 3 or 'v3'; got {version!r}") from None

    @staticmethod
    def _extra_name(target: str) -> str:
        if not isinstance(target, str) or not _EXTRA.fullmatch(target) or target == MODEL_FILE:
            raise InvalidInput(
                f"extra file name {target!r} must be a plain file name (letters, digits, '_', '.', '-') other "
                f"than {MODEL_FILE!r}, such as 'model.json'"
            )
        return target

    @staticmethod
    def _json(value: Mapping[str, Any] | None, what: str) -> str:
        if value is not None and not isinstance(value, Mapping):
            raise InvalidInput(f"{what} must be a mapping such as {{'accuracy': 0.97}}; got {type(value).__name__}")
        try:
            return json.dumps(dict(value or {}), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{what} must be JSON (numbers, strings, lists, mappings): {exc}") from exc


def _copy(source: Path, target: Path, what: str) -> None:
    if not source.is_file():
        raise InvalidInput(f"{what}: {source} is not a file; pass an existing file")
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise WorkspaceError(f"cannot copy the {what} from {source}: {exc.strerror or exc}") from exc


def _move_file(source: Path, target: Path, name: str) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        raise WorkspaceError(
            f"cannot store a file of model {name!r} in {target.parent}: {exc.strerror or exc}"
        ) from exc
