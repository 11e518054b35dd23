"""Run records: every training (and later pipeline) run, from its start to its end, in the catalog database.

A run has an id such as ``train-20261202-004512-3f9a`` (kind, UTC start, a random suffix: sortable and unique), a
status (``running`` until :meth:`RunStore.finish` gives it one of ``succeeded``, ``failed``, ``killed``,
``timeout``, ``oom``, ``exported``), the spec it ran, and ``info``: free JSON that the stage fills as it learns
things (code and environment hashes, data versions, resources, the plan, predicted and actual seconds, metrics, the
model it registered). Its folder ``<AIFORGE_HOME>/runs/<id>/`` holds ``job.log``, which stays after a failure.

A run left ``running`` by a process that is gone (killed with SIGKILL, a machine that rebooted) is marked ``killed``
by :meth:`RunStore.mark_abandoned`.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiforge.errors import InvalidInput, NotFound, WorkspaceError
from aiforge.workspace.catalog import Workspace, process_alive
from aiforge.workspace.db import CatalogDB, Cursor, catalog_url

__all__ = ["FINAL_STATUSES", "RunRecord", "RunStore"]

#: The statuses a finished run can have.
FINAL_STATUSES = ("succeeded", "failed", "killed", "timeout", "oom", "exported")
LOG_FILE = "job.log"

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_COLUMNS = "id, kind, name, status, spec, started, ended, exit_code, error, info"


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunRecord:
    """One run as the catalog holds it.

    Attributes
    ----------
    id : str
        ``<kind>-<YYYYmmdd>-<HHMMSS>-<hex>``.
    kind, name : str
        What ran (``train``) and the job's name.
    status : str
        ``running`` or one of :data:`FINAL_STATUSES`.
    spec : dict
        The spec as run.
    started, ended : str
        UTC to the second; ``ended`` is ``None`` while running.
    exit_code : int or None
        The job process's exit code, when there was one.
    error : str or None
        Why it did not succeed.
    info : dict
        Free JSON: hashes, data versions, resources, plan, metrics, model ref, pid and host of the recording process.
    home : Path
        The workspace, for :attr:`dir` and :attr:`log_path`.
    """

    id: str
    kind: str
    name: str
    status: str
    spec: dict[str, Any]
    started: str
    ended: str | None = None
    exit_code: int | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    home: Path = field(default=Path(".aiforge"), repr=False, compare=False)

    @property
    def dir(self) -> Path:
        """``<AIFORGE_HOME>/runs/<id>``."""
        return self.home / "runs" / self.id

    @property
    def log_path(self) -> Path:
        """``<AIFORGE_HOME>/runs/<id>/job.log``."""
        return self.dir / LOG_FILE

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the record, with its folder and log file."""
        return {
            "id": self.id, "kind": self.kind, "name": self.name, "status": self.status, "started": self.started,
            "ended": self.ended, "exit_code": self.exit_code, "error": self.error, "spec": self.spec,
            "info": self.info, "dir": str(self.dir), "log": str(self.log_path),
        }


class RunStore:
    """The run records of a workspace.

    Parameters
    ----------
    workspace : Workspace or path, optional
        Default ``AIFORGE_HOME`` or ``./.aiforge``; run folders go to its ``runs/``.
    catalog : str, optional
        The catalog database URL; default ``AIFORGE_CATALOG``, else the workspace's ``catalog.sqlite``.

    Examples
    --------
    >>> import tempfile
    >>> home = tempfile.mkdtemp()
    >>> runs = RunStore(home, catalog=f"sqlite:///{home}/catalog.sqlite")
    >>> run = runs.start("train", "digits", {"entrypoint": "train.py"}, code_hash="ab12")
    >>> runs.finish(run.id, "succeeded", exit_code=0, metrics={"accuracy": 0.97}).status
    'succeeded'
    >>> runs.get(run.id[:12]).info["metrics"]
    {'accuracy': 0.97}
    """

    def __init__(self, workspace: Workspace | str | os.PathLike[str] | None = None, *,
                 catalog: str | None = None) -> None:
        self.home = workspace.home if isinstance(workspace, Workspace) else Workspace(workspace).home
        self.db = CatalogDB(catalog_url(self.home, catalog))

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r}, catalog={self.db.shown!r})"

    def start(self, kind: str, name: str, spec: dict[str, Any], **info: Any) -> RunRecord:
        """Record a new run as ``running`` and create its folder; return it.

        ``info`` gets ``pid`` and ``host``: the process that records the run and will :meth:`finish` it (this one,
        unless given). :meth:`mark_abandoned` marks the run killed once that process is gone, so keep a job's own
        subprocess under another key (``job_pid``, say): it ends before its run is finished.

        Raises
        ------
        InvalidInput
            ``kind`` is not a lowercase word, ``name`` is empty, or ``spec``/``info`` is not JSON.
        """
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise InvalidInput(f"run kind {kind!r} must be a lowercase word such as 'train' or 'pipeline'")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"run name must be a non-empty string such as 'digits'; got {name!r}")
        info = {"pid": os.getpid(), "host": socket.gethostname(), **info}
        spec_text, info_text = _json(spec, "spec"), _json(info, "info")
        moment = _now()
        with self.db.transaction(write=True) as cur:
            while True:
                run_id = f"{kind}-{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
                if cur.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    break
            row = cur.execute("SELECT MAX(seq) FROM runs").fetchone()
            cur.execute(
                f"INSERT INTO runs (seq, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (((row[0] if row else None) or 0) + 1, run_id, kind, name, "running", spec_text, _stamp(moment),
                 None, None, None, info_text),
            )
            record = RunRecord(run_id, kind, name, "running", json.loads(spec_text), _stamp(moment),
                               info=json.loads(info_text), home=self.home)
            try:
                record.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WorkspaceError(f"cannot create the folder of run {run_id}: {exc.strerror or exc}") from exc
        return record

    def update(self, run_id: str, **info: Any) -> RunRecord:
        """Merge ``info`` into the run's info (a key given again is replaced); return the record."""
        with self.db.transaction(write=True) as cur:
            record = self._get(cur, run_id)
            record.info.update(info)
            cur.execute("UPDATE runs SET info = ? WHERE id = ?", (_json(record.info, "info"), record.id))
        return record

    def finish(self, run_id: str, status: str, *, exit_code: int | None = None, error: str | None = None,
               **info: Any) -> RunRecord:
        """End the run with ``status`` (one of :data:`FINAL_STATUSES`), merging ``info``; return the record.

        Raises
        ------
        InvalidInput
            An unknown status, or the run has already finished.
        NotFound
            No such run.
        """
        if status not in FINAL_STATUSES:
            raise InvalidInput(f"run status {status!r} is not a final status; use one of {', '.join(FINAL_STATUSES)}")
        with self.db.transaction(write=True) as cur:
            record = self._get(cur, run_id)
            if record.status != "running":
                raise InvalidInput(f"run {record.id} already finished ({record.status} at {record.ended})")
            record.info.update(info)
            record.status, record.ended, record.exit_code, record.error = status, _stamp(_now()), exit_code, error
            cur.execute(
                "UPDATE runs SET status = ?, ended = ?, exit_code = ?, error = ?, info = ? WHERE id = ?",
                (status, record.ended, exit_code, error, _json(record.info, "info"), record.id),
            )
        return record

    def get(self, run_id: str) -> RunRecord:
        """The run ``run_id``, or the one run whose id starts with it.

        Raises
        ------
        NotFound
            No run matches (the message names the newest ones).
        InvalidInput
            The prefix matches more than one run.
        """
        with self.db.transaction() as cur:
            return self._get(cur, run_id)

    def list(
        self, kind: str | None = None, name: str | None = None, limit: int | None = None
    ) -> builtins.list[RunRecord]:
        """Runs, newest first, optionally of one kind and/or job name, at most ``limit`` of them."""
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise InvalidInput(f"limit must be a positive integer; got {limit!r}")
        where: builtins.list[str] = []
        args: builtins.list[str] = []
        for column, value in (("kind", kind), ("name", name)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        query = f"SELECT {_COLUMNS} FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY seq DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with self.db.transaction() as cur:
            return [self._record(row) for row in cur.execute(query, args).fetchall()]

    def mark_abandoned(self) -> builtins.list[str]:
        """Mark ``killed`` every run of this host left ``running`` by a process that is gone; return their ids.

        A run's process is ``info["pid"]`` on ``info["host"]``; runs of other hosts (a shared PostgreSQL catalog)
        are left alone, since their processes cannot be seen from here.
        """
        here = socket.gethostname()

        def abandoned(record: RunRecord) -> bool:
            pid = record.info.get("pid")
            return record.info.get("host", here) == here and isinstance(pid, int) and not process_alive(pid)

        if not any(abandoned(r) for r in self._running()):
            return []  # the common case stays a read
        marked: builtins.list[str] = []
        with self.db.transaction(write=True) as cur:
            rows = cur.execute(f"SELECT {_COLUMNS} FROM runs WHERE status = ?", ("running",)).fetchall()
            for record in map(self._record, rows):
                if abandoned(record):
                    error = f"the process that ran it (pid {record.info['pid']}) is gone: killed or the machine stopped"
                    cur.execute("UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ?",
                                ("killed", _stamp(_now()), error, record.id))
                    marked.append(record.id)
        return marked

    # -- helpers --------------------------------------------------------------------------------------------------

    def _running(self) -> builtins.list[RunRecord]:
        with self.db.transaction() as cur:
            rows = cur.execute(f"SELECT {_COLUMNS} FROM runs WHERE status = ?", ("running",)).fetchall()
        return [self._record(row) for row in rows]

    def _get(self, cur: Cursor, run_id: str) -> RunRecord:
        if not isinstance(run_id, str) or not run_id.strip():
            raise InvalidInput(f"run id must be a non-empty string such as 'train-20261202-004512-3f9a'; "
                               f"got {run_id!r}")
        run_id = run_id.strip()
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM runs WHERE substr(id, 1, ?) = ? ORDER BY seq DESC", (len(run_id), run_id)
        ).fetchall()
        exact = [row for row in rows if row[0] == run_id]
        if exact or len(rows) == 1:
            return self._record((exact or rows)[0])
        if rows:
            ids = ", ".join(row[0] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise InvalidInput(f"run id {run_id!r} matches {len(rows)} runs ({ids}); give more of it")
        newest = [row[0] for row in cur.execute("SELECT id FROM runs ORDER BY seq DESC LIMIT 3").fetchall()]
        hint = f"newest runs: {', '.join(newest)}" if newest else "no runs yet; start one with `aiforge train`"
        raise NotFound(f"run {run_id!r} not found in workspace {self.home}; {hint} (see `aiforge runs list`)")

    def _record(self, row: tuple[Any, ...]) -> RunRecord:
        run_id, kind, name, status, spec, started, ended, exit_code, error, info = row
        return RunRecord(run_id, kind, name, status, json.loads(spec), started, ended, exit_code, error,
                         json.loads(info), home=self.home)


def _json(value: Any, what: str) -> str:
    if not isinstance(value, dict):
        raise InvalidInput(f"run {what} must be a dict; got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"run {what} must be JSON: {exc}") from exc

