"""MySQL/MariaDB through ConnectorX, with what it cannot do itself done first.

ConnectorX reads a result as Arrow batches, but a wrong password costs 30 seconds of pool retries, and some
types make it panic or lose digits without saying which column. Before it runs, PyMySQL logs in with a short
timeout and describes the query without reading a row (``SELECT * FROM (query) AS aiforge_q LIMIT 0``): a login
that retrying cannot fix is an error at once, and the columns ConnectorX cannot read (GEOMETRY, DECIMAL with more
than 10 decimal places) are refused by name. What can only be seen in the values (a TIME beyond 24 hours, a DECIMAL
of more than 28 digits) makes it panic mid-stream; the panic becomes an error that names the column.

The look never decides that a dump cannot go ahead unless the server said so: what it cannot tell (TLS or a socket
asked for in the URL, a login PyMySQL cannot complete, a query the wrapping does not fit) leaves the decision to
ConnectorX, as before.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa
import pymysql
from pymysql.constants import CR, FIELD_TYPE, FLAG

from aiforge.engines._stream import (
    CONNECT_TIMEOUT_S,
    BatchStream,
    database_errors,
    is_panic,
    message,
    stream,
    unreachable,
)
from aiforge.engines.columns import Convert, Unsupported, check_unique_names, plan_columns, refuse
from aiforge.engines.sources import Source
from aiforge.errors import QueryError

__all__ = ["DEFINITE", "Column", "connectorx_module", "open_mysql", "panic_error", "rules", "unsupported"]

_CONNECTORX_LOCK = threading.Lock()


def connectorx_module() -> ModuleType:
    """Import ConnectorX with its Rust log off, unless ``RUST_LOG`` says otherwise.

    Its connection pool logs every failed login attempt straight to the terminal (seven lines for a wrong
    password), and the logger reads ``RUST_LOG`` once, when the module loads. aiforge reports the error itself.
    """
    with _CONNECTORX_LOCK:
        if "RUST_LOG" in os.environ:
            import connectorx

            return connectorx
        os.environ["RUST_LOG"] = "off"
        try:
            import connectorx
        finally:
            del os.environ["RUST_LOG"]
        return connectorx


@contextlib.contextmanager
def open_mysql(source: Source, query: str, batch_rows: int, temp_dir: Any) -> Iterator[BatchStream]:
    columns = _describe_mysql(source, query)
    if columns is not None:  # refused before the driver runs: it panics on some of these
        check_unique_names([c.name for c in columns], query)
        refused = unsupported(columns)
        if refused:
            raise refuse(refused, query)
    connectorx = connectorx_module()
    try:
        reader = connectorx.read_sql(source.url, query, return_type="arrow_stream", batch_size=batch_rows)
    except BaseException as exc:  # ConnectorX raises RuntimeError for everything; tell the cases apart
        if is_panic(exc):
            raise panic_error(exc, columns, query) from exc
        if not isinstance(exc, Exception):
            raise
        text = message(source, exc)
        if "waiting for connection" in text or "Access denied" in text:
            raise unreachable(source, exc) from exc
        raise QueryError(re.sub(r"^MySqlError \{ (.*) \}$", r"\1", text), query) from exc

    lost = database_errors(source, query)

    def classify(exc: BaseException) -> Exception:
        return panic_error(exc, columns, query) if is_panic(exc) else lost(exc)

    try:
        plan = plan_columns(reader.schema, query, hint=lambda n: f"CAST({n} AS CHAR)", extra=rules(columns))
        yield stream(reader, classify, plan)
    finally:
        with contextlib.suppress(Exception):
            reader.close()


#: server error codes at login that retrying cannot change: bad password, no such database, host not allowed
DEFINITE = {1044, 1045, 1049, 1129, 1130, 1698}
#: server error codes for the query that wrapping it in ``SELECT * FROM (...)`` cannot cause: no such table,
#: column, database or function, no database chosen, an ambiguous column, access denied. Any other refusal of the
#: wrapped query (a syntax it does not fit, duplicate column names) leaves the query to ConnectorX.
_QUERY_ERRORS = {1044, 1046, 1049, 1052, 1054, 1109, 1142, 1143, 1146, 1305}
_LINK_LOST = {CR.CR_CONN_HOST_ERROR, CR.CR_SERVER_GONE_ERROR, CR.CR_SERVER_LOST}
_TYPES = {
    FIELD_TYPE.DECIMAL: "DECIMAL", FIELD_TYPE.NEWDECIMAL: "DECIMAL", FIELD_TYPE.TINY: "TINYINT",
    FIELD_TYPE.SHORT: "SMALLINT", FIELD_TYPE.INT24: "MEDIUMINT", FIELD_TYPE.LONG: "INT", FIELD_TYPE.LONGLONG: "BIGINT",
    FIELD_TYPE.FLOAT: "FLOAT", FIELD_TYPE.DOUBLE: "DOUBLE", FIELD_TYPE.NULL: "NULL", FIELD_TYPE.TIMESTAMP: "TIMESTAMP",
    FIELD_TYPE.DATE: "DATE", FIELD_TYPE.NEWDATE: "DATE", FIELD_TYPE.TIME: "TIME", FIELD_TYPE.DATETIME: "DATETIME",
    FIELD_TYPE.YEAR: "YEAR", FIELD_TYPE.VARCHAR: "VARCHAR", FIELD_TYPE.VAR_STRING: "VARCHAR",
    FIELD_TYPE.STRING: "CHAR", FIELD_TYPE.BIT: "BIT", FIELD_TYPE.JSON: "JSON", FIELD_TYPE.ENUM: "ENUM",
    FIELD_TYPE.SET: "SET", FIELD_TYPE.TINY_BLOB: "TINYBLOB", FIELD_TYPE.MEDIUM_BLOB: "MEDIUMBLOB",
    FIELD_TYPE.LONG_BLOB: "LONGBLOB", FIELD_TYPE.BLOB: "BLOB", FIELD_TYPE.GEOMETRY: "GEOMETRY",
}  # fmt: skip
_DECIMALS = (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL)


@dataclass(frozen=True)
class Column:
    """One column of the query's result, as the server describes it."""

    name: str
    type_code: int  #: PyMySQL's ``FIELD_TYPE``
    length: int
    decimals: int
    flags: int

    @property
    def type_name(self) -> str:
        """``DECIMAL(10,2)``, ``TIME``, ``GEOMETRY``...: the type as a user would write it."""
        name = _TYPES.get(self.type_code, f"type {self.type_code}")
        if name == "DECIMAL":
            return f"DECIMAL({self.precision},{self.decimals})"
        return name

    @property
    def precision(self) -> int:
        """Digits of a DECIMAL (the server sends its display length: digits, sign and point)."""
        return self.length - (1 if self.decimals else 0) - (0 if self.flags & FLAG.UNSIGNED else 1)


class _Undecidable(Exception):
    """The look cannot tell; ConnectorX decides."""


class _NoClearText:
    """Refuse the logins that send the password as it is (``mysql_clear_password``, MariaDB's ``dialog``): PyMySQL
    answers them over a plain connection, the driver does not unless told to."""

    def __init__(self, connection: object) -> None:
        del connection

    def authenticate(self, packet: object) -> NoReturn:
        raise _Undecidable


def _error(exc: BaseException) -> tuple[int | None, str]:
    """PyMySQL's error as (code, text); the code is None when PyMySQL raised without one."""
    args = exc.args
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return None, str(exc)


def _describe_mysql(source: Source, query: str) -> list[Column] | None:
    """Log in and describe the result in a few seconds; a refusal that retrying cannot change is an error now,
    not after the driver's 30 s of retries. None when this cannot tell."""
    parts = urlsplit(source.url)
    host, port = parts.hostname or "localhost", parts.port or 3306
    options = {k.lower() for k, _ in parse_qsl(parts.query)}
    try:
        if any(word in key for key in options for word in ("ssl", "tls", "socket")) or not parts.username:
            # TLS, a socket or the default user: the driver's choices, not PyMySQL's. Only check that the host answers
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                return None
        conn = pymysql.connect(
            host=host,
            port=port,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.lstrip("/")) or None,
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=CONNECT_TIMEOUT_S,
            write_timeout=CONNECT_TIMEOUT_S,
            auth_plugin_map={"mysql_clear_password": _NoClearText, "dialog": _NoClearText},
        )
    except OSError as exc:
        raise unreachable(source, f"{host}:{port}: {exc.strerror or exc}") from exc
    except pymysql.MySQLError as exc:
        code, text = _error(exc)
        if code in DEFINITE:
            raise unreachable(source, source.scrub(text)) from exc
        if code in _LINK_LOST:  # refused, timed out or closed: nothing that speaks MySQL answers there
            cause = getattr(exc, "original_exception", None) or exc.__context__
            detail = (cause.strerror or cause) if isinstance(cause, OSError) else "the server closed the connection"
            raise unreachable(source, f"{host}:{port}: {detail}") from exc
        return None
    except Exception:  # a login PyMySQL cannot complete (another plugin, a missing package): the driver's to decide
        return None
    try:
        return _columns(conn, source, query)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _columns(conn: Any, source: Source, query: str) -> list[Column] | None:
    """The result's columns, from the server's description of ``SELECT * FROM (query) LIMIT 0``: it plans the query
    and sends the columns, but reads no row. None when the wrapping does not fit the query."""
    wrapped = f"* FROM (\n{query.rstrip().rstrip(';')}\n) AS aiforge_q LIMIT 0"
    # a constant subquery is evaluated while planning: the server stops it when this look gives up waiting
    if "MariaDB" in conn.get_server_info():
        wrapped = f"SET STATEMENT max_statement_time={CONNECT_TIMEOUT_S:g} FOR SELECT {wrapped}"
    else:
        wrapped = f"SELECT /*+ MAX_EXECUTION_TIME({CONNECT_TIMEOUT_S * 1000:.0f}) */ {wrapped}"
    cursor = conn.cursor()
    try:
        cursor.execute(wrapped)
    except pymysql.MySQLError as exc:
        code, text = _error(exc)
        if code in _QUERY_ERRORS:
            raise QueryError(source.scrub(text), query) from exc
        return None  # a syntax the wrapping does not fit, duplicate names, a timeout: ConnectorX runs the query
    except Exception:
        return None
    fields = getattr(getattr(cursor, "_result", None), "fields", None)  # the flags (UNSIGNED): not in .description
    if not cursor.description or not fields or len(fields) != len(cursor.description):
        return None
    return [
        Column(name, type_code, size or 0, scale or 0, field.flags)
        for (name, type_code, _, size, _, scale, _), field in zip(cursor.description, fields, strict=True)
    ]


# -- what the described columns mean for a snapshot ----------------------------------------------------------

_MAX_DIGITS, _MAX_SCALE = 28, 10  # ConnectorX reads DECIMAL through rust_decimal: 28 digits, 10 kept decimals


def unsupported(columns: list[Column]) -> list[Unsupported]:
    """The columns ConnectorX cannot read faithfully whatever their values: refused before it runs."""
    refused = []
    for c in columns:
        if c.type_code == FIELD_TYPE.GEOMETRY:
            refused.append(Unsupported(c.name, "MySQL type GEOMETRY", "the MySQL driver cannot read",
                                       f"ST_AsText({c.name})"))  # fmt: skip
        elif c.type_code in _DECIMALS and c.decimals > _MAX_SCALE:
            refused.append(Unsupported(c.name, f"MySQL type {c.type_name}",
                                       f"has more decimal places than the {_MAX_SCALE} the MySQL driver keeps",
                                       f"CAST({c.name} AS CHAR)"))  # fmt: skip
    return refused


def rules(columns: list[Column] | None) -> Callable[[pa.Field], Convert | Unsupported | None] | None:
    """Conversions for :func:`~aiforge.engines.columns.plan_columns` from the described columns.

    DECIMAL arrives as ``decimal128(38, 10)`` whatever its declaration: it becomes ``decimal128(p, s)`` as
    declared. BIT arrives as big-endian bytes: it becomes the unsigned number it stands for.
    """
    if not columns:
        return None
    by_name = {c.name: c for c in columns}

    def rule(f: pa.Field) -> Convert | Unsupported | None:
        c = by_name.get(f.name)
        if c is None:
            return None
        if c.type_code in _DECIMALS and pa.types.is_decimal(f.type):
            target = pa.decimal128(max(1, min(c.precision, 38)), c.decimals)
            return lambda array: array.cast(target)
        if c.type_code == FIELD_TYPE.BIT and (pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)):
            return _bits_to_uint64
        return None

    return rule


def _bits_to_uint64(array: pa.Array) -> pa.Array:
    return pa.array([None if v is None else int.from_bytes(v, "big") for v in array.to_pylist()], pa.uint64())


def panic_error(exc: BaseException, columns: list[Column] | None, query: str) -> QueryError:
    """What a panic in ConnectorX means for the user: which column held a value it cannot read, and the fix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    value = re.search(r"value `\w+\(\"?'?(.*?)'?\"?\)`", text)
    if "NaiveTime" in text:
        suspects = [c for c in columns or [] if c.type_code == FIELD_TYPE.TIME]
        shown = f"holds {_time_text(value[1])!r}" if value else "holds a value"
        return _blame(suspects, "TIME", f"{shown}, outside the 00:00:00-23:59:59 that the MySQL driver reads",
                      lambda n: f"TIME_TO_SEC({n})", text, query)  # fmt: skip
    if "rust_decimal" in text or "Decimal" in text:
        suspects = [c for c in columns or [] if c.type_code in _DECIMALS and c.precision > _MAX_DIGITS]
        suspects = suspects or [c for c in columns or [] if c.type_code in _DECIMALS]
        return _blame(suspects, "DECIMAL",
                      f"holds a value of more than {_MAX_DIGITS} digits, which the MySQL driver cannot read",
                      lambda n: f"CAST({n} AS CHAR)", text, query)  # fmt: skip
    return QueryError(f"the MySQL driver failed: {text}", query)


def _time_text(raw: str) -> str:
    """The driver shows TIME with three-digit hours (``-012:34:56.789000``); MySQL prints ``-12:34:56.789000``."""
    match = re.fullmatch(r"(-?)0*(\d{2,}|\d)(:.*)", raw)
    return f"{match[1]}{match[2].zfill(2)}{match[3]}" if match else raw


def _blame(
    suspects: list[Column], kind: str, what: str, fix: Callable[[str], str], text: str, query: str
) -> QueryError:
    if len(suspects) == 1:
        c = suspects[0]
        return QueryError(
            f"column {c.name!r} (MySQL type {c.type_name}) {what}; convert it in the query, for example "
            f"{fix(c.name)}",
            query,
        )
    names = ", ".join(repr(c.name) for c in suspects) or "of the result"
    example = fix(suspects[0].name) if suspects else fix("column")
    return QueryError(
        f"a {kind} column ({names}) {what}; convert it in the query, for example {example} (driver: {text})",
        query,
    )
