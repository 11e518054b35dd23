"""DUMP keeps every column type a warehouse driver hands over, or refuses it with one clear error.

One table per database holds a column of each type the drivers return (``conftest.PG_TYPES``,
``conftest.MYSQL_TYPES``); each column either dumps to a sensible Arrow type with its value intact, or fails with
one error that names the column, its type and the cast that fixes it. Never a traceback.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow.parquet as pq
import pytest

from aiforge import QueryError, dump
from conftest import MYSQL_TYPES, PG_TYPES

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL_URL = "mysql://root@127.0.0.1:3306/test"

_NO_ARROW = "which has no Arrow equivalent; convert it in the query, for example"

#: column -> (Arrow type of the snapshot, value of the first row), or the error it gives
PG_EXPECTED: dict[str, tuple[str, object] | str] = {
    "n": ("decimal128(10, 2)", decimal.Decimal("12.34")),
    "nn": ("double", 1e30),
    "m": r"^cannot store column 'm': it has PostgreSQL type money, which the driver reads as a count of the "
    r"currency's smallest unit without its scale; convert it in the query, for example m::numeric\n",
    "u": ("string", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "j": ("string", '{"a":1}'),
    "jb": ("string", '{"b": [1, 2]}'),
    "ai": ("list<element: int32>", [1, 2, None]),
    "at": ("list<element: string>", ["x", "y z"]),
    # the driver flattens arrays of more than one dimension (documented in the guide)
    "a2": ("list<element: int32>", [1, 2, 3, 4]),
    "i": ("string", "192.168.0.1/24"),
    "i6": ("string", "2001:db8::1"),
    "c": ("string", "10.0.0.0/8"),
    "mac": ("string", "08:00:2b:01:02:03"),
    "by": ("binary", b"\xde\xad\xbe\xef"),
    "tm": ("time64[us]", dt.time(12, 34, 56, 789000)),
    "tz": ("string", "12:34:56+05:30"),
    "iv": ("string", "P1Y2M3DT4H5M6.789S"),
    "ivn": ("string", "P-1Y-2M3DT-4H-5M-6.5S"),
    "e": ("string", "ok"),
    "bt": ("string", "1010"),
    "vb": ("string", "101"),
    "xm": ("string", "<a>1</a>"),
    **{
        name: rf"^cannot store column '{name}': it has PostgreSQL type {kind}, {_NO_ARROW} {name}::text\n"
        for name, kind in [
            ("pt", "point"), ("ln", "line"), ("ls", "lseg"), ("bx", "box"), ("pa", "path"), ("pg", "polygon"),
            ("ci", "circle"), ("r", "int4range"), ("tsv", "tsvector"),
        ]
    },
}


def _dumps_as_expected(url: str, table: str, column: str, expected: Any, workspace, nothing_written) -> None:
    """``expected`` is ``(arrow type, first value)`` for a column that dumps, or the error it must give."""
    query = f"SELECT {column} FROM {table} ORDER BY k"
    if isinstance(expected, str):
        with pytest.raises(QueryError, match=expected) as info:
            dump(url, query=query, name="t", workspace=workspace)
        assert info.value.query == query
        nothing_written(workspace)
        return
    snap = dump(url, query=query, name="t", workspace=workspace)
    arrow_type, value = expected
    assert [{k: c[k] for k in ("name", "type")} for c in snap.manifest["schema"]] == [
        {"name": column, "type": arrow_type}
    ]
    assert snap.to_arrow().column(column).to_pylist() == [value, None]
    # what the manifest says is what the Parquet file holds
    assert str(pq.read_schema(snap.path / "data/part-00000.parquet").field(column).type) == arrow_type


def test_every_postgres_type_is_covered() -> None:
    assert set(PG_EXPECTED) == set(PG_TYPES)


@pytest.mark.postgres
@pytest.mark.parametrize("column", list(PG_TYPES))
def test_postgres_type(workspace, pg_types_table, nothing_written, column: str) -> None:
    _dumps_as_expected(PG_URL, pg_types_table, column, PG_EXPECTED[column], workspace, nothing_written)


@pytest.mark.postgres
def test_postgres_numeric_notes_say_how_it_is_stored(workspace, pg_types_table) -> None:
    # numeric(10,2) is a decimal as declared: nothing to explain; a bare numeric is float64, and the manifest says so
    snap = dump(PG_URL, query=f"SELECT n, nn FROM {pg_types_table} ORDER BY k", name="t", workspace=workspace)
    n, nn = snap.manifest["schema"]
    assert n == {"name": "n", "type": "decimal128(10, 2)"}
    assert nn["type"] == "double"
    assert nn["note"].startswith("PostgreSQL numeric stored as float64 (double), since it has no declared precision")
    assert "nn::numeric(18,2)" in nn["note"]


@pytest.mark.postgres
def test_postgres_text_forms_are_postgres_own(workspace, pg_types_table) -> None:
    # every column stored as text holds what PostgreSQL's output functions print (intervals in the ISO 8601 style)
    psycopg = pytest.importorskip("psycopg")
    text = [c for c, e in PG_EXPECTED.items() if isinstance(e, tuple) and e[0] == "string" and c not in ("n", "nn")]
    query = f"SELECT {', '.join(text)} FROM {pg_types_table} ORDER BY k"
    snap = dump(PG_URL, query=query, name="t", workspace=workspace)
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        # format() calls the type's output function (and makes NULL an empty string)
        shown = ", ".join(f"CASE WHEN {c} IS NOT NULL THEN format('%s', {c}) END" for c in text)
        rows = conn.execute(f"SELECT {shown} FROM {pg_types_table} ORDER BY k")
        expected = [dict(zip(text, row, strict=True)) for row in rows.fetchall()]
    assert snap.to_arrow().to_pylist() == expected


@pytest.mark.postgres
def test_postgres_intervals_match_postgres_iso_8601(workspace) -> None:
    psycopg = pytest.importorskip("psycopg")
    values = [
        "0", "1 microsecond", "-1 microsecond", "1.5 seconds", "-0.5 seconds", "59 minutes 59.999999 seconds",
        "25 hours", "-25 hours", "14 months", "-14 months", "12 months", "-1 day +1 hour", "1 day -1 second",
        "178000000 years", "-178000000 years", "2147483647 days", "-2147483648 days 00:00:00.000001",
        "1 year -1 month 1 day -1 hour 1 minute -1 second",
    ]  # fmt: skip
    query = "SELECT v::interval AS v FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, k) ORDER BY k"
    literal = "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"
    snap = dump(PG_URL, query=query.replace("%s", literal), name="iv", workspace=workspace)
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        expected = [r[0] for r in conn.execute(query.replace("v::interval", "v::interval::text"), [values])]
    assert snap.to_arrow().column("v").to_pylist() == expected
    assert snap.manifest["schema"] == [{"name": "v", "type": "string"}]


@pytest.mark.postgres
def test_postgres_inet_and_cidr_are_text(workspace) -> None:
    # as PostgreSQL prints them: an inet's mask only when it is not the full address
    values = ["192.168.0.1/24", "192.168.0.1", "10.1.2.3/32", "::1", "2001:db8::1/64", "fe80::1:2:3:4/128", "0.0.0.0/0"]
    rows = " UNION ALL ".join(f"SELECT {k} AS k, '{v}'::inet AS i" for k, v in enumerate(values))
    snap = dump(PG_URL, query=f"SELECT i, set_masklen(i, 8)::cidr AS c FROM ({rows}) s ORDER BY k", name="ip",
                workspace=workspace)  # fmt: skip
    table = snap.to_arrow()
    assert table.column("i").to_pylist() == [
        "192.168.0.1/24", "192.168.0.1", "10.1.2.3", "::1", "2001:db8::1/64", "fe80::1:2:3:4", "0.0.0.0/0"
    ]  # fmt: skip
    assert table.column("c").to_pylist() == [
        "192.0.0.0/8", "192.0.0.0/8", "10.0.0.0/8", "::/8", "2000::/8", "fe00::/8", "0.0.0.0/8"
    ]  # fmt: skip


@pytest.mark.postgres
def test_postgres_select_star_names_every_column_it_cannot_store(workspace, pg_types_table, nothing_written) -> None:
    with pytest.raises(QueryError) as info:
        dump(PG_URL, query=f"SELECT * FROM {pg_types_table}", name="t", workspace=workspace)
    message = info.value.message
    assert message.startswith("cannot store 10 columns: 'm' has PostgreSQL type money, which the driver reads ")
    for name in ("pt", "ln", "ls", "bx", "pa", "pg", "ci", "r", "tsv"):
        assert f"'{name}' has PostgreSQL type " in message
    assert message.endswith("(convert it with tsv::text); convert them in the query")
    assert "\n" not in message
    nothing_written(workspace)


# -- MySQL / MariaDB -----------------------------------------------------------------------------------------

MYSQL_EXPECTED: dict[str, tuple[str, object] | str] = {
    "de": ("decimal128(10, 2)", decimal.Decimal("12.34")),
    "dwide": ("decimal128(30, 2)", decimal.Decimal("1.50")),
    "dbig": r"^column 'dbig' \(MySQL type DECIMAL\(40,5\)\) holds a value of more than 28 digits, which the "
    r"MySQL driver cannot read; convert it in the query, for example CAST\(dbig AS CHAR\)\n",
    "dscale": r"^cannot store column 'dscale': it has MySQL type DECIMAL\(20,15\), which has more decimal places "
    r"than the 10 the MySQL driver keeps; convert it in the query, for example CAST\(dscale AS CHAR\)\n",
    "yr": ("int16", 2024),
    "tm": ("time64[us]", dt.time(12, 34, 56, 789000)),
    "tlong": r"^column 'tlong' \(MySQL type TIME\) holds '-838:59:59', outside the 00:00:00-23:59:59 that the "
    r"MySQL driver reads; convert it in the query, for example TIME_TO_SEC\(tlong\)\n",
    "bt": ("uint64", 10),
    "en": ("string", "b"),
    "st": ("string", "x,y"),
    "js": ("string", '{"a": 1}'),
    "bl": ("large_binary", b"\xde\xad\xbe\xef"),
    "g": r"^cannot store column 'g': it has MySQL type GEOMETRY, which the MySQL driver cannot read; convert it "
    r"in the query, for example ST_AsText\(g\)\n",
}


def test_every_mysql_type_is_covered() -> None:
    assert set(MYSQL_EXPECTED) == set(MYSQL_TYPES)


@pytest.mark.mysql
@pytest.mark.parametrize("column", list(MYSQL_TYPES))
def test_mysql_type(workspace, mysql_types_table, nothing_written, column: str) -> None:
    _dumps_as_expected(MYSQL_URL, mysql_types_table, column, MYSQL_EXPECTED[column], workspace, nothing_written)
