"""MySQL/MariaDB through ConnectorX, with what it cannot do itself done first.

ConnectorX reads a result as Arrow batches, but a wrong password costs 30 seconds of pool retries, and some
types make it panic or lose digits without saying which column. Before it runs, :mod:`._mysql_wire` logs in and
describes the query in a few seconds: a login that retrying cannot fix is an error at once, and the columns
ConnectorX cannot read (GEOMETRY, DECIMAL with more than 10 decimal places) are refused by name. What can only be
seen in the values (a TIME beyond 24 hours, a DECIMAL of more than 28 digits) makes it panic mid-stream; the
panic becomes an error that names the column.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from aiforge.engines._mysql_wire import DEFINITE, Column, ServerError, describe
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

__all__ = ["connectorx_module", "open_mysql", "panic_error", "rules", "unsupported"]

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


def _describe_mysql(source: Source, query: str) -> list[Column] | None:
    """Log in and describe the result in a few seconds; a refusal that retrying cannot change is an error now,
    not after the driver's 30 s of retries."""
    parts = urlsplit(source.url)
    host, port = parts.hostname or "localhost", parts.port or 3306
    try:
        return describe(source.url, query, CONNECT_TIMEOUT_S)
    except ServerError as exc:
        if exc.login and exc.code in DEFINITE:
            raise unreachable(source, source.scrub(exc.text)) from exc
        if not exc.login:
            raise QueryError(source.scrub(exc.text), query) from exc
        return None
    except OSError as exc:
        raise unreachable(source, f"{host}:{port}: {exc.strerror or exc}") from exc


# -- what the described columns mean for a snapshot ----------------------------------------------------------

_MAX_DIGITS, _MAX_SCALE = 28, 10  # ConnectorX reads DECIMAL through rust_decimal: 28 digits, 10 kept decimals


def unsupported(columns: list[Column]) -> list[Unsupported]:
    """The columns ConnectorX cannot read faithfully whatever their values: refused before it runs."""
    refused = []
    for c in columns:
        if c.type_code == 255:
            refused.append(Unsupported(c.name, "MySQL type GEOMETRY", "the MySQL driver cannot read",
                                       f"ST_AsText({c.name})"))  # fmt: skip
        elif c.type_code in (0, 246) and c.decimals > _MAX_SCALE:
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
        if c.type_code in (0, 246) and pa.types.is_decimal(f.type):
            target = pa.decimal128(max(1, min(c.precision, 38)), c.decimals)
            return lambda array: array.cast(target)
        if c.type_code == 16 and (pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)):
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
        suspects = [c for c in columns or [] if c.type_code in (11, 19)]
        shown = f"holds {_time_text(value[1])!r}" if value else "holds a value"
        return _blame(suspects, "TIME", f"{shown}, outside the 00:00:00-23:59:59 that the MySQL driver reads",
                      lambda n: f"TIME_TO_SEC({n})", text, query)  # fmt: skip
    if "rust_decimal" in text or "Decimal" in text:
        suspects = [c for c in columns or [] if c.type_code in (0, 246) and c.precision > _MAX_DIGITS]
        suspects = suspects or [c for c in columns or [] if c.type_code in (0, 246)]
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
