"""The local engine: run a query where the data lives and stream its result as Arrow record batches.

Each source kind uses an Arrow-native driver, so no row ever becomes a Python object:

==========  ===========================================================================
postgresql  ADBC (libpq ``COPY ... TO STDOUT (FORMAT binary)`` under the hood)
mysql       ConnectorX, ``return_type="arrow_stream"``
sqlite      ADBC, opened read-only
duckdb      DuckDB, opened read-only
files       an in-memory DuckDB where the Parquet/CSV files are the view ``source``
==========  ===========================================================================

Memory stays bounded by the batch size: batches are produced lazily and the caller writes each one out before
asking for the next. Driver errors are translated into :class:`~aiforge.errors.SourceError` (cannot reach or
read the source) or :class:`~aiforge.errors.QueryError` (the source rejected the query), with the password
scrubbed.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pyarrow as pa

from aiforge.engines.sources import Source
from aiforge.errors import InvalidInput, QueryError, SourceError

__all__ = ["BatchStream", "connect_duckdb", "open_stream"]

DEFAULT_BATCH_ROWS = 65_536
_CONNECT_TIMEOUT_S = 5.0
# how drivers word a connection that died while the result was streaming (as opposed to an error in the query)
_LOST = re.compile(
    r"terminating connection|server closed the connection|connection (?:to (?:the )?server )?(?:was )?lost"
    r"|no connection to the server|could not (?:receive|send) data|broken pipe|connection reset|reset by peer"
    r"|Lost connection to (?:MySQL )?server|server has gone away",
    re.I,
)


@dataclass
class BatchStream:
    """The result of a query: its Arrow schema and an iterator over its record batches (consumed once)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]


def open_stream(
    source: Source,
    query: str | None = None,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    temp_dir: str | os.PathLike[str] | None = None,
) -> contextlib.AbstractContextManager[BatchStream]:
    """Run ``query`` against ``source`` and stream its result; the connection closes when the block ends.

    Parameters
    ----------
    source : Source
        From :func:`aiforge.engines.sources.parse_source`; ``spark`` sources need the spark engine.
    query : str, optional
        The SQL to run. Required for databases; for files the data is the view ``source`` and the default is
        ``SELECT * FROM source``.
    batch_rows : int, default 65536
        Rows per record batch where the driver lets us choose (DuckDB, ConnectorX).
    temp_dir : path, optional
        Where DuckDB may spill when a query (a sort, a join) does not fit in memory.

    Returns
    -------
    context manager yielding BatchStream

    Raises
    ------
    InvalidInput
        No query for a database, or a ``spark`` source.
    SourceError
        The source cannot be reached or read.
    QueryError
        The source rejected the query (raised on open, or while iterating for errors found mid-stream).

    Examples
    --------
    >>> import os, tempfile
    >>> import pyarrow.parquet as pq
    >>> from aiforge.engines.sources import parse_source
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    >>> with open_stream(parse_source(path), "SELECT count(*) AS n FROM source") as stream:
    ...     pa.Table.from_batches(list(stream.batches), stream.schema).column("n").to_pylist()
    [3]
    """
    if source.kind == "spark":
        raise InvalidInput("SOURCE 'spark' (the Spark/Hive catalog) needs --engine spark")
    if query is None or not query.strip():
        if source.is_database:
            raise InvalidInput(
                f"a query is required to dump from {source.redacted}; pass --query, for example "
                "--query 'SELECT * FROM my_table'"
            )
        query = "SELECT * FROM source"
    opener: Callable[[Source, str, int, Any], contextlib.AbstractContextManager[BatchStream]] = {
        "postgresql": _postgresql,
        "mysql": _mysql,
        "sqlite": _sqlite,
        "duckdb": _duckdb_file,
        "files": _files,
    }[source.kind]
    return opener(source, query, batch_rows, temp_dir)


# -- helpers -------------------------------------------------------------------------------------------------


def _database_errors(source: Source, query: str) -> Callable[[BaseException], Exception]:
    """How a database driver's error mid-stream maps to ours: a lost connection, or the query's own error."""

    def classify(exc: BaseException) -> Exception:
        message = _message(source, exc)
        if _LOST.search(message):
            return SourceError(f"lost the connection to {source.redacted} while reading: {message}")
        return QueryError(message, query)

    return classify


def _stream(reader: pa.RecordBatchReader, classify: Callable[[BaseException], Exception]) -> BatchStream:
    """Wrap ``reader`` for the writer.

    Driver errors raised mid-stream become aiforge errors, and extension types (PostgreSQL's NUMERIC arrives as
    an opaque extension over strings) become their plain storage type, which any Parquet reader understands.
    """
    schema = reader.schema
    unwrap = any(isinstance(f.type, pa.BaseExtensionType) for f in schema)
    plain = pa.schema(
        [f.with_type(f.type.storage_type) if isinstance(f.type, pa.BaseExtensionType) else f for f in schema],
        metadata=schema.metadata,
    )

    def batches() -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as exc:
                raise classify(exc) from exc
            if unwrap:
                columns = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in batch.columns]
                batch = pa.RecordBatch.from_arrays(columns, schema=plain)
            yield batch

    return BatchStream(plain, batches())


def _message(source: Source, exc: BaseException) -> str:
    """The driver's message on one line, without the password, the echoed query or a caret diagram."""
    text = source.scrub(str(exc)).strip()
    text = re.split(r"\n\s*(?:Query was:|query:)", text, maxsplit=1)[0]  # we print the query ourselves
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not re.match(r"^(LINE \d+:|\^+$)", line)]
    return " ".join(lines) or type(exc).__name__


def _unreachable(source: Source, exc: BaseException | str) -> SourceError:
    detail = exc if isinstance(exc, str) else _message(source, exc)
    return SourceError(
        f"cannot connect to {source.redacted}: {detail}; check that the server runs and that the host, port, "
        "database, user and password are right"
    )


def _probe(source: Source, default_port: int) -> None:
    """Fail fast with a clear message when nothing listens (some drivers retry for tens of seconds)."""
    parts = urlsplit(source.url)
    host, port = parts.hostname or "localhost", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise _unreachable(source, f"{host}:{port}: {exc.strerror or exc}") from exc


# -- PostgreSQL and SQLite through ADBC ----------------------------------------------------------------------


@contextlib.contextmanager
def _adbc(source: Source, query: str, connect: Callable[[], Any]) -> Iterator[BatchStream]:
    import adbc_driver_manager

    classify = _database_errors(source, query)

    try:
        conn = connect()
    except adbc_driver_manager.Error as exc:
        raise _unreachable(source, exc) from exc
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(query)
            reader = cursor.fetch_record_batch()
        except adbc_driver_manager.Error as exc:
            raise classify(exc) from exc
        yield _stream(reader, classify)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _postgresql(
    source: Source, query: str, batch_rows: int, temp_dir: Any
) -> contextlib.AbstractContextManager[BatchStream]:
    import adbc_driver_postgresql.dbapi

    url = "postgresql://" + source.url.split("://", 1)[1]  # libpq also takes postgres://; be explicit
    if "connect_timeout=" not in url:  # libpq waits forever on a host that drops packets
        url += ("&" if "?" in url else "?") + f"connect_timeout={int(_CONNECT_TIMEOUT_S * 2)}"
    return _adbc(source, query, lambda: adbc_driver_postgresql.dbapi.connect(url))


def _sqlite(
    source: Source, query: str, batch_rows: int, temp_dir: Any
) -> contextlib.AbstractContextManager[BatchStream]:
    import adbc_driver_sqlite.dbapi

    path = os.path.abspath(source.paths[0])
    if not os.path.isfile(path):
        raise SourceError(
            f"SQLite database file not found: {path} (from {source.redacted}); use sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    uri = f"file:{quote(path)}?mode=ro"  # read-only: a dump never changes its source
    return _adbc(source, query, lambda: adbc_driver_sqlite.dbapi.connect(uri))


# -- MySQL through ConnectorX --------------------------------------------------------------------------------


@contextlib.contextmanager
def _mysql(source: Source, query: str, batch_rows: int, temp_dir: Any) -> Iterator[BatchStream]:
    import connectorx

    _probe(source, 3306)
    try:
        reader = connectorx.read_sql(source.url, query, return_type="arrow_stream", batch_size=batch_rows)
    except Exception as exc:  # ConnectorX raises RuntimeError for everything; tell the two cases apart
        message = _message(source, exc)
        if "waiting for connection" in message or "Access denied" in message:
            raise _unreachable(source, exc) from exc
        raise QueryError(re.sub(r"^MySqlError \{ (.*) \}$", r"\1", message), query) from exc

    classify = _database_errors(source, query)

    try:
        yield _stream(reader, classify)
    finally:
        with contextlib.suppress(Exception):
            reader.close()


# -- DuckDB files and Parquet/CSV through DuckDB -------------------------------------------------------------


def _duckdb_stream(source: Source, con: Any, query: str, batch_rows: int) -> BatchStream:
    import duckdb

    def classify(exc: BaseException) -> Exception:
        if isinstance(exc, duckdb.IOException):
            return SourceError(f"cannot read {source.redacted}: {_message(source, exc)}")
        return QueryError(_message(source, exc), query)

    try:
        reader = con.sql(query).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        raise classify(exc) from exc
    return _stream(reader, classify)


def connect_duckdb(
    path: str = ":memory:", *, read_only: bool = False, memory_limit: str | None = None, temp_dir: Any = None
) -> Any:
    """A DuckDB connection set up the way every part of aiforge needs it: the one place that calls duckdb.connect.

    Parquet statistics do not record NaN, and DuckDB 2.0 folds ``isnan(x)`` (and filters on it) to false from
    them, silently losing rows; with ``filter_pushdown`` and ``statistics_propagation`` off it reads the values.
    Row-group skipping on selective filters is the price.

    Parameters
    ----------
    path : str, default ':memory:'
        A DuckDB database file, or in-memory.
    read_only : bool, default False
    memory_limit : str, optional
        DuckDB's ``memory_limit`` (for example ``'512MB'``); beyond it DuckDB spills to ``temp_dir``.
    temp_dir : path, optional
        Where DuckDB spills.

    Examples
    --------
    >>> connect_duckdb().execute("SELECT isnan('nan'::DOUBLE)").fetchone()
    (True,)
    """
    import duckdb

    con = duckdb.connect(path, read_only=read_only)
    con.execute("SET disabled_optimizers = 'filter_pushdown,statistics_propagation'")
    if memory_limit is not None:
        con.execute(f"SET memory_limit = '{_sql_string(memory_limit)}'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{_sql_string(str(temp_dir))}'")
    return con


def _configure(con: Any, temp_dir: Any) -> None:
    con.execute("SET threads = 2")
    con.execute("SET memory_limit = '512MB'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{_sql_string(str(temp_dir))}'")


@contextlib.contextmanager
def _duckdb_file(source: Source, query: str, batch_rows: int, temp_dir: Any) -> Iterator[BatchStream]:
    import duckdb

    path = os.path.abspath(source.paths[0])
    if not os.path.isfile(path):
        raise SourceError(
            f"DuckDB database file not found: {path} (from {source.redacted}); "
            "use duckdb:///relative.duckdb or duckdb:////absolute/path.duckdb"
        )
    try:
        con = connect_duckdb(path, read_only=True)
    except duckdb.Error as exc:
        raise SourceError(f"cannot open DuckDB database {path}: {_message(source, exc)}") from exc
    try:
        _configure(con, temp_dir)
        yield _duckdb_stream(source, con, query, batch_rows)
    finally:
        con.close()


@contextlib.contextmanager
def _files(source: Source, query: str, batch_rows: int, temp_dir: Any) -> Iterator[BatchStream]:
    import duckdb

    con = connect_duckdb()
    try:
        _configure(con, temp_dir)
        files = ", ".join(f"'{_sql_string(p)}'" for p in source.paths)
        reader = "read_parquet" if source.format == "parquet" else "read_csv"
        try:  # binding the view reads every file's header, so a bad file fails here, not mid-dump
            con.execute(f"CREATE VIEW source AS SELECT * FROM {reader}([{files}])")
        except duckdb.Error as exc:
            raise SourceError(
                f"cannot read {source.format} file(s) {source.redacted}: {_message(source, exc)}; "
                "check that the files are readable and really are " + str(source.format)
            ) from exc
        yield _duckdb_stream(source, con, query, batch_rows)
    finally:
        con.close()


def _sql_string(text: str) -> str:
    return text.replace("'", "''")
