"""Where aiforge keeps what it writes, and the catalog that indexes it.

Layout under ``AIFORGE_HOME`` (default ``./.aiforge``)::

    catalog.sqlite                  snapshots and reports, one row each
    snapshots/NAME/vN/              immutable: manifest.json + data/part-*.parquet
    reports/NAME@vN/<stamp>/        report.html + stats.json
    .tmp/<kind>-<pid>-<hex>/        staging; renamed into place when complete, swept when its process is gone

A snapshot becomes visible only when its directory has been renamed into place *and* its catalog row committed, both
under one catalog transaction; a process killed before that leaves at most a staging directory, which the next
workspace operation removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiforge import reprs
from aiforge.errors import InvalidInput, SnapshotNotFound, WorkspaceError

__all__ = ["Snapshot", "Workspace", "check_name", "parse_ref", "process_alive", "write_atomic"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_REF = re.compile(r"^(?P<name>[^@]+?)(?:@v(?P<version>\d+))?$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created TEXT NOT NULL,
    manifest TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    html TEXT,
    json TEXT,
    created TEXT NOT NULL
);
"""


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid snapshot name, else raise :class:`InvalidInput`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid snapshot name {name!r}: use 1-128 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit (for example 'users' or 'clicks_2024')"
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``"name@v3"`` into ``("name", 3)`` and ``"name"`` into ``("name", None)`` (the latest version)."""
    match = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise InvalidInput(f"invalid snapshot reference {ref!r}: expected NAME or NAME@vN, for example 'users@v3'")
    return check_name(match["name"]), (int(match["version"]) if match["version"] else None)


@dataclass(frozen=True)
class Snapshot:
    """An immutable, versioned snapshot: a folder of Parquet files and the manifest that describes them."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def columns(self) -> list[str]:
        return [column["name"] for column in self.manifest["schema"]]

    @property
    def created(self) -> str:
        return str(self.manifest["created"])

    @property
    def files(self) -> list[Path]:
        """The Parquet files of the snapshot, in order."""
        return [self.path / item["path"] for item in self.manifest["files"]]

    def dataset(self) -> Any:
        """The snapshot as a :class:`pyarrow.dataset.Dataset` (lazy; nothing is read yet)."""
        import pyarrow.dataset as ds

        return ds.dataset([str(f) for f in self.files], format="parquet")

    def to_arrow(self) -> Any:
        """Read the whole snapshot into a :class:`pyarrow.Table`."""
        return self.dataset().to_table()

    def to_pandas(self) -> Any:
        """Read the whole snapshot into a :class:`pandas.DataFrame` (needs pandas)."""
        return self.to_arrow().to_pandas()

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: name, version, ref, rows, columns, bytes, created, source, engine."""
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "rows": self.rows,
            "columns": self.columns,
            "bytes": self.manifest.get("bytes"),
            "created": self.created,
            "source": self.manifest.get("source"),
            "engine": self.manifest.get("engine"),
            "path": str(self.path),
        }

    def _repr_html_(self) -> str:
        """A compact summary for Jupyter: the facts of :meth:`summary` and the first columns with their types."""
        return reprs.summary(f"Snapshot {self.ref}", self._html_facts(), self._html_columns())

    def _html_facts(self) -> list[tuple[str, object]]:
        schema = self.manifest.get("schema", [])
        where = self.manifest.get("engine")
        if where and self.manifest.get("master"):
            where = f"{where} ({self.manifest['master']})"
        return [
            ("rows", self.rows),
            ("columns", len(schema)),
            ("bytes", reprs.human_bytes(self.manifest.get("bytes"))),
            ("source", self.manifest.get("source")),
            ("created", self.created),
            ("engine", where),
        ]

    def _html_columns(self) -> str:
        schema = self.manifest.get("schema", [])
        rows = ((column["name"], column.get("type")) for column in schema)
        return reprs.table(("column", "type"), rows, total=len(schema), noun="columns")


class Workspace:
    """The folder under which aiforge writes snapshots and reports, with its SQLite catalog.

    Parameters
    ----------
    home : path, optional
        Defaults to the ``AIFORGE_HOME`` environment variable, or ``./.aiforge``.

    Examples
    --------
    >>> ws = Workspace("/tmp/aiforge-doc")
    >>> ws.list_snapshots()
    []
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home if home is not None else os.environ.get("AIFORGE_HOME", ".aiforge")).absolute()
        self._schema_ready = False  # the catalog's tables are created on first use, once

    def __repr__(self) -> str:
        return f"Workspace({str(self.home)!r})"

    @property
    def snapshots_dir(self) -> Path:
        return self.home / "snapshots"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def tmp_dir(self) -> Path:
        return self.home / ".tmp"

    # -- catalog -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _catalog(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            path = self.home / "catalog.sqlite"
            self._schema_ready = self._schema_ready and path.exists()  # a deleted catalog starts over
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise WorkspaceError(f"cannot open the catalog in workspace {self.home}: {exc}") from exc
        try:
            if not self._schema_ready:
                conn.executescript(_SCHEMA)
                self._schema_ready = True
            if write:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            if write:
                conn.execute("COMMIT")
        except BaseException:
            if write and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    # -- staging -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self, kind: str) -> Iterator[Path]:
        """Yield an empty private folder for building an artifact; removed if the block raises.

        The caller moves the folder into place with :meth:`commit_snapshot` before the block ends. Folders left by
        processes that died are swept first.
        """
        self.sweep()
        path = self.tmp_dir / f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create a staging folder in workspace {self.home}: {exc}") from exc
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def sweep(self) -> list[Path]:
        """Remove what dead processes left behind; return what was removed.

        That is staging folders whose process is gone, and snapshot folders whose commit was interrupted: moved
        into place but killed before their catalog row was committed, so no reader ever saw them. A folder in
        ``snapshots/`` that aiforge did not leave half-committed (made or restored by hand) is never touched.
        """
        removed: list[Path] = []
        if self.tmp_dir.is_dir():
            for entry in self.tmp_dir.iterdir():
                parts = entry.name.split("-")
                pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
                if pid == os.getpid() or (pid is not None and process_alive(pid)):
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed + self._sweep_interrupted_commits()

    def _sweep_interrupted_commits(self) -> list[Path]:
        markers = list(self.snapshots_dir.glob(f"*/v*/{_COMMIT_MARKER}*")) if self.snapshots_dir.is_dir() else []
        if not markers:
            return []
        removed: list[Path] = []
        # A commit renames its folder and inserts its row in one write transaction: while this holds the write
        # lock no commit is half-way, so a marked folder without a row was left by a process that died in between.
        with self._catalog(write=True) as conn:
            known = {row[0] for row in conn.execute("SELECT path FROM snapshots")}
            for marker in markers:
                folder = marker.parent
                pid = marker.name[len(_COMMIT_MARKER):]
                if str(folder.relative_to(self.home)) in known:
                    marker.unlink(missing_ok=True)  # committed; its process died before tidying up
                elif not (pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid))):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed

    # -- snapshots -----------------------------------------------------------------------------------------------

    def commit_snapshot(self, name: str, staged: Path, manifest: dict[str, Any]) -> Snapshot:
        """Give the staged folder the next version of ``name`` and make it visible, atomically.

        ``manifest`` is completed with ``name`` and ``version`` and written to ``manifest.json`` before the rename.
        The folder carries a ``.commit-PID`` marker from before the rename until its catalog row is committed, so
        a process killed in between leaves a folder that :meth:`sweep` knows to remove, and only such a folder.
        """
        check_name(name)
        marker = f"{_COMMIT_MARKER}{os.getpid()}"
        with self._catalog(write=True) as conn:
            row = conn.execute("SELECT MAX(version) FROM snapshots WHERE name = ?", (name,)).fetchone()
            on_disk = [_version_of(p) for p in (self.snapshots_dir / name).glob("v*")]
            version = max([row[0] or 0, *[v for v in on_disk if v is not None]]) + 1
            manifest = {"name": name, "version": version, **manifest}
            final = self.snapshots_dir / name / f"v{version}"
            try:
                _write_json(staged / "manifest.json", manifest)
                (staged / marker).touch()
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staged, final)
            except OSError as exc:
                raise WorkspaceError(f"cannot store snapshot {name}@v{version} in {self.home}: {exc}") from exc
            try:
                conn.execute(
                    "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        version,
                        str(final.relative_to(self.home)),
                        int(manifest["rows"]),
                        int(manifest["bytes"]),
                        str(manifest["created"]),
                        json.dumps(manifest),
                    ),
                )
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
        (final / marker).unlink(missing_ok=True)  # committed: a marker left by a kill here is only tidied by sweep
        return Snapshot(name, version, final, manifest)

    def list_snapshots(self, name: str | None = None) -> list[Snapshot]:
        """All snapshots (or all versions of ``name``), oldest first within a name."""
        query = "SELECT name, version, path, manifest FROM snapshots"
        args: tuple[Any, ...] = ()
        if name is not None:
            query, args = query + " WHERE name = ?", (check_name(name),)
        with self._catalog() as conn:
            rows = conn.execute(query + " ORDER BY name, version", args).fetchall()
        return [Snapshot(n, v, self.home / p, json.loads(m)) for n, v, p, m in rows]

    def get_snapshot(self, ref: str) -> Snapshot:
        """Resolve ``name`` (latest version) or ``name@vN`` to a :class:`Snapshot`."""
        name, version = parse_ref(ref)
        versions = self.list_snapshots(name)
        if not versions:
            known = sorted({s.name for s in self.list_snapshots()})
            empty = "the catalog is empty; create one with `aiforge dump`"
            hint = f"known snapshots: {', '.join(known)}" if known else empty
            raise SnapshotNotFound(f"snapshot {name!r} not found in workspace {self.home}; {hint}")
        if version is None:
            return versions[-1]
        for snapshot in versions:
            if snapshot.version == version:
                return snapshot
        available = ", ".join(s.ref for s in versions)
        raise SnapshotNotFound(f"snapshot {name}@v{version} not found; available versions: {available}")

    def remove_snapshot(self, ref: str) -> Snapshot:
        """Delete one version; the reference must name it explicitly (``name@vN``)."""
        name, version = parse_ref(ref)
        if version is None:
            raise InvalidInput(f"refusing to remove {ref!r} without a version; name one, for example '{name}@v1'")
        snapshot = self.get_snapshot(ref)
        with self._catalog(write=True) as conn:
            conn.execute("DELETE FROM snapshots WHERE name = ? AND version = ?", (name, version))
            trash = self.tmp_dir / f"rm-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(snapshot.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return snapshot

    # -- reports -------------------------------------------------------------------------------------------------

    def report_dir(self, subject: str, stamp: str) -> Path:
        """The folder where a report about ``subject`` (a snapshot ref or a file name) made at ``stamp`` lives."""
        safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", subject).strip("_") or "data"
        return self.reports_dir / safe / stamp

    def record_report(self, subject: str, html: Path | None, json_path: Path | None, created: str) -> int:
        """Add a report to the catalog and return its id (``created``: an ISO 8601 time, stored in UTC to the second
        like a snapshot's, ``2026-12-01T21:11:32Z``)."""
        with self._catalog(write=True) as conn:
            cursor = conn.execute(
                "INSERT INTO reports (subject, html, json, created) VALUES (?, ?, ?, ?)",
                (subject, str(html) if html else None, str(json_path) if json_path else None, utc_second(created)),
            )
            return int(cursor.lastrowid or 0)

    def list_reports(self) -> list[dict[str, Any]]:
        """Reports in the catalog, newest last: id, subject, html, json, created, missing.

        ``missing`` is true when none of the report's files exists any more (deleted, or on a drive that is not
        mounted). Such reports stay in the catalog: listing never deletes anything.
        """
        with self._catalog() as conn:
            rows = conn.execute("SELECT id, subject, html, json, created FROM reports ORDER BY id").fetchall()
        reports = [dict(zip(("id", "subject", "html", "json", "created"), row, strict=True)) for row in rows]
        for report in reports:
            report["created"] = utc_second(report["created"])  # rows from before one format was kept
            report["missing"] = not any(os.path.exists(report[key]) for key in ("html", "json") if report[key])
        return reports


def snapshot(ref: str, *, workspace: Workspace | str | os.PathLike[str] | None = None) -> Snapshot:
    """Open an existing snapshot: ``name`` (its newest version) or ``name@vN``, a table or a feature snapshot.

    Parameters
    ----------
    ref : str
        The snapshot reference, as ``aiforge snapshots list`` shows it.
    workspace : Workspace or path, optional
        Default ``AIFORGE_HOME`` or ``./.aiforge``.

    Raises
    ------
    SnapshotNotFound
        No such snapshot or version; the message lists the ones that exist.

    Examples
    --------
    >>> orders = aiforge.snapshot("orders@v2")  # doctest: +SKIP
    >>> orders.to_pandas().head()  # doctest: +SKIP
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    return ws.get_snapshot(ref)


_COMMIT_MARKER = ".commit-"


def utc_second(text: str) -> str:
    """An ISO 8601 time as UTC to the second, the catalog's one format; text that is no such time is kept as is.

    Examples
    --------
    >>> utc_second("2026-12-01T21:11:32.123456+0000"), utc_second("2026-12-01T22:11:32+01:00")
    ('2026-12-01T21:11:32Z', '2026-12-01T21:11:32Z')
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version_of(path: Path) -> int | None:
    return int(path.name[1:]) if path.name[1:].isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one owned by another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (UTF-8) or bytes to ``path`` through a temporary file renamed into place: readers see all of it
    or nothing.

    The file gets the usual permissions (0666 less the umask), not the private ones of a temporary file. This is for
    files aiforge owns; a path the user names goes through :func:`aiforge.workspace.write_output`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=2, default=str))
