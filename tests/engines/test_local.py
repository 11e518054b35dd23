"""The local engine: Arrow batches straight from each driver, bounded batch sizes, errors sorted by cause."""

from __future__ import annotations

import re
import sqlite3
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiforge.engines.columns import check_unique_names, interval_to_iso
from aiforge.engines.local import open_stream
from aiforge.engines.sources import parse_source
from aiforge.errors import InvalidInput, QueryError, SourceError

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _read(source: str, query: str | None = None, **kwargs: object) -> tuple[pa.Table, list[int]]:
    with open_stream(parse_source(source), query, **kwargs) as stream:  # type: ignore[arg-type]
        batches = list(stream.batches)
        return pa.Table.from_batches(batches, stream.schema), [b.num_rows for b in batches]


def test_files_stream_in_bounded_batches(tmp_path: Path) -> None:
    table = pa.table({"a": pa.array(range(2500), pa.int64()), "b": [f"v{i}" for i in range(2500)]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=700)
    result, sizes = _read(str(tmp_path / "t.parquet"), "SELECT * FROM source ORDER BY a", batch_rows=1000)
    assert result.equals(table)
    assert sum(sizes) == 2500 and max(sizes) <= 1000 and len(sizes) >= 3


@pytest.mark.postgres
def test_postgres_types_and_numeric_as_its_declared_decimal() -> None:
    query = "SELECT g::bigint AS id, (g * 0.5)::numeric(10, 1) AS n, g % 2 = 0 AS even"
    query += " FROM generate_series(1, 3) g"
    table, _ = _read(PG_URL, query)
    assert table.schema == pa.schema([("id", pa.int64()), ("n", pa.decimal128(10, 1)), ("even", pa.bool_())])
    assert table.to_pydict() == {"id": [1, 2, 3], "n": [Decimal("0.5"), Decimal("1.0"), Decimal("1.5")],
                                 "even": [False, True, False]}


@pytest.mark.postgres
def test_postgres_large_result_arrives_in_many_batches() -> None:
    # ~40 MB of text: ADBC cuts the COPY stream into batches of about 16 MB
    _, sizes = _read(PG_URL, "SELECT g, repeat(md5(g::text), 4) AS h FROM generate_series(1, 300000) g")
    assert sum(sizes) == 300000 and len(sizes) > 1


@pytest.mark.mysql
def test_mysql_stream() -> None:
    table, _ = _read("mysql://root@127.0.0.1:3306/test", "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, NULL")
    assert table.to_pydict() == {"a": [1, 2], "b": ["x", None]}


def test_mysql_unreachable_is_one_clear_error() -> None:
    # how fast it fails is measured in the DUMP guide's figures, not asserted: tests never assert timings
    with pytest.raises(
        SourceError, match=r"^cannot connect to mysql://root@127\.0\.0\.1:1/test: 127\.0\.0\.1:1: "
    ):
        _read("mysql://root:pw@127.0.0.1:1/test", "SELECT 1")


def test_sqlite_is_opened_read_only(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    with pytest.raises(QueryError, match="readonly database"):
        _read(f"sqlite:///{db}", "DELETE FROM t")
    assert _read(f"sqlite:///{db}", "SELECT * FROM t")[0].to_pydict() == {"a": [1]}


def test_duckdb_is_opened_read_only(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS a")
    with pytest.raises(QueryError, match="read-only"):
        _read(f"duckdb:///{db}", "DELETE FROM t")
    assert _read(f"duckdb:///{db}", "SELECT * FROM t")[0].to_pydict() == {"a": [1]}


def test_missing_duckdb_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^DuckDB database file not found: .*nope\.duckdb"):
        _read(f"duckdb:///{tmp_path}/nope.duckdb", "SELECT 1")
    assert not (tmp_path / "nope.duckdb").exists()


@pytest.mark.parametrize(
    ("source", "query", "message"),
    [
        (PG_URL, None, r"^a query is required to dump from postgresql://postgres@127\.0\.0\.1:5432/test"),
        ("spark", "SELECT 1", r"^SOURCE 'spark' \(the Spark/Hive catalog\) needs --engine spark"),
    ],
)
def test_invalid_requests(source: str, query: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        open_stream(parse_source(source), query)


def test_query_error_is_one_line_with_the_query(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "t.parquet")
    with pytest.raises(QueryError) as info:
        _read(str(tmp_path / "t.parquet"), "SELEC a FROM source")
    assert info.value.message == 'Parser Error: syntax error at or near "SELEC"'
    assert str(info.value) == 'Parser Error: syntax error at or near "SELEC"\n  query: SELEC a FROM source'


# -- issue 11 ------------------------------------------------------------------------------------------------


def _reference_iso(months: int, days: int, nanos: int) -> str:
    """PostgreSQL's ISO 8601 interval style, written the slow and obvious way (each field keeps its sign)."""
    years, months = int(months / 12), months - int(months / 12) * 12
    hours, rest = int(nanos / 3_600_000_000_000), nanos - int(nanos / 3_600_000_000_000) * 3_600_000_000_000
    minutes, rest = int(rest / 60_000_000_000), rest - int(rest / 60_000_000_000) * 60_000_000_000
    date = "".join(f"{v}{u}" for v, u in ((years, "Y"), (months, "M"), (days, "D")) if v)
    seconds = ""
    if rest:
        whole, frac = divmod(abs(rest), 1_000_000_000)
        seconds = ("-" if rest < 0 else "") + str(whole) + (f".{frac:09d}".rstrip("0") if frac else "") + "S"
    time = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M")) if v) + seconds
    if not date and not time:
        return "PT0S"
    return "P" + date + ("T" + time if time else "")


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.tuples(
                st.integers(-(2**31), 2**31 - 1),
                st.integers(-(2**31), 2**31 - 1),
                st.integers(-(2**63) + 1, 2**63 - 1),
            ),
        ),
        max_size=30,
    ),
    st.integers(0, 3),
)
def test_interval_text_equals_its_definition(values: list, offset: int) -> None:
    array = pa.array([None] * offset + values, pa.month_day_nano_interval()).slice(offset)
    expected = [None if v is None else _reference_iso(*v) for v in values]
    assert interval_to_iso(array).to_pylist() == expected


def test_interval_columns_from_duckdb_become_iso_8601(tmp_path: Path) -> None:
    pq.write_table(pa.table({"k": [1]}), tmp_path / "t.parquet")
    query = "SELECT INTERVAL '1 year 2 months 3 days 04:05:06.789' AS i, INTERVAL '-90 minutes' AS j FROM source"
    table, _ = _read(str(tmp_path / "t.parquet"), query)
    assert table.to_pydict() == {"i": ["P1Y2M3DT4H5M6.789S"], "j": ["PT-1H-30M"]}


def test_types_parquet_cannot_store_are_refused_naming_the_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"k": [1]}), tmp_path / "t.parquet")
    with pytest.raises(
        QueryError,
        match=r"^cannot store column 'u': it has Arrow type sparse_union<num: int32=0>, which Parquet cannot "
        r"store; convert it in the query, for example CAST\(u AS VARCHAR\)\n",
    ):
        _read(str(tmp_path / "t.parquet"), "SELECT union_value(num := 2) AS u, k FROM source")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a", "b"], None),
        (["a", "a"], "'a' (columns 1, 2)"),
        (["x", "Ab", "y", "aB", "AB"], "'Ab', 'aB', 'AB' (columns 2, 4, 5)"),
        (["é", "É"], "'é', 'É' (columns 1, 2)"),
    ],
)
def test_unique_column_names(names: list[str], message: str | None) -> None:
    if message is None:
        check_unique_names(names, "SELECT ...")
        return
    with pytest.raises(QueryError, match=r"^the query's result has duplicate column names: " + re.escape(message)):
        check_unique_names(names, "SELECT ...")
