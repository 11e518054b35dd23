"""Reading CSV files the same way on both engines, and refusing a file whose rows do not match its header.

Left to itself DuckDB's CSV sniffer explains a ragged file away: ``a,b / 1,2 / 3,4 / 5`` is read as one column
named ``a,b``. Here the dialect (delimiter, quoting, header, column types) comes from a sniff that tolerates bad
lines, so it describes the good ones; the files are then read with exactly that dialect, and what happens to a
line whose field count differs from the header is the user's choice, ``ragged``:

========  ==============================================================  ==============================
ragged    DuckDB (local engine)                                           Spark
========  ==============================================================  ==============================
error     bad lines are recorded (``store_rejects``); after the read, an  ``mode=FAILFAST``; the failure
          error names the first one's file and line                       is located with DuckDB
pad       missing fields become NULL, extra fields are dropped            ``mode=PERMISSIVE``
          (``null_padding``, ``strict_mode=false``)
skip      the lines are left out (``store_rejects``) and counted in a     ``mode=DROPMALFORMED``
          warning
========  ==============================================================  ==============================

Spark also gets the delimiter and quoting DuckDB found, so a tab- or semicolon-separated file reads the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from aiforge.engines._duckdb import connect_duckdb, sql_string
from aiforge.errors import InvalidInput, SourceError

__all__ = ["RAGGED", "Dialect", "Ragged", "check_ragged", "read_csv", "register_csv", "sniff", "spark_options"]

log = logging.getLogger(__name__)

Ragged = Literal["error", "pad", "skip"]
#: what to do with a CSV line whose field count differs from the header
RAGGED: tuple[Ragged, ...] = ("error", "pad", "skip")
_ERRORS, _SCANS = "aiforge_csv_rejects", "aiforge_csv_scans"
_LENIENT = (
    "read it leniently with --ragged-csv pad (missing fields become NULL, extra ones are dropped) or "
    "--ragged-csv skip (those lines are left out)"
)
_COUNTS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def check_ragged(ragged: str, fmt: str | None, source: str) -> None:
    """Refuse a lenient ``ragged`` for a source that is not CSV files (it would silently do nothing)."""
    if ragged != "error" and fmt != "csv":
        raise InvalidInput(
            f"--ragged-csv {ragged} applies to CSV files only; {source} is {fmt or 'not a file source'}. "
            "Drop the option"
        )


@dataclass(frozen=True)
class Dialect:
    """How a CSV file is written, as DuckDB's sniffer found it on the lines that match the header."""

    delim: str
    quote: str
    escape: str
    new_line: str
    comment: str
    skip: int
    header: bool
    columns: tuple[tuple[str, str], ...]
    dateformat: str | None
    timestampformat: str | None

    def options(self) -> str:
        """The ``read_csv`` options that read with exactly this dialect."""
        columns = ", ".join(f"'{sql_string(name)}': '{sql_string(kind)}'" for name, kind in self.columns)
        texts = {
            "delim": self.delim, "quote": self.quote, "escape": self.escape, "new_line": self.new_line,
            "comment": self.comment, "dateformat": self.dateformat, "timestampformat": self.timestampformat,
        }  # fmt: skip
        parts = ["auto_detect=false", f"skip={int(self.skip)}", f"header={'true' if self.header else 'false'}"]
        parts += [f"{key}='{sql_string(value)}'" for key, value in texts.items() if value is not None]
        parts.append(f"columns={{{columns}}}")
        return ", ".join(parts)


def sniff(con: Any, path: str) -> Dialect | None:
    """The dialect of ``path`` on its good lines (``sniff_csv`` with ``ignore_errors``), or None if none is found."""
    import duckdb

    try:
        row = con.execute(
            "SELECT Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, HasHeader, Columns, DateFormat, "
            "TimestampFormat FROM sniff_csv(?, ignore_errors=true)",
            [path],
        ).fetchone()
    except duckdb.Error:
        return None
    if row is None or not row[7]:
        return None
    delim, quote, escape, new_line, comment, skip, header, columns, dateformat, timestampformat = row
    empty = "(empty)"
    return Dialect(
        delim, "" if quote == empty else quote, "" if escape == empty else escape, new_line,
        "" if comment == empty else comment, int(skip), bool(header),
        tuple((c["name"], c["type"]) for c in columns), dateformat, timestampformat,
    )  # fmt: skip


def register_csv(
    con: Any, paths: Sequence[str], *, ragged: Ragged = "error", view: str = "source", label: str | None = None
) -> Callable[[], None]:
    """Create the view ``view`` over the CSV files ``paths``; return the check to call once the view was read.

    The check raises :class:`~aiforge.errors.SourceError` naming the first bad line's file and line
    (``ragged="error"``; with ``"pad"`` only for lines that cannot be read at all, such as a value of the wrong
    type), or logs how many lines were left out (``"skip"``). Reading the view is what finds bad lines, so call
    it after the last batch: a result cut short by ``LIMIT`` is checked only on the lines it read.

    Raises
    ------
    duckdb.Error
        The view cannot be created (an unreadable file); callers wrap it with the source's name.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(path, "w").write("a,b\\n1,2\\n3\\n")
    >>> con = connect_duckdb()
    >>> finish = register_csv(con, [path], ragged="pad")
    >>> con.sql("SELECT * FROM source").fetchall()
    [(1, 2), (3, None)]
    >>> finish()
    """
    dialect = sniff(con, paths[0])
    files = ", ".join(f"'{sql_string(p)}'" for p in paths)
    options = [dialect.options()] if dialect is not None else []
    rejects = f"store_rejects=true, rejects_table='{_ERRORS}', rejects_scan='{_SCANS}'"
    if ragged == "pad":
        options.append("null_padding=true, strict_mode=false, parallel=false")  # parallel: quoted new lines
    options.append(rejects)
    con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_csv([{files}], {', '.join(options)})")
    shown = label or ", ".join(paths)

    def finish() -> None:
        rows = con.execute(
            f"SELECT s.file_path, e.line, e.error_type, e.error_message, e.csv_line, "
            f"count(*) OVER () AS n FROM (SELECT DISTINCT file_id, scan_id, line, error_type, error_message, "
            f"csv_line FROM {_ERRORS}) e JOIN {_SCANS} s USING (scan_id, file_id) "
            "ORDER BY s.file_path, e.line LIMIT 1"
        ).fetchall()
        if not rows:
            return
        path, line, kind, message, text, count = rows[0]
        if ragged == "skip":
            log.warning(
                "skipped %d line%s of CSV file(s) %s whose fields do not match the header (first: %s, line %d)",
                count, "" if count == 1 else "s", shown, path, line,
            )  # fmt: skip
            return
        raise _bad_line(path, int(line), kind, message, text, int(count))

    return finish


def read_csv(paths: Sequence[str], *, ragged: Ragged = "error") -> pa.Table:
    """Read the CSV files ``paths`` into one table, refusing (or padding, or skipping) ragged lines.

    Raises
    ------
    SourceError
        A file cannot be read, or has a line that does not match its header (see :func:`register_csv`).
    """
    import duckdb

    con = connect_duckdb()
    try:
        try:
            finish = register_csv(con, paths, ragged=ragged)
            table = con.sql("SELECT * FROM source").arrow()
        except duckdb.Error as exc:
            raise SourceError(f"cannot read CSV file(s) {', '.join(paths)}: {str(exc).splitlines()[0]}") from exc
        if isinstance(table, pa.RecordBatchReader):
            table = table.read_all()
        finish()
        return table
    finally:
        con.close()


def spark_options(paths: Sequence[str], ragged: Ragged) -> dict[str, Any]:
    """``spark.read.csv`` options that read ``paths`` like the local engine: DuckDB's dialect, ``ragged``'s mode."""
    options: dict[str, Any] = {
        "header": True,
        "inferSchema": True,
        "mode": {"error": "FAILFAST", "pad": "PERMISSIVE", "skip": "DROPMALFORMED"}[ragged],
    }
    con = connect_duckdb()
    try:
        dialect = sniff(con, paths[0])
    finally:
        con.close()
    if dialect is not None:
        options.update(sep=dialect.delim, header=dialect.header, quote=dialect.quote or "\u0000")
        if dialect.escape:
            options["escape"] = dialect.escape
    return options


def _bad_line(path: str, line: int, kind: str, message: str, text: str, count: int) -> SourceError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    lines = f"{count} line{'' if count == 1 else 's'} in all {'does' if count == 1 else 'do'}"
    counts = _COUNTS.search(message or "")
    if kind in ("MISSING COLUMNS", "TOO MANY COLUMNS") and counts:
        return SourceError(
            f"CSV file {path}, line {line}: expected {counts[1]} fields like the header, found {counts[2]} "
            f"({shown!r}); {lines} not match the header. Fix the file, or {_LENIENT}"
        )
    return SourceError(
        f"CSV file {path}, line {line}: {' '.join((message or kind).split())} ({shown!r}); {lines} not read. "
        "Fix the file, or pass --ragged-csv skip to leave such lines out"
    )
