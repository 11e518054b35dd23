"""Warehouse fixtures for the DUMP tests: real PostgreSQL and MariaDB tables with known rows, small files.

Each fixture creates uniquely named objects and drops them afterwards, so repeated runs never collide.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

N_ROWS = 1000


def expected_table(n: int = N_ROWS) -> pa.Table:
    """The rows every warehouse fixture holds: ints, floats and text with NULLs, timestamps, booleans."""
    base = dt.datetime(2024, 1, 1)
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "x": pa.array([None if i % 7 == 0 else i * 0.5 for i in range(n)], pa.float64()),
            "s": pa.array([None if i % 11 == 0 else f"name-{i}" for i in range(n)], pa.string()),
            "ts": pa.array([base + dt.timedelta(minutes=i) for i in range(n)], pa.timestamp("us")),
            "b": pa.array([i % 3 == 0 for i in range(n)], pa.bool_()),
        }
    )


def _rows(table: pa.Table) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A PostgreSQL table ``<schema>.t`` holding :func:`expected_table`; yields its qualified name."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"aiforge_dump_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.t (id bigint, x double precision, s text, ts timestamp, b boolean)"
        )
        with conn.cursor() as cur, cur.copy(f"COPY {schema}.t (id, x, s, ts, b) FROM STDIN") as copy:
            for row in _rows(expected_table()):
                copy.write_row(row)
        try:
            yield f"{schema}.t"
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def mysql_table() -> Iterator[str]:
    """A MariaDB table in database ``test`` holding :func:`expected_table` (timestamps as DATETIME(6))."""
    pymysql = pytest.importorskip("pymysql")
    name = f"aiforge_dump_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(
        host="127.0.0.1", port=3306, user="root", password="", database="test", autocommit=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {name} (id BIGINT, x DOUBLE, s VARCHAR(64), ts DATETIME(6), b BOOLEAN)"
            )
            cur.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s)", _rows(expected_table()))
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        conn.close()


@pytest.fixture
def parquet_files(tmp_path: Path) -> Path:
    """:func:`expected_table` split over two Parquet files in a folder; returns the folder."""
    folder = tmp_path / "files"
    folder.mkdir()
    table = expected_table()
    pq.write_table(table.slice(0, 600), folder / "a.parquet")
    pq.write_table(table.slice(600), folder / "b.parquet")
    return folder


def assert_nothing_written(workspace) -> None:
    """No snapshot in the catalog or on disk, and no staging folder left behind."""
    assert workspace.list_snapshots() == []
    snapshots = workspace.snapshots_dir
    assert not snapshots.exists() or not any(snapshots.rglob("v*"))
    tmp = workspace.tmp_dir
    assert not tmp.exists() or list(tmp.iterdir()) == []


@pytest.fixture
def expected() -> pa.Table:
    """The table that ``pg_table``, ``mysql_table`` and ``parquet_files`` hold."""
    return expected_table()


@pytest.fixture
def nothing_written():
    """The check that a failed dump left the workspace untouched."""
    return assert_nothing_written


#: PostgreSQL columns of every type the issue names, with one row of values and a row of NULLs
PG_TYPES = {
    "n": ("numeric(10,2)", "12.34"),
    "nn": ("numeric", "1e30"),
    "m": ("money", "12.5"),
    "u": ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "j": ("json", '{"a":1}'),
    "jb": ("jsonb", '{"b":[1,2]}'),
    "ai": ("int[]", "{1,2,NULL}"),
    "at": ("text[]", '{"x","y z"}'),
    "a2": ("int[][]", "{{1,2},{3,4}}"),
    "i": ("inet", "192.168.0.1/24"),
    "i6": ("inet", "2001:db8::1"),
    "c": ("cidr", "10.0.0.0/8"),
    "mac": ("macaddr", "08:00:2b:01:02:03"),
    "by": ("bytea", "\\xdeadbeef"),
    "tm": ("time", "12:34:56.789"),
    "tz": ("timetz", "12:34:56+05:30"),
    "iv": ("interval", "1 year 2 mons 3 days 04:05:06.789"),
    "ivn": ("interval", "-1 year -2 mons +3 days -04:05:06.5"),
    "e": ("{schema}.mood", "ok"),
    "bt": ("bit(4)", "1010"),
    "vb": ("varbit", "101"),
    "xm": ("xml", "<a>1</a>"),
    "pt": ("point", "(1,2)"),
    "ln": ("line", "{1,-1,0}"),
    "ls": ("lseg", "[(0,0),(1,1)]"),
    "bx": ("box", "((0,0),(1,1))"),
    "pa": ("path", "[(0,0),(1,1),(2,0)]"),
    "pg": ("polygon", "((0,0),(1,1),(1,0))"),
    "ci": ("circle", "<(0,0),1>"),
    "r": ("int4range", "[1,5)"),
    "tsv": ("tsvector", "a fat cat"),
}


@pytest.fixture
def pg_types_table() -> Iterator[str]:
    """A PostgreSQL table with one column per type of :data:`PG_TYPES`: a row of values, then a row of NULLs."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"aiforge_types_{uuid.uuid4().hex[:10]}"
    columns = ", ".join(f"{name} {kind.format(schema=schema)}" for name, (kind, _) in PG_TYPES.items())
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TYPE {schema}.mood AS ENUM ('sad', 'ok', 'happy')")
        conn.execute(f"CREATE TABLE {schema}.t (k int, {columns})")
        values = [value for _, value in PG_TYPES.values()]
        conn.execute(f"INSERT INTO {schema}.t VALUES (1, {', '.join(['%s'] * len(values))})", values)
        conn.execute(f"INSERT INTO {schema}.t (k) VALUES (2)")
        try:
            yield f"{schema}.t"
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


#: MySQL/MariaDB columns of every type the issue names, with one row of values (SQL literals) and a row of NULLs
MYSQL_TYPES = {
    "de": ("DECIMAL(10,2)", "12.34"),
    "dwide": ("DECIMAL(30,2)", "1.5"),
    "dbig": ("DECIMAL(40,5)", "123456789012345678901234567890.12345"),
    "dscale": ("DECIMAL(20,15)", "1.123456789012345"),
    "yr": ("YEAR", "2024"),
    "tm": ("TIME(3)", "'12:34:56.789'"),
    "tlong": ("TIME", "'-838:59:59'"),
    "bt": ("BIT(4)", "b'1010'"),
    "en": ("ENUM('a','b')", "'b'"),
    "st": ("SET('x','y')", "'x,y'"),
    "js": ("JSON", "'{\"a\": 1}'"),
    "bl": ("BLOB", "x'DEADBEEF'"),
    "g": ("GEOMETRY", "ST_GeomFromText('POINT(1 2)')"),
}


@pytest.fixture
def mysql_types_table() -> Iterator[str]:
    """A MariaDB table with one column per type of :data:`MYSQL_TYPES`: a row of values, then a row of NULLs."""
    pymysql = pytest.importorskip("pymysql")
    name = f"aiforge_types_{uuid.uuid4().hex[:10]}"
    columns = ", ".join(f"{column} {kind} NULL" for column, (kind, _) in MYSQL_TYPES.items())
    conn = pymysql.connect(
        host="127.0.0.1", port=3306, user="root", password="", database="test", autocommit=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {name} (k INT, {columns})")
            cur.execute(f"INSERT INTO {name} VALUES (1, {', '.join(v for _, v in MYSQL_TYPES.values())})")
            cur.execute(f"INSERT INTO {name} (k) VALUES (2)")
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        conn.close()
