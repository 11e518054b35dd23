"""The Spark engine: the same snapshot as the local engine, the Spark catalog as a source, errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge import EmptyResult, InvalidInput, QueryError, SourceError, dump

pytestmark = pytest.mark.spark


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """3000 rows over three Parquet files: ints, floats with NULLs, strings, timestamps, booleans."""
    n = 3000
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "score": pa.array([None if i % 9 == 0 else i / 7 for i in range(n)], pa.float64()),
            "kind": pa.array([("a", "b", "c")[i % 3] for i in range(n)]),
            "ts": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us")
            ),
            "flag": pa.array([i % 4 == 0 for i in range(n)]),
            "small": pa.array([i % 100 for i in range(n)], pa.int32()),
        }
    )
    folder = tmp_path / "events"
    folder.mkdir()
    for k in range(3):
        pq.write_table(table.slice(k * 1000, 1000), folder / f"part-{k}.parquet")
    return folder


def _nullable(table: pa.Table) -> pa.Table:
    return table.cast(pa.schema([field.with_nullable(True) for field in table.schema]))


def _nothing_written(workspace) -> None:
    assert workspace.list_snapshots() == []
    assert not workspace.tmp_dir.exists() or list(workspace.tmp_dir.iterdir()) == []


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM source ORDER BY id",
        "SELECT id, score * 2 AS double_score, upper(kind) AS kind, ts, flag FROM source "
        "WHERE small < 50 AND score IS NOT NULL ORDER BY id",
        # DuckDB sums INTEGER into HUGEINT (decimal128(38, 0) in Arrow), Spark into BIGINT: say which
        "SELECT kind, count(*) AS n, CAST(sum(small) AS BIGINT) AS total FROM source "
        "GROUP BY kind ORDER BY kind",
    ],
)
def test_local_and_spark_give_identical_tables(spark, workspace, events, query: str) -> None:
    local = dump(events, query=query, name="local", workspace=workspace)
    remote = dump(events, query=query, name="spark", engine="spark", workspace=workspace)
    # Spark marks columns it knows are never NULL (count(*)) as required; the manifests record no nullability
    assert _nullable(remote.to_arrow()).equals(_nullable(local.to_arrow()))
    assert remote.manifest["schema"] == local.manifest["schema"]
    assert remote.rows == local.rows
    assert (remote.manifest["engine"], remote.manifest["master"]) == ("spark", "local[*]")


def test_spark_catalog_source(spark, workspace) -> None:
    # a temporary view is in the session catalog like a Hive table, without metastore DDL in a test
    rows = [(1, "ana"), (2, "bo"), (3, None)]
    spark.createDataFrame(rows, "id INT, name STRING").createOrReplaceTempView("aiforge_dump_users")
    try:
        snap = dump("spark", query="SELECT * FROM aiforge_dump_users ORDER BY id", name="u", engine="spark",
                    workspace=workspace)  # fmt: skip
    finally:
        spark.catalog.dropTempView("aiforge_dump_users")
    assert snap.to_arrow().to_pylist() == [
        {"id": 1, "name": "ana"}, {"id": 2, "name": "bo"}, {"id": 3, "name": None}
    ]  # fmt: skip
    assert snap.manifest["schema"] == [{"name": "id", "type": "int32"}, {"name": "name", "type": "string"}]
    assert snap.manifest["source"] == "spark"
    assert spark.conf.get("spark.sql.catalogImplementation") == "hive"


def test_spark_sample_is_reproducible(spark, workspace, events) -> None:
    runs = [
        dump(events, name="s", engine="spark", sample_fraction=0.2, seed=seed, workspace=workspace)
        for seed in (3, 3, 4)
    ]
    ids = [run.to_arrow()["id"].to_pylist() for run in runs]
    assert ids[0] == ids[1] != ids[2]
    assert 0 < len(ids[0]) < 3000
    assert runs[0].manifest["sample"] == {"fraction": 0.2, "seed": 3}


def test_spark_csv_source(spark, workspace, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,name\n1,a\n2,b\n")
    snap = dump(path, query="SELECT * FROM source ORDER BY id", name="c", engine="spark", workspace=workspace)
    assert snap.to_arrow().to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_spark_sql_error(spark, workspace, events) -> None:
    with pytest.raises(
        QueryError, match=r"^\[UNRESOLVED_COLUMN\.WITH_SUGGESTION\] .*`nope` cannot be resolved"
    ):
        dump(events, query="SELECT nope FROM source", name="x", engine="spark", workspace=workspace)
    _nothing_written(workspace)


def test_spark_empty_result(spark, workspace, events) -> None:
    with pytest.raises(EmptyResult, match=r"^the query returned no rows from .*events"):
        dump(events, query="SELECT * FROM source WHERE id < 0", name="x", engine="spark", workspace=workspace)
    _nothing_written(workspace)


def test_spark_corrupt_file(spark, workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"garbage")
    with pytest.raises(SourceError, match=r"^cannot read parquet file\(s\) .*bad\.parquet: "):
        dump(bad, name="x", engine="spark", workspace=workspace)
    _nothing_written(workspace)


def test_spark_catalog_needs_a_query(workspace) -> None:
    with pytest.raises(InvalidInput, match=r"^a query is required to dump from spark"):
        dump("spark", name="x", engine="spark", workspace=workspace)


# -- issue 11: the same refusals and the same CSV reading as the local engine --------------------------------


def test_spark_refuses_duplicate_columns_like_local(spark, workspace, events) -> None:
    query = "SELECT id AS a, kind AS A FROM source"
    with pytest.raises(QueryError) as local:
        dump(events, query=query, name="x", workspace=workspace)
    with pytest.raises(QueryError) as remote:
        dump(events, query=query, name="x", engine="spark", workspace=workspace)
    assert str(remote.value) == str(local.value)
    assert remote.value.message.startswith("the query's result has duplicate column names: 'a', 'A' (columns 1, 2).")
    _nothing_written(workspace)


def test_spark_ragged_csv_is_the_same_error(spark, workspace, tmp_path: Path) -> None:
    path = tmp_path / "rag.csv"
    path.write_text("a,b\n1,2\n3,4\n5\n")
    with pytest.raises(SourceError) as local:
        dump(path, name="x", workspace=workspace)
    with pytest.raises(SourceError) as remote:
        dump(path, name="x", engine="spark", workspace=workspace)
    assert str(remote.value) == str(local.value)
    assert str(remote.value).startswith(f"CSV file {path}, line 4: expected 2 fields like the header, found 1")
    _nothing_written(workspace)


@pytest.mark.parametrize("mode", ["pad", "skip"])
def test_spark_reads_ragged_csv_like_local(spark, workspace, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "rag.tsv"
    path.write_text("a\tb\tc\n1\t2\tx\n3\t4\ty\tz\n5\n6\t7\n")
    query = "SELECT * FROM source ORDER BY a"
    local = dump(path, query=query, name="l", ragged_csv=mode, workspace=workspace)
    remote = dump(path, query=query, name="s", engine="spark", ragged_csv=mode, workspace=workspace)
    # the same rows; Spark infers INT where DuckDB infers BIGINT, as for any CSV file
    assert remote.to_arrow().to_pylist() == local.to_arrow().to_pylist()
    assert local.to_arrow().column("a").to_pylist() == ([1, 3, 5, 6] if mode == "pad" else [1])
