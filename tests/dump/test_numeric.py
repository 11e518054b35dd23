"""PostgreSQL NUMERIC dumps as a number, and every stage after DUMP reads it as one (issue 12).

``numeric(p,s)`` becomes ``decimal128(p, s)``; a bare ``numeric``, one wider than 38 digits, or one that holds NaN
becomes float64 with a note in the manifest. The guide's own example (a PostgreSQL ``orders`` table, a BATCH spec
with ``amount < 0``) runs on the snapshot; a snapshot dumped before, where NUMERIC was text, still works, and the
error for ``amount < 0`` on it names the column and the cast instead of repeating the rule.
"""

from __future__ import annotations

import decimal
import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge import dump
from aiforge.analyze import analyze
from aiforge.batch import batch
from aiforge.clean import clean
from aiforge.errors import InvalidInput

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
N = 300


def _amount(i: int) -> str:
    """-5.00 .. 99.94, two decimals, a NULL every 50 rows: text ordering and number ordering differ."""
    return f"{(i * 37 % 10495) / 100 - 5:.2f}"


@pytest.fixture
def pg_orders() -> Iterator[str]:
    """The guide's ``orders``: ``amount numeric(10,2)`` from -5.00 to 99.94, ``total numeric`` without precision."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"aiforge_numeric_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.orders (order_id int, amount numeric(10,2), total numeric, returned boolean)"
        )
        rows = [(i, None if i % 50 == 7 else _amount(i), f"{i}.125", i % 3 == 0) for i in range(N)]
        rows[1] = (1, "-5.00", "1.125", False)
        rows[2] = (2, "99.94", "2.125", True)
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {schema}.orders VALUES (%s, %s, %s, %s)", rows)
        try:
            yield f"{schema}.orders"
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _expected_amounts() -> list[decimal.Decimal | None]:
    values = [None if i % 50 == 7 else decimal.Decimal(_amount(i)) for i in range(N)]
    values[1], values[2] = decimal.Decimal("-5.00"), decimal.Decimal("99.94")
    return values


@pytest.mark.postgres
def test_declared_numeric_is_a_decimal_with_every_digit(workspace, pg_orders) -> None:
    snap = dump(PG_URL, query=f"SELECT order_id, amount FROM {pg_orders} ORDER BY order_id", name="orders",
                workspace=workspace)  # fmt: skip
    assert snap.manifest["schema"][1] == {"name": "amount", "type": "decimal128(10, 2)"}
    assert snap.to_arrow().column("amount").to_pylist() == _expected_amounts()


@pytest.mark.postgres
def test_bare_numeric_is_float64_with_nan_and_infinity_and_a_note(workspace) -> None:
    query = (
        "SELECT v::numeric AS v, k FROM (VALUES (1, '1.125'), (2, 'NaN'), (3, 'Infinity'), (4, '-Infinity'), "
        "(5, NULL), (6, '-5.00')) t(k, v) ORDER BY k"
    )
    snap = dump(PG_URL, query=query, name="n", workspace=workspace)
    column = snap.manifest["schema"][0]
    assert column["type"] == "double"
    assert "no declared precision" in column["note"] and "NaN and Infinity are kept" in column["note"]
    values = snap.to_arrow().column("v").to_pylist()
    assert values[0] == 1.125 and math.isnan(values[1])
    assert values[2:] == [math.inf, -math.inf, None, -5.0]
    from typer.testing import CliRunner

    from aiforge.cli import app

    shown = CliRunner().invoke(app, ["--home", str(workspace.home), "snapshots", "show", "n"]).stdout
    assert f"    v                             double  ({column['note']})" in shown.splitlines()  # not --json only


@pytest.mark.postgres
def test_numeric_a_decimal_cannot_hold_is_float64_with_a_note(workspace) -> None:
    query = "SELECT 12345.67::numeric(40,2) AS wide, 1234::numeric(3,-2) AS hundreds"
    snap = dump(PG_URL, query=query, name="n", workspace=workspace)
    wide, hundreds = snap.manifest["schema"]
    assert (wide["type"], hundreds["type"]) == ("double", "double")
    assert "PostgreSQL numeric(40,2) stored as float64" in wide["note"]
    assert "at most 38 digits" in wide["note"]
    assert "PostgreSQL numeric(3,-2) stored as float64" in hundreds["note"]
    assert snap.to_arrow().to_pylist() == [{"wide": 12345.67, "hundreds": 1200.0}]


@pytest.mark.postgres
def test_nan_in_a_declared_numeric_dumps_it_again_as_float64(workspace, caplog) -> None:
    # the NaN is the last of 200,000 rows, in the driver's third batch (the padding makes batches of ~74,000
    # rows): a row group of decimals was written before it showed up
    query = (
        "SELECT k, CASE WHEN k = 200000 THEN 'NaN'::numeric(10,2) ELSE (k % 1000 - 5)::numeric(10,2) END AS amount, "
        "repeat('x', 200) AS pad FROM generate_series(1, 200000) k ORDER BY k"
    )
    with caplog.at_level("INFO", logger="aiforge.dump._dump"):
        snap = dump(PG_URL, query=query, name="nan", workspace=workspace)
    assert "column 'amount' holds NaN, which a decimal cannot: dumping again with it as float64" in caplog.text
    column = snap.manifest["schema"][1]
    assert column["type"] == "double"
    assert column["note"].startswith("PostgreSQL numeric(10,2) stored as float64 (double), since it holds NaN")
    assert snap.rows == 200_000
    table = snap.to_arrow()
    amounts = table.column("amount").to_pylist()
    assert table.column("k").to_pylist() == list(range(1, 200_001))
    assert amounts[:3] == [-4.0, -3.0, -2.0] and math.isnan(amounts[-1])
    assert not workspace.tmp_dir.exists() or not list(workspace.tmp_dir.iterdir())


GUIDE_SPEC = {
    "input": "orders",
    "output": "orders_features",
    "id": "order_id",
    "label": "returned",
    "drop": [{"where": "amount < 0"}, {"issue": "invalid_values"}],
    "features": [
        {"numeric": {"column": "amount", "clip": [0, 1000], "log1p": True, "scale": "standardize"}},
        {"numeric": {"column": "total", "name": "total_b", "bucketize": {"bins": 4}}},
    ],
}


def _negative() -> int:
    return sum(1 for v in _expected_amounts() if v is not None and v < 0)


@pytest.mark.postgres
def test_guide_spec_runs_on_the_postgres_dump(workspace, pg_orders) -> None:
    dump(PG_URL, query=f"SELECT * FROM {pg_orders}", name="orders", workspace=workspace)
    feats = batch(GUIDE_SPEC, workspace=workspace)
    dropped = [d["rows"] for d in feats.dropped]
    assert dropped == [_negative(), sum(1 for v in _expected_amounts() if v is None)]
    assert dropped[0] > 0
    assert feats.rows == N - sum(dropped)


@pytest.mark.postgres
@pytest.mark.spark
def test_guide_spec_gives_the_same_rows_on_spark(workspace, pg_orders, spark) -> None:
    dump(PG_URL, query=f"SELECT * FROM {pg_orders}", name="orders", workspace=workspace)
    local = batch(GUIDE_SPEC, workspace=workspace)
    on_spark = batch(GUIDE_SPEC, workspace=workspace, engine="spark")
    assert on_spark.dropped == local.dropped
    x_local, _ = local.to_numpy("train")
    x_spark, _ = on_spark.to_numpy("train")
    assert x_spark.shape == x_local.shape
    assert abs(x_spark - x_local).max() <= 1e-6


@pytest.mark.postgres
def test_analyze_reads_the_decimal_as_numbers(workspace, pg_orders) -> None:
    dump(PG_URL, query=f"SELECT * FROM {pg_orders}", name="orders", workspace=workspace)
    report = analyze("orders", workspace=workspace)
    amount = next(c for c in report.columns if c["name"] == "amount")
    assert amount["kind"] == "numeric"
    assert (amount["min"]["value"], amount["max"]["value"]) == (-5.0, 99.94)
    expected = [float(v) for v in _expected_amounts() if v is not None]
    assert amount["mean"]["value"] == pytest.approx(sum(expected) / len(expected), rel=1e-12)
    assert not [i for i in report.issues if i["column"] == "amount" and i["type"] == "numbers_as_text"]


def test_clean_takes_decimal_columns_as_features(workspace) -> None:
    # MySQL DECIMAL and PostgreSQL numeric(p,s) snapshots hold decimals: a checker reads them as numbers
    rows = 60
    table = pa.table({
        "amount": pa.array([decimal.Decimal(f"{(i % 2) * 10 + i % 3}.25") for i in range(rows)], pa.decimal128(10, 2)),
        "label": [str(i % 2) for i in range(rows)],
    })  # fmt: skip
    result = clean(table, label="label", method="split", workspace=workspace, seed=0)
    assert result.snapshot.rows == rows
    assert result.report["features"] == ["amount"]


def test_old_snapshot_with_numeric_as_text_names_the_column_and_the_cast(workspace, tmp_path: Path) -> None:
    # dumped before DUMP kept NUMERIC a number: amount is text
    amounts = [None if v is None else str(v) for v in _expected_amounts()]
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"order_id": range(N), "amount": pa.array(amounts, pa.string()),
                             "total": [i + 0.125 for i in range(N)], "returned": [i % 3 == 0 for i in range(N)]}),
                   path)  # fmt: skip
    dump(path, name="orders", workspace=workspace)
    spec = {**GUIDE_SPEC, "features": [{"categorical": {"column": "amount"}}]}
    with pytest.raises(InvalidInput) as info:
        batch(spec, workspace=workspace)
    message = str(info.value)
    assert message.startswith("drop[0].where: cannot evaluate 'amount < 0' on the snapshot: ")
    assert "column 'amount' holds text (type string), not numbers" in message
    assert "for example 'CAST(amount AS DOUBLE) < 0'" in message
    assert "for example 'amount < 0'" not in message
    assert "\n" not in message
    # the cast it suggests works, and drops the same rows as the decimal column does
    spec["drop"] = [{"where": "CAST(amount AS DOUBLE) < 0"}, {"issue": "invalid_values"}]
    assert batch(spec, workspace=workspace).dropped[0]["rows"] == _negative()
