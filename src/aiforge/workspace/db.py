"""The catalog database of the model registry and the run records: SQLite by default, PostgreSQL for a team.

:class:`CatalogDB` is deliberately tiny: one :meth:`~CatalogDB.transaction` that yields a cursor-like object whose
``execute(sql, params)`` takes ``?`` placeholders on both backends. Write transactions are serialised, so a reader of
``MAX(version)`` inside one can add the next version without a race:

- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at the start (waiting up to 30 s for another writer);
- PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``) that every aiforge writer takes first,
  released by the commit or rollback; primary keys stay as the last line of defence.

The tables (``models``, ``model_aliases``, ``model_alias_history``, ``runs``) are created on first use with portable
types. In the default SQLite file they sit beside the snapshot catalog's ``snapshots`` and ``reports``, untouched.
A URL's password never appears in a message: :func:`mask_url` removes it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from aiforge.errors import InvalidInput, WorkspaceError

__all__ = ["CATALOG_ENV", "CatalogDB", "Cursor", "catalog_url", "mask_url"]

#: The environment variable naming the catalog database (``postgresql://user@host/db``, or ``sqlite:///path``).
CATALOG_ENV = "AIFORGE_CATALOG"

# One constant key for the advisory lock every aiforge writer takes on PostgreSQL (a 64-bit signed integer).
_PG_LOCK_KEY = 0x41_49_46_4F_52_47_45  # "AIFORGE"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS models (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        path TEXT NOT NULL,
        created TEXT NOT NULL,
        run_id TEXT,
        lineage TEXT NOT NULL,
        metrics TEXT NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE IF NOT EXISTS model_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (name, alias)
    )""",
    """CREATE TABLE IF NOT EXISTS model_alias_history (
        name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER,
        previous INTEGER,
        at TEXT NOT NULL,
        PRIMARY KEY (name, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        spec TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        exit_code INTEGER,
        error TEXT,
        info TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_seq ON runs (seq)",
)

_ready: set[str] = set()  # catalogs whose tables this process has created (or found)
_ready_lock = threading.Lock()


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages.

    Examples
    --------
    >>> mask_url("postgresql://ana:s3cret@db:5432/registry")
    'postgresql://ana:***@db:5432/registry'
    >>> mask_url("sqlite:////tmp/catalog.sqlite")
    'sqlite:////tmp/catalog.sqlite'
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://(unreadable URL)" if sep else "(unreadable URL)"
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit((parts.scheme, f"{name}:***@{host}", parts.path, parts.query, parts.fragment))


def catalog_url(home: str | os.PathLike[str], catalog: str | None = None) -> str:
    """The catalog database to use: ``catalog``, else ``AIFORGE_CATALOG``, else the workspace's SQLite file.

    Parameters
    ----------
    home : path
        The workspace folder (``AIFORGE_HOME``); its ``catalog.sqlite`` is the default.
    catalog : str, optional
        A database URL that wins over the environment.
    """
    chosen = catalog or os.environ.get(CATALOG_ENV) or ""
    if chosen:
        return chosen
    return f"sqlite:///{Path(home).absolute() / 'catalog.sqlite'}"


class Cursor:
    """What a transaction yields: ``execute(sql, params)`` with ``?`` placeholders, then ``fetchone``/``fetchall``."""

    def __init__(self, raw: Any, postgres: bool) -> None:
        self._raw = raw
        self._postgres = postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement; ``?`` marks each parameter on every backend."""
        if self._postgres:
            sql = sql.replace("%", "%%").replace("?", "%s")
        self._raw.execute(sql, tuple(params))
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._raw.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._raw.fetchall()]


class CatalogDB:
    """A connection factory for the catalog database at ``url`` (``sqlite:///path`` or ``postgresql://...``).

    Constructing one connects to nothing; each :meth:`transaction` opens a connection and closes it.

    Parameters
    ----------
    url : str
        ``sqlite:///<absolute path>`` (``sqlite:///relative`` is relative to the current folder), or
        ``postgresql://user[:password]@host[:port]/database`` (also ``postgres://``), which needs psycopg 3.

    Raises
    ------
    InvalidInput
        The URL is neither.

    Examples
    --------
    >>> import tempfile
    >>> db = CatalogDB(f"sqlite:///{tempfile.mkdtemp()}/catalog.sqlite")
    >>> with db.transaction(write=True) as cur:
    ...     _ = cur.execute("INSERT INTO model_aliases VALUES (?, ?, ?, ?)", ("m", "prod", 1, "2026-01-01T00:00:00Z"))
    >>> with db.transaction() as cur:
    ...     cur.execute("SELECT alias, version FROM model_aliases").fetchall()
    [('prod', 1)]
    """

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise InvalidInput(f"catalog URL must be a string such as 'sqlite:///path'; got {url!r}")
        scheme = url.partition("://")[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise InvalidInput(
                f"catalog {mask_url(url)!r} is not a catalog URL; use sqlite:///path/catalog.sqlite or "
                f"postgresql://user@host:5432/database (set {CATALOG_ENV} or pass catalog=)"
            )
        self.url = url
        self.postgres = scheme != "sqlite"
        self.path = None if self.postgres else Path(url.partition("://")[2][1:] or "catalog.sqlite")

    def __repr__(self) -> str:
        return f"CatalogDB({mask_url(self.url)!r})"

    @property
    def shown(self) -> str:
        """The URL with its password masked: what messages say."""
        return mask_url(self.url)

    @contextlib.contextmanager
    def transaction(self, write: bool = False) -> Iterator[Cursor]:
        """One transaction: committed when the block ends, rolled back when it raises.

        Parameters
        ----------
        write : bool
            Serialise with every other writer of this catalog (see the module's docstring); reads never wait.

        Raises
        ------
        WorkspaceError
            The database cannot be opened or a statement fails (the message names the catalog, never its password).
        """
        opener = self._postgres if self.postgres else self._sqlite
        with opener(write) as cursor:
            yield cursor

    # -- backends -------------------------------------------------------------------------------------------------

    def _error(self, exc: BaseException) -> WorkspaceError:
        text = str(exc).strip() or type(exc).__name__
        password = urlsplit(self.url).password if self.postgres else None
        if password:
            for secret in {password, unquote(password), quote(unquote(password), safe="")}:
                text = text.replace(secret, "***")
        return WorkspaceError(f"catalog {self.shown} failed: {text}")

    @contextlib.contextmanager
    def _sqlite(self, write: bool) -> Iterator[Cursor]:
        path = self.path or Path("catalog.sqlite")  # always set for SQLite; this only tells mypy so
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from exc
        try:
            key = f"{self.url}#{path.stat().st_ino}"  # a deleted and recreated file starts over
            if key not in _ready:
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("COMMIT")
                with _ready_lock:
                    _ready.add(key)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Cursor(conn.cursor(), postgres=False)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the body's own errors (a failed file copy, say) pass through as they are
            raise self._error(exc) from exc
        finally:
            conn.close()

    @contextlib.contextmanager
    def _postgres(self, write: bool) -> Iterator[Cursor]:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is in the dev extra
            raise WorkspaceError(
                f"catalog {self.shown} is PostgreSQL, which needs psycopg 3: pip install 'psycopg[binary]'"
            ) from exc
        url = "postgresql" + self.url[self.url.index("://"):]
        try:
            conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            raise self._error(exc) from None  # the driver's message is cleaned here; its exception could carry more
        try:
            with conn.cursor() as raw:
                cursor = Cursor(raw, postgres=True)
                if self.url not in _ready:
                    with conn.transaction():  # concurrent CREATE TABLE IF NOT EXISTS can collide: serialise them
                        cursor.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_KEY,))
                        for statement in _SCHEMA:
                            cursor.execute(statement)
                    with _ready_lock:
                        _ready.add(self.url)
                with conn.transaction():
                    if write:
                        cursor.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_KEY,))
                    yield cursor
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        finally:
            conn.close()
