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
