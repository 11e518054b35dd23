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
asking for the next. Before the first row, :func:`aiforge.engines.columns.plan_columns` decides how each column is
stored and refuses duplicate names and types a snapshot cannot hold. Driver errors are translated into
:class:`~aiforge.errors.SourceError` (cannot reach or read the source) or :class:`~aiforge.errors.QueryError` (the
source rejected the query), with the password scrubbed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from aiforge.engines._duckdb import connect_duckdb, sql_string
from aiforge.engines._mysql import connectorx_module, open_mysql
from aiforge.engines._stream import CONNECT_TIMEOUT_S, BatchStream, database_errors, message, stream, unreachable
from aiforge.engines.columns import plan_columns, postgres_rules, unnamed_oids
from aiforge.engines.csv_reader import Ragged, check_ragged, register_csv
from aiforge.engines.sources import Source
from aiforge.errors import InvalidInput, QueryError, SourceError

__all__ = ["BatchStream", "connect_duckdb", "connectorx_module", "open_stream"]

DEFAULT_BATCH_ROWS = 65_536


def open_stream(
    source: Source,
    query: str | None = None,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    temp_dir: str | os.PathLike[str] | None = None,
    ragged_csv: Ragged = "error",
    numeric_as_float: frozenset[str] = frozenset(),
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
    ragged_csv : {'error', 'pad', 'skip'}, default 'error'
        For CSV files, what to do with a line whose field count differs from the header (see
        :mod:`aiforge.engines.csv_reader`).
    numeric_as_float : frozenset of str
        PostgreSQL ``numeric(p,s)`` columns to store as float64 rather than ``decimal128(p, s)``: those that hold
        a NaN (a batch with one raises :class:`~aiforge.engines.columns.NaNInDecimal`; the caller starts again).

    Returns
    -------
    context manager yielding BatchStream

    Raises
    ------
    InvalidInput
        No query for a database, or a ``spark`` source.
    SourceError
        The source cannot be reached or read, or a CSV line does not match its header (after the last batch).
    QueryError
        The source rejected the query (raised on open, or while iterating for errors found mid-stream); or the
        result has duplicate column names or a column type a snapshot cannot store (raised on open).

    Examples
    --------
    >>> import os, tempfile
    >>> import pyarrow as pa
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
    check_ragged(ragged_csv, source.format, source.redacted)
    if source.kind == "files":
        return _files(source, query, batch_rows, temp_dir, ragged_csv)
    if source.kind == "postgresql":
        return _postgresql(source, query, batch_rows, temp_dir, numeric_as_float)
    opener: Callable[[Source, str, int, Any], contextlib.AbstractContextManager[BatchStream]] = {
        "mysql": open_mysql,
        "sqlite": _sqlite,
        "duckdb": _duckdb_file,
    }[source.kind]
    return opener(source, query, batch_rows, temp_dir)


# -- helpers -------------------------------------------------------------------------------------------------


# -- PostgreSQL and SQLite through ADBC ----------------------------------------------------------------------


@contextlib.contextmanager
def _adbc(
    source: Source, query: str, connect: Callable[[], Any], numeric_as_float: frozenset[str] = frozenset()
) -> Iterator[BatchStream]:
    import adbc_driver_manager

    classify = database_errors(source, query)
    postgres = source.kind == "postgresql"

    try:
        conn = connect()
    except adbc_driver_manager.Error as exc:
        raise unreachable(source, exc) from exc
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(query)
            reader = cursor.fetch_record_batch()
        except adbc_driver_manager.Error as exc:
            raise classify(exc) from exc
        if postgres:
            names = _postgres_type_names(connect, unnamed_oids(reader.schema))
            rules = postgres_rules(names, numeric_as_float)
            plan = plan_columns(reader.schema, query, hint=lambda n: f"{n}::text", extra=rules)
        else:
            plan = plan_columns(reader.schema, query, hint=lambda n: f"CAST({n} AS TEXT)")
        yield stream(reader, classify, plan)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _postgres_type_names(connect: Callable[[], Any], oids: list[int]) -> dict[int, str]:
    """Names of types the driver could not name (it reads only built-in ones), on a second connection: the
    first one is busy streaming. Only asked when a result has such a column, to name it in the error."""
    if not oids:
        return {}
    try:
        conn = connect()
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT oid::int8, format_type(oid, NULL) FROM pg_type WHERE oid = ANY($1::oid[])",
                           parameters=(oids,))  # fmt: skip
            return {int(oid): str(name) for oid, name in cursor.fetchall()}
        finally:
            conn.close()
    except Exception:  # only the error message loses the name; the error itself is still raised
        return {}


def _postgresql(
    source: Source, query: str, batch_rows: int, temp_dir: Any, numeric_as_float: frozenset[str] = frozenset()
) -> contextlib.AbstractContextManager[BatchStream]:
    import adbc_driver_postgresql.dbapi

    url = "postgresql://" + source.url.split("://", 1)[1]  # libpq also takes postgres://; be explicit
    if "connect_timeout=" not in url:  # libpq waits forever on a host that drops packets
        url += ("&" if "?" in url else "?") + f"connect_timeout={int(CONNECT_TIMEOUT_S * 2)}"
    return _adbc(source, query, lambda: adbc_driver_postgresql.dbapi.connect(url), numeric_as_float)


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


# -- DuckDB files and Parquet/CSV through DuckDB -------------------------------------------------------------


def _duckdb_stream(
    source: Source, con: Any, query: str, batch_rows: int, finish: Callable[[], None] | None = None
) -> BatchStream:
    import duckdb

    def classify(exc: BaseException) -> Exception:
        if isinstance(exc, duckdb.IOException):
            return SourceError(f"cannot read {source.redacted}: {message(source, exc)}")
        return QueryError(message(source, exc), query)

    try:
        reader = con.sql(query).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        raise classify(exc) from exc
    plan = plan_columns(reader.schema, query, hint=lambda n: f"CAST({n} AS VARCHAR)")
    return stream(reader, classify, plan, finish)


def _configure(con: Any, temp_dir: Any) -> None:
    con.execute("SET threads = 2")
    con.execute("SET memory_limit = '512MB'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{sql_string(str(temp_dir))}'")


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
        raise SourceError(f"cannot open DuckDB database {path}: {message(source, exc)}") from exc
    try:
        _configure(con, temp_dir)
        yield _duckdb_stream(source, con, query, batch_rows)
    finally:
        con.close()


@contextlib.contextmanager
def _files(source: Source, query: str, batch_rows: int, temp_dir: Any, ragged: Ragged) -> Iterator[BatchStream]:
    import duckdb

    con = connect_duckdb()
    try:
        _configure(con, temp_dir)
        files = ", ".join(f"'{sql_string(p)}'" for p in source.paths)
        finish = None
        try:  # binding the view reads every file's header, so a bad file fails here, not mid-dump
            if source.format == "csv":
                finish = register_csv(con, source.paths, ragged=ragged, label=source.redacted)
            else:
                con.execute(f"CREATE VIEW source AS SELECT * FROM read_parquet([{files}])")
        except duckdb.Error as exc:
            raise SourceError(
                f"cannot read {source.format} file(s) {source.redacted}: {message(source, exc)}; "
                "check that the files are readable and really are " + str(source.format)
            ) from exc
        yield _duckdb_stream(source, con, query, batch_rows, finish)
    finally:
        con.close()
