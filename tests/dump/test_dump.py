"""DUMP end to end: PostgreSQL/MariaDB/SQLite/DuckDB/files into versioned snapshots; every failure path."""

from __future__ import annotations

import csv
import errno
import json
import logging
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aiforge import (
    EmptyResult,
    InvalidInput,
    QueryError,
    SourceError,
    UnknownSource,
    WorkspaceError,
    __version__,
    dump,
)
from aiforge.cli import app
from aiforge.workspace import writer as _parts

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
# trust auth ignores the password, which lets the tests check that it never reaches the workspace
PG_URL_WITH_PASSWORD = "postgresql://postgres:s3cret-PW@127.0.0.1:5432/test"
MYSQL_URL = "mysql://root@127.0.0.1:3306/test"

MANIFEST_KEYS = {
    "name", "version", "source", "query", "engine", "master", "schema", "rows", "bytes", "files",
    "content_hash", "created", "aiforge_version", "sample", "duration_s",
}  # fmt: skip
SCHEMA = [
    {"name": "id", "type": "int64"},
    {"name": "x", "type": "double"},
    {"name": "s", "type": "string"},
    {"name": "ts", "type": "timestamp[us]"},
    {"name": "b", "type": "bool"},
]


# -- PostgreSQL ----------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_round_trip_and_manifest(workspace, pg_table, expected) -> None:
    query = f"SELECT * FROM {pg_table} ORDER BY id"
    snap = dump(PG_URL_WITH_PASSWORD, query=query, name="users", workspace=workspace)

    assert (snap.name, snap.version, snap.ref) == ("users", 1, "users@v1")
    assert snap.to_arrow().equals(expected)
    m = snap.manifest
    assert set(m) == MANIFEST_KEYS
    assert m["source"] == "postgresql://postgres@127.0.0.1:5432/test"
    assert (m["query"], m["engine"], m["master"], m["sample"]) == (query, "local", None, None)
    assert m["schema"] == SCHEMA
    assert m["rows"] == 1000
    assert m["files"] == [{"path": "data/part-00000.parquet", "rows": 1000, "bytes": m["bytes"]}]
    assert m["bytes"] == (snap.path / "data/part-00000.parquet").stat().st_size
    assert m["content_hash"].startswith("sha256:") and len(m["content_hash"]) == 7 + 64
    assert m["created"].endswith("Z") and m["aiforge_version"] == __version__
    assert json.loads((snap.path / "manifest.json").read_text()) == m
    assert [s.ref for s in workspace.list_snapshots()] == ["users@v1"]


@pytest.mark.postgres
def test_password_never_stored(workspace, pg_table) -> None:
    dump(PG_URL_WITH_PASSWORD, query=f"SELECT * FROM {pg_table}", name="users", workspace=workspace)
    for path in workspace.home.rglob("*"):
        if path.is_file():
            assert b"s3cret-PW" not in path.read_bytes(), path


@pytest.mark.postgres
def test_versions_increase_and_hash_is_stable(workspace, pg_table) -> None:
    query = f"SELECT * FROM {pg_table} ORDER BY id"
    first = dump(PG_URL, query=query, name="users", workspace=workspace)
    second = dump("postgres://postgres@127.0.0.1:5432/test", query=query, name="users", workspace=workspace)
    other = dump(PG_URL, query=query + " LIMIT 10", name="users", workspace=workspace)

    assert [first.version, second.version, other.version] == [1, 2, 3]
    assert first.manifest["content_hash"] == second.manifest["content_hash"]
    assert other.manifest["content_hash"] != first.manifest["content_hash"]
    assert [s.ref for s in workspace.list_snapshots("users")] == ["users@v1", "users@v2", "users@v3"]
    assert workspace.get_snapshot("users").version == 3


@pytest.mark.postgres
def test_sample_is_reproducible_bernoulli(workspace, pg_table, expected) -> None:
    query = f"SELECT * FROM {pg_table} ORDER BY id"
    a = dump(PG_URL, query=query, name="s", sample_fraction=0.25, seed=7, workspace=workspace)
    b = dump(PG_URL, query=query, name="s", sample_fraction=0.25, seed=7, workspace=workspace)
    c = dump(PG_URL, query=query, name="s", sample_fraction=0.25, seed=8, workspace=workspace)

    keep = np.random.Generator(np.random.PCG64(7)).random(len(expected)) < 0.25
    assert a.to_arrow().equals(expected.filter(pa.array(keep)))
    assert a.rows == int(keep.sum())
    assert a.manifest["sample"] == {"fraction": 0.25, "seed": 7}
    assert a.manifest["content_hash"] == b.manifest["content_hash"]
    assert c.to_arrow()["id"].to_pylist() != a.to_arrow()["id"].to_pylist()


@pytest.mark.postgres
def test_unreachable_postgres_is_a_source_error(workspace, nothing_written) -> None:
    url = "postgresql://postgres:s3cret-PW@127.0.0.1:1/test"
    with pytest.raises(
        SourceError, match=r"^cannot connect to postgresql://postgres@127\.0\.0\.1:1/test: "
    ) as info:
        dump(url, query="SELECT 1", name="x", workspace=workspace)
    assert "s3cret-PW" not in str(info.value)
    nothing_written(workspace)


@pytest.mark.postgres
def test_sql_error_carries_database_message_and_query(workspace, nothing_written) -> None:
    query = "SELECT nope FROM no_such_table_xyz"
    with pytest.raises(QueryError, match=r'relation "no_such_table_xyz" does not exist') as info:
        dump(PG_URL, query=query, name="x", workspace=workspace)
    assert info.value.query == query
    assert str(info.value).endswith(f"\n  query: {query}")
    nothing_written(workspace)


@pytest.mark.postgres
def test_error_mid_stream_leaves_nothing(workspace, nothing_written) -> None:
    # the division fails at row 300000, after the first row groups have been written to a part file
    query = "SELECT g, 1 / (g - 300000) AS boom FROM (SELECT generate_series(1, 400000) AS g) s"
    with pytest.raises(QueryError, match="division by zero"):
        dump(PG_URL, query=query, name="x", workspace=workspace)
    nothing_written(workspace)


@pytest.mark.postgres
def test_empty_result_writes_nothing(workspace, pg_table, nothing_written) -> None:
    with pytest.raises(EmptyResult, match=r"^the query returned no rows from postgresql://postgres@127"):
        dump(PG_URL, query=f"SELECT * FROM {pg_table} WHERE id < 0", name="x", workspace=workspace)
    nothing_written(workspace)


@pytest.mark.postgres
def test_a_bare_numeric_becomes_float64_with_a_note(workspace) -> None:
    """Issue 12: NUMERIC is a number (it was text, so `amount < 0` failed); without a precision, float64."""
    snap = dump(PG_URL, query="SELECT 1.50::numeric AS n, 2::int AS i", name="n", workspace=workspace)
    n, i = snap.manifest["schema"]
    assert (n["name"], n["type"], i) == ("n", "double", {"name": "i", "type": "int32"})
    assert n["note"].startswith("PostgreSQL numeric stored as float64 (double), since it has no declared precision")
    assert snap.to_arrow().to_pylist() == [{"n": 1.5, "i": 2}]


@pytest.mark.postgres
def test_write_failure_is_a_workspace_error(workspace, pg_table, monkeypatch, nothing_written) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    with pytest.raises(
        WorkspaceError, match=r"^cannot write the snapshot files in .*No space left on device"
    ):
        dump(PG_URL, query=f"SELECT * FROM {pg_table}", name="x", workspace=workspace)
    nothing_written(workspace)


# -- MariaDB, SQLite, DuckDB, files --------------------------------------------------------------------------


@pytest.mark.mysql
def test_mysql_round_trip(workspace, mysql_table, expected) -> None:
    snap = dump(MYSQL_URL, query=f"SELECT * FROM {mysql_table} ORDER BY id", name="m", workspace=workspace)
    table = snap.to_arrow()
    assert snap.rows == 1000
    assert table.column_names == expected.column_names
    assert table["id"].to_pylist() == expected["id"].to_pylist()
    assert table["x"].equals(expected["x"]) and table["s"].equals(expected["s"])
    assert table["ts"].cast(pa.timestamp("us")).equals(expected["ts"])
    assert [bool(v) for v in table["b"].to_pylist()] == expected["b"].to_pylist()
    assert snap.manifest["source"] == MYSQL_URL


@pytest.mark.mysql
def test_mysql_sql_error(workspace, nothing_written) -> None:
    with pytest.raises(QueryError, match=r"Table 'test\.no_such_table_xyz' doesn't exist"):
        dump(MYSQL_URL, query="SELECT * FROM no_such_table_xyz", name="m", workspace=workspace)
    nothing_written(workspace)


def test_sqlite_round_trip(workspace, tmp_path, expected) -> None:
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, x REAL, s TEXT)")
        rows = zip(
            expected["id"].to_pylist(), expected["x"].to_pylist(), expected["s"].to_pylist(), strict=True
        )
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.close()
    snap = dump(f"sqlite:///{db}", query="SELECT * FROM t ORDER BY id", name="lite", workspace=workspace)
    assert snap.to_arrow().equals(expected.select(["id", "x", "s"]))
    assert snap.manifest["source"] == f"sqlite:///{db}"


def test_missing_sqlite_file_is_not_created(workspace, tmp_path, nothing_written) -> None:
    db = tmp_path / "missing.db"
    with pytest.raises(SourceError, match=r"^SQLite database file not found: .*missing\.db"):
        dump(f"sqlite:///{db}", query="SELECT 1", name="lite", workspace=workspace)
    assert not db.exists()
    nothing_written(workspace)


def test_duckdb_file_round_trip(workspace, tmp_path, expected) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.register("e", expected)
        con.execute("CREATE TABLE t AS SELECT * FROM e")
    snap = dump(f"duckdb:///{db}", query="SELECT * FROM t ORDER BY id", name="duck", workspace=workspace)
    assert snap.to_arrow().equals(expected)


def test_parquet_glob_defaults_to_all_rows(workspace, parquet_files, expected) -> None:
    snap = dump(str(parquet_files / "*.parquet"), name="files", workspace=workspace)
    assert snap.manifest["query"] == "SELECT * FROM source"
    assert snap.to_arrow().sort_by("id").equals(expected)
    folder = dump(
        parquet_files, query="SELECT count(*) AS n FROM source WHERE b", name="n", workspace=workspace
    )
    assert folder.to_arrow().to_pylist() == [{"n": 334}]


def test_csv_file(workspace, tmp_path) -> None:
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "name"], [1, "a"], [2, "b"]])
    snap = dump(path, name="csv", query="SELECT * FROM source ORDER BY id", workspace=workspace)
    assert snap.to_arrow().to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_corrupt_parquet_is_a_source_error(workspace, tmp_path, nothing_written) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(
        SourceError, match=r"^cannot read parquet file\(s\) .*bad\.parquet: .*really are parquet"
    ):
        dump(bad, name="x", workspace=workspace)
    nothing_written(workspace)


def test_duckdb_sql_error(workspace, parquet_files, nothing_written) -> None:
    with pytest.raises(QueryError, match=r'Referenced column "nope" not found') as info:
        dump(parquet_files, query="SELECT nope FROM source", name="x", workspace=workspace)
    assert info.value.query == "SELECT nope FROM source"
    nothing_written(workspace)


# -- validation happens before anything runs -----------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, True, "0.5", float("nan")])
def test_bad_sample_fraction(workspace, fraction, nothing_written) -> None:
    expected = r"^sample_fraction must be a number with 0 < sample_fraction <= 1 or None; got "
    with pytest.raises(InvalidInput, match=expected):
        dump("postgresql://u:p@127.0.0.1:1/db", query="SELECT 1", name="x", sample_fraction=fraction,
             workspace=workspace)  # fmt: skip
    nothing_written(workspace)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, r"^invalid snapshot name 'bad name'"),
        ({"name": "x", "seed": -1}, r"^seed must be an integer >= 0; got -1"),
        ({"name": "x", "engine": "dask"}, r"^unknown engine 'dask'; expected one of: local, spark"),
        ({"name": "x", "master": "local[2]"}, r"^--master 'local\[2\]' only applies to --engine spark"),
        (
            {"name": "x", "engine": "spark"},
            r"^the spark engine cannot read postgresql://u@127\.0\.0\.1:1/db: ",
        ),
        ({"name": "x", "query": None}, r"^a query is required to dump from postgresql://u@127\.0\.0\.1:1/db"),
    ],
)
def test_validated_before_connecting(workspace, kwargs, message, nothing_written) -> None:
    # the database is unreachable: reaching it would raise SourceError, so these checks come first
    kwargs = {"query": "SELECT 1", **kwargs}
    with pytest.raises(InvalidInput, match=message):
        dump("postgresql://u:p@127.0.0.1:1/db", workspace=workspace, **kwargs)
    nothing_written(workspace)


def test_unknown_scheme(workspace, nothing_written) -> None:
    with pytest.raises(
        UnknownSource, match=r"^unsupported source scheme 'oracle://' .*supported: postgresql://"
    ):
        dump("oracle://scott:tiger@db/orcl", query="SELECT 1", name="x", workspace=workspace)
    nothing_written(workspace)


def test_path_matching_nothing(workspace, tmp_path, nothing_written) -> None:
    with pytest.raises(UnknownSource, match=r"no Parquet/CSV file matches"):
        dump(str(tmp_path / "nothing-*.parquet"), name="x", workspace=workspace)
    nothing_written(workspace)


def test_spark_source_needs_spark_engine(workspace) -> None:
    with pytest.raises(InvalidInput, match=r"^SOURCE 'spark' .* needs --engine spark"):
        dump("spark", query="SELECT 1", name="x", workspace=workspace)


# -- part files ----------------------------------------------------------------------------------------------


def _write_parts(folder: Path, table: pa.Table, batch_rows: int) -> list[dict]:
    writer = _parts.PartWriter(folder, table.schema, rows_per_file=1000, row_group_rows=300)
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write(batch)
    writer.close()
    return _parts.describe_parts(folder)


def test_part_files_roll_and_bytes_do_not_depend_on_batching(tmp_path, expected) -> None:
    table = pa.concat_tables([expected, expected, expected.slice(0, 500)])  # 2500 rows
    a = _write_parts(tmp_path / "a", table, batch_rows=7)
    b = _write_parts(tmp_path / "b", table, batch_rows=1024)
    assert [(f["path"], f["rows"]) for f in a] == [
        ("data/part-00000.parquet", 1000), ("data/part-00001.parquet", 1000), ("data/part-00002.parquet", 500)
    ]  # fmt: skip
    groups = [pq.ParquetFile(tmp_path / "a" / f["path"]).metadata.num_row_groups for f in a]
    assert groups == [4, 4, 2]
    assert _parts.content_hash(tmp_path / "a", a) == _parts.content_hash(tmp_path / "b", b)
    read = pa.concat_tables(pq.read_table(tmp_path / "a" / f["path"]) for f in a)
    assert read.equals(table)


def test_bernoulli_sample_does_not_depend_on_batching(expected) -> None:
    whole = pa.Table.from_batches(list(_parts.bernoulli_sample(expected.to_batches(), 0.3, seed=5)))
    pieces = pa.Table.from_batches(
        list(_parts.bernoulli_sample(expected.to_batches(max_chunksize=13), 0.3, 5))
    )
    assert whole.equals(pieces)
    assert whole.num_rows == int((np.random.Generator(np.random.PCG64(5)).random(1000) < 0.3).sum())


# -- a process killed mid-dump -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_killed_dump_leaves_no_snapshot_and_is_swept(workspace, parquet_files) -> None:
    # a select-list generate_series streams row by row, so part files appear long before the query ends
    query = "SELECT g, md5(g::text) AS h FROM (SELECT generate_series(1, 100000000) AS g) s"
    code = (
        "import aiforge\n"
        f"aiforge.dump({PG_URL!r}, query={query!r}, name='big', workspace={str(workspace.home)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(workspace.tmp_dir.glob("dump-*/data/part-*.parquet")):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dump ended or stalled before writing a part: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    staged = list(workspace.tmp_dir.iterdir())
    assert len(staged) == 1 and staged[0].name.startswith(f"dump-{proc.pid}-")
    assert workspace.list_snapshots() == []
    assert not workspace.snapshots_dir.exists() or list(workspace.snapshots_dir.iterdir()) == []

    snap = dump(parquet_files, name="big", workspace=workspace)  # the next operation sweeps the dead staging
    assert snap.ref == "big@v1"
    assert list(workspace.tmp_dir.iterdir()) == []


# -- CLI -----------------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_dump_list_show_rm(workspace, parquet_files) -> None:
    result = runner.invoke(app, ["dump", str(parquet_files), "--name", "files", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["name"], summary["version"], summary["rows"]) == ("files", 1, 1000)
    assert summary["columns"] == ["id", "x", "s", "ts", "b"]

    result = runner.invoke(
        app, ["dump", str(parquet_files), "-n", "files", "-q", "SELECT id FROM source LIMIT 5"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("files@v2: 5 rows x 1 columns, ")

    listed = json.loads(runner.invoke(app, ["snapshots", "list", "--json"]).stdout)
    assert [(s["name"], s["version"], s["rows"], s["columns"]) for s in listed] == [
        ("files", 1, 1000, ["id", "x", "s", "ts", "b"]), ("files", 2, 5, ["id"])
    ]  # fmt: skip
    assert all(s["created"].endswith("Z") for s in listed)

    shown = json.loads(runner.invoke(app, ["snapshots", "show", "files@v1", "--json"]).stdout)
    assert (shown["name"], shown["version"], shown["rows"], shown["schema"]) == ("files", 1, 1000, SCHEMA)
    assert shown["content_hash"] == workspace.get_snapshot("files@v1").manifest["content_hash"]

    result = runner.invoke(app, ["snapshots", "rm", "files@v1"])
    assert (result.exit_code, result.stdout) == (0, "Removed files@v1\n")
    assert [s.ref for s in workspace.list_snapshots()] == ["files@v2"]
    assert not (workspace.snapshots_dir / "files" / "v1").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["dump", "oracle://u:pw@db/x", "-n", "x", "-q", "SELECT 1"],
            "Error: unsupported source scheme 'oracle://'",
        ),
        (["dump", "nothing.parquet", "-n", "x"], "Error: no Parquet/CSV file matches 'nothing.parquet'"),
        (
            ["dump", "postgresql://u:pw@db/x", "-n", "x"],
            "Error: a query is required to dump from postgresql://u@db/x",
        ),
        (["snapshots", "show", "files@v9"], "Error: snapshot 'files' not found in workspace"),
    ],
)
def test_cli_errors_exit_1_with_one_line(workspace, args, message) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr and ":pw@" not in result.stderr
    assert workspace.list_snapshots() == []


def test_failed_dump_leaves_existing_versions_alone(workspace, parquet_files) -> None:
    first = dump(parquet_files, name="files", workspace=workspace, progress=True)
    with pytest.raises(QueryError):
        dump(parquet_files, query="SELECT nope FROM source", name="files", workspace=workspace)
    assert [s.ref for s in workspace.list_snapshots()] == ["files@v1"]
    assert sorted(p.name for p in (workspace.snapshots_dir / "files").iterdir()) == ["v1"]
    assert workspace.get_snapshot("files@v1").manifest == first.manifest
    assert dump(parquet_files, name="files", workspace=workspace).ref == "files@v2"


def test_import_aiforge_does_not_import_pyspark() -> None:
    code = "import sys, aiforge, aiforge.dump._dump; print('pyspark' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False\n"


@pytest.mark.postgres
def test_connection_lost_mid_stream_is_a_source_error(workspace, nothing_written) -> None:
    # the server process ends itself at row 200000, after the first part file has been started
    query = (
        "SELECT g, CASE WHEN g = 200000 THEN pg_terminate_backend(pg_backend_pid()) END AS t "
        "FROM (SELECT generate_series(1, 400000) AS g) s"
    )
    with pytest.raises(SourceError, match=r"^lost the connection to postgresql://postgres@127\.0\.0\.1:5432/test"):
        dump(PG_URL, query=query, name="x", workspace=workspace)
    nothing_written(workspace)


def test_real_write_failure_is_a_workspace_error(workspace, tmp_path, nothing_written) -> None:
    # the kernel refuses writes past 1 MB (RLIMIT_FSIZE), as a full disk would, half-way through the part file
    source = tmp_path / "in.parquet"
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"x": [rng.bytes(16).hex() for _ in range(200_000)]}), source)  # ~6 MB, random
    code = (
        "import resource, signal, aiforge\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    aiforge.dump({str(source)!r}, name='x', workspace={str(workspace.home)!r})\n"
        "except aiforge.WorkspaceError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.startswith(f"cannot write the snapshot files in {workspace.home}: [Errno 27]")
    assert "File too large" in result.stdout
    nothing_written(workspace)


def test_queries_on_parquet_see_nan_values(workspace, tmp_path) -> None:
    # Parquet statistics carry no NaN; DuckDB 2.0 folds isnan() to false from them unless told not to
    values = np.arange(10, dtype=float)
    values[3] = np.nan
    pq.write_table(pa.table({"id": np.arange(10), "x": values}), tmp_path / "nan.parquet")
    snap = dump(str(tmp_path / "nan.parquet"), query="SELECT id FROM source WHERE isnan(x)", name="nan",
                workspace=workspace)
    assert snap.to_arrow().column("id").to_pylist() == [3]
    counted = dump(str(tmp_path / "nan.parquet"), query="SELECT sum(isnan(x)::INT) AS n FROM source", name="n",
                   workspace=workspace)
    assert counted.to_arrow().column("n").to_pylist() == [1]


# -- issue 11: what a snapshot cannot hold is refused before anything is written ----------------------------

_DUPLICATE = (
    r"^the query's result has duplicate column names: 'a' \(columns 1, 2\)\. A snapshot needs a different name "
    r"for each column \(names that differ only in case count as the same\): give them aliases, for example "
    r"SELECT \.\.\. AS a_1, \.\.\. AS a_2\n"
)


def _sqlite_db(tmp_path: Path) -> str:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    return f"sqlite:///{db}"


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("files", id="duckdb-files"),
        pytest.param(PG_URL, id="postgres", marks=pytest.mark.postgres),
        pytest.param(MYSQL_URL, id="mysql", marks=pytest.mark.mysql),
    ],
)
def test_duplicate_column_names_are_refused(workspace, tmp_path, parquet_files, nothing_written, source) -> None:
    source = {"sqlite": _sqlite_db(tmp_path), "files": str(parquet_files)}.get(source, source)
    query = "SELECT 1 AS a, 2 AS a"
    with pytest.raises(QueryError, match=_DUPLICATE) as info:
        dump(source, query=query, name="dup", workspace=workspace)
    assert info.value.query == query
    nothing_written(workspace)


def test_column_names_that_differ_only_in_case_are_refused(workspace, tmp_path, nothing_written) -> None:
    # DuckDB and Spark, which read snapshots, would see 'A' as 'a' (DuckDB renames it A_1)
    query = "SELECT 1 AS id, 2 AS a, 3 AS ID, 4 AS A, 5 AS a"
    with pytest.raises(
        QueryError,
        match=r"^the query's result has duplicate column names: 'id', 'ID' \(columns 1, 3\); 'a', 'A' "
        r"\(columns 2, 4, 5\)\. A snapshot needs",
    ):
        dump(_sqlite_db(tmp_path), query=query, name="dup", workspace=workspace)
    nothing_written(workspace)


def test_cli_duplicate_columns_is_one_error(workspace, tmp_path) -> None:
    result = runner.invoke(app, ["dump", _sqlite_db(tmp_path), "-n", "dup", "-q", "SELECT 1 AS a, 2 AS a"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the query's result has duplicate column names: 'a' (columns 1, 2).")
    assert "Traceback" not in result.stderr
    assert workspace.list_snapshots() == []


# -- issue 11: a CSV whose rows do not match its header ------------------------------------------------------

RAGGED = "a,b\n1,2\n3,4\n5\n"


def _ragged(tmp_path: Path, text: str = RAGGED, name: str = "rag.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ragged_csv_is_an_error_naming_file_and_line(workspace, tmp_path, nothing_written) -> None:
    path = _ragged(tmp_path)
    with pytest.raises(SourceError) as info:
        dump(path, name="rag", workspace=workspace)
    assert str(info.value) == (
        f"CSV file {path}, line 4: expected 2 fields like the header, found 1 ('5'); 1 line in all does not "
        "match the header. Fix the file, or read it leniently with --ragged-csv pad (missing fields become "
        "NULL, extra ones are dropped) or --ragged-csv skip (those lines are left out)"
    )
    nothing_written(workspace)


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        # a bad line far beyond what the sniffer samples, too long rather than too short
        ("a,b\n" + "1,2\n" * 30_000 + "5,6,7\n", 30_002, "expected 2 fields like the header, found 3 ('5,6,7')"),
        # a tab-separated file with a short line
        ("a\tb\n1\t2\n3\n", 3, "expected 2 fields like the header, found 1 ('3')"),
    ],
)
def test_ragged_csv_anywhere_is_an_error(workspace, tmp_path, nothing_written, text, line, detail) -> None:
    path = _ragged(tmp_path, text, "rag.tsv" if "\t" in text else "rag.csv")
    with pytest.raises(SourceError, match=rf"^CSV file {path}, line {line}: {re.escape(detail)}; 1 line in all"):
        dump(path, name="rag", workspace=workspace)
    nothing_written(workspace)


def test_ragged_csv_pad_and_skip(workspace, tmp_path, caplog) -> None:
    path = _ragged(tmp_path, "a,b\n1,2\n3,4,9\n5\n")
    padded = dump(path, name="pad", query="SELECT * FROM source", ragged_csv="pad", workspace=workspace)
    assert padded.to_arrow().to_pylist() == [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": None}]
    with caplog.at_level(logging.WARNING, logger="aiforge"):
        skipped = dump(path, name="skip", ragged_csv="skip", workspace=workspace)
    assert skipped.to_arrow().to_pylist() == [{"a": 1, "b": 2}]
    assert f"skipped 2 lines of CSV file(s) {path} whose fields do not match the header (first: {path}, line 3)" in (
        caplog.text
    )


def test_ragged_csv_option_needs_a_csv_source(workspace, parquet_files, nothing_written) -> None:
    with pytest.raises(InvalidInput, match=r"^--ragged-csv pad applies to CSV files only; .* is parquet"):
        dump(parquet_files, name="x", ragged_csv="pad", workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^ragged_csv must be 'error', 'pad' or 'skip'; got 'lenient'$"):
        dump(parquet_files, name="x", ragged_csv="lenient", workspace=workspace)
    nothing_written(workspace)


def test_cli_ragged_csv(workspace, tmp_path) -> None:
    path = _ragged(tmp_path)
    result = runner.invoke(app, ["dump", str(path), "-n", "rag"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: CSV file {path}, line 4: expected 2 fields like the header, found 1")
    result = runner.invoke(app, ["dump", str(path), "-n", "rag", "--ragged-csv", "pad", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 3
    assert "--ragged-csv" in runner.invoke(app, ["dump", "--help"]).stdout


# -- issue 11: a wrong MariaDB password ----------------------------------------------------------------------


@pytest.mark.mysql
def test_wrong_mysql_password_fails_fast_with_one_line(workspace) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "aiforge", "dump", "mysql://root:wrong-PW@127.0.0.1:3306/test", "-q", "SELECT 1",
         "-n", "m"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # no driver log lines (r2d2 printed seven)
    assert lines[0].startswith(
        "Error: cannot connect to mysql://root@127.0.0.1:3306/test: Access denied for user 'root'@"
    )
    assert "wrong-PW" not in result.stderr
    print(f"wrong password: failed in {took:.2f} s")  # measured, not asserted (it was 31 s)
    assert workspace.list_snapshots() == []


@pytest.mark.mysql
def test_mysql_driver_logs_nothing_on_the_terminal() -> None:
    # the driver's pool logs every failed attempt straight to the terminal; aiforge loads it with its log off.
    # A failing connection is made in a thread and the process ends before the pool's 30 s of retries are over.
    code = (
        "import os, threading, time\n"
        "from aiforge.engines.local import connectorx_module\n"
        "cx = connectorx_module()\n"
        "url = 'mysql://root:wrong-PW@127.0.0.1:3306/test'\n"
        "threading.Thread(target=lambda: cx.read_sql(url, 'SELECT 1'), daemon=True).start()\n"
        "time.sleep(3)\n"
        "os._exit(0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
