"""Exact tests of the BATCH plan (``batch/_plan.py``) that kill the mutants surviving the BATCH tests (issue 11):
the SQL each engine runs, counted by DuckDB on hand-made rows, and the Spark-only paths (quoting, ``percentile``,
``explode``, the ``quantiles`` callback, variable-size output lists) checked on the SQL text and in-process."""

from __future__ import annotations

import math
import re
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from aiforge.batch import _plan as plan
from aiforge.batch._encoders import split_codes
from aiforge.batch.spec import load_spec
from aiforge.batch.transform import Transform


def spec_of(**changes: Any) -> Any:
    base: dict[str, Any] = {"input": "t", "output": "o", "id": "id", "features": [{"numeric": {"column": "x"}}]}
    return load_spec({**base, **changes})


def duck(table: pa.Table) -> Any:
    con = duckdb.connect()
    con.register("source", table)
    return con


# -- quoting and the drop rules' SQL ------------------------------------------------------------------------------


def test_quote_doubles_the_engines_quote_character() -> None:
    assert plan.quote('a"b', "local") == '"a""b"'
    assert plan.quote("a`b", "local") == '"a`b"'
    assert plan.quote("a`b", "spark") == "`a``b`"
    assert plan.quote('a"b', "spark") == '`a"b`'


@pytest.mark.parametrize("kind", [pa.float64(), pa.float32(), pa.float16()])
def test_every_arrow_float_type_is_tested_for_nan_and_infinity(kind: pa.DataType) -> None:
    # str() of Arrow's float types: double, float, halffloat; numpy-style names too
    assert plan._is_float(str(kind))
    for name in ("float64", "float32", "float16"):
        assert plan._is_float(name)
    for name in ("int64", "decimal128(10, 2)", "string", ""):
        assert not plan._is_float(name)


def test_invalid_values_sql_on_both_engines() -> None:
    spec = spec_of(
        label="y",
        drop=[{"issue": "invalid_values", "columns": ["x", "n"]}, {"issue": "invalid_values"}],
        features=[{"numeric": {"column": "x"}}, {"numeric": {"column": "n"}}],
    )
    types = {"id": "int64", "y": "int64", "x": "float", "n": "int64"}
    inf = " = CAST('Infinity' AS DOUBLE) OR "
    minf = " = CAST('-Infinity' AS DOUBLE)"
    assert plan.drop_conditions(spec, types, "local") == [
        f'COALESCE(("x" IS NULL OR isnan("x") OR "x"{inf}"x"{minf} OR "n" IS NULL), FALSE)',
        # no columns: every column the spec uses (id, label, features)
        f'COALESCE(("id" IS NULL OR "y" IS NULL OR "x" IS NULL OR isnan("x") OR "x"{inf}"x"{minf} OR "n" IS NULL), '
        "FALSE)",
    ]
    assert plan.drop_conditions(spec, types, "spark")[0] == (
        f"COALESCE((`x` IS NULL OR isnan(`x`) OR `x`{inf}`x`{minf} OR `n` IS NULL), FALSE)"
    )


def test_where_and_duplicate_rules() -> None:
    spec = spec_of(drop=[{"where": "x < 0"}, {"issue": "duplicate_rows"}])
    assert plan.drop_conditions(spec, {}, "local") == ["COALESCE((x < 0), FALSE)", None]


TABLE = pa.table(
    {
        "id": pa.array([1, 2, 3, 4, 5, 6, 7, 8], pa.int64()),
        # 3: -1 (negative), 4: NaN, 5: inf, 6: -inf, 7: null, 8: -2 (negative); float32 like a dumped REAL column
        "x": pa.array([1.0, 2.0, -1.0, math.nan, math.inf, -math.inf, None, -2.0], pa.float32()),
        "big": pa.array([0, 0, 0, 9, 9, 0, 0, 0], pa.int64()),
    }
)


def test_one_pass_count_gives_each_rule_what_no_earlier_rule_dropped() -> None:
    spec = spec_of(
        drop=[{"where": "x < 0"}, {"issue": "invalid_values", "columns": ["x"]}, {"where": "big > 5"}],
    )
    types = {name: str(TABLE.schema.field(name).type) for name in TABLE.column_names}
    conditions = plan.drop_conditions(spec, types, "local")
    con = duck(TABLE)
    query = plan.count_query(conditions, "source")
    assert query.startswith("SELECT COUNT(*), SUM(CASE WHEN NOT (FALSE) AND ")
    row = con.execute(query).fetchall()[0]
    # x < 0 drops ids 3, 6 (-inf), 8; invalid drops 4, 5, 7 (6 is gone already); big > 5 drops none left (4, 5 gone)
    assert plan.dropped_per_rule(row, conditions) == (8, [3, 3, 0])
    kept = con.execute(plan.kept_query(spec, conditions, "source", "local")).fetchall()
    assert sorted(kept) == [(1, 1.0), (2, 2.0)]


def test_counts_through_the_stages_when_a_rule_removes_duplicates() -> None:
    table = pa.concat_tables([TABLE, TABLE.slice(0, 2), TABLE.slice(0, 1)])  # ids 1, 2, 1 again
    spec = spec_of(drop=[{"where": "x < 0"}, {"issue": "duplicate_rows"}, {"issue": "invalid_values"}])
    types = {name: str(table.schema.field(name).type) for name in table.column_names}
    conditions = plan.drop_conditions(spec, types, "local")
    con = duck(table)
    query = plan.count_query(conditions, "source")
    assert query.startswith("WITH s0 AS (SELECT * FROM source), s1 AS (SELECT * FROM s0 WHERE NOT ")
    assert "s2 AS (SELECT DISTINCT * FROM s1)" in query
    row = con.execute(query).fetchall()[0]
    assert tuple(row) == (11, 8, 5, 2)
    assert plan.dropped_per_rule(row, conditions) == (11, [3, 3, 3])
    kept_sql = plan.kept_query(spec, conditions, "source", "local")
    assert kept_sql.endswith(' SELECT "id", "x" FROM s3 ORDER BY ALL')
    assert con.execute(kept_sql).fetchall() == [(1, 1.0), (2, 2.0)]
    assert not plan.kept_query(spec, conditions, "source", "spark").endswith("ORDER BY ALL")


def test_kept_query_without_rules_and_without_duplicates() -> None:
    assert plan.kept_query(spec_of(), [], "src", "local") == 'SELECT "id", "x" FROM src'
    spec = spec_of(drop=[{"where": "x < 0"}])
    assert plan.kept_query(spec, ["c"], "src", "local") == (
        'WITH s0 AS (SELECT * FROM src), s1 AS (SELECT * FROM s0 WHERE NOT c) SELECT "id", "x" FROM s1'
    )


def test_dropped_per_rule_reads_null_sums_as_zero() -> None:
    # SUM over no rows is NULL: an empty input drops nothing
    assert plan.dropped_per_rule((0, None, None), ["a", "b"]) == (0, [0, 0])
    assert plan.dropped_per_rule((10, 8, 8, 5), ["a", None, "b"]) == (10, [2, 0, 3])


def test_scan_kept_is_rows_in_less_every_drop() -> None:
    assert plan.Scan(rows_in=10, dropped=[3, 2], stats={}).kept == 5


def test_a_bad_rule_is_reported_at_its_position_and_a_good_one_is_not() -> None:
    # only the where rules are tried: the SQL of duplicate_rows and invalid_values is the plan's own
    spec = spec_of(
        drop=[
            {"issue": "duplicate_rows"},
            {"issue": "invalid_values", "columns": ["x"]},
            {"where": "x < 0"},
            {"where": "nope > 1"},
        ]
    )
    conditions = plan.drop_conditions(spec, {}, "local")
    con = duck(TABLE)
    seen: list[str] = []

    def run(sql: str) -> list[tuple[Any, ...]]:
        seen.append(sql)
        return con.execute(sql).fetchall()

    with pytest.raises(Exception, match=r"^drop\[3\]\.where: cannot evaluate 'nope > 1' on the snapshot: "):
        plan.check_predicates(run, spec, conditions, "source")
    assert seen == [
        "SELECT COUNT(*) FROM (SELECT * FROM source LIMIT 0) x WHERE COALESCE((x < 0), FALSE)",
        "SELECT COUNT(*) FROM (SELECT * FROM source LIMIT 0) x WHERE COALESCE((nope > 1), FALSE)",
    ]
    # with the snapshot's types, the message lists its columns; a rule comparing a text column with a number
    # names the cast
    with pytest.raises(
        Exception, match=r"; write a SQL predicate over the snapshot's columns: id \(int64\), x \(float\)$"
    ):
        plan.check_predicates(run, spec, conditions, "source", {"id": "int64", "x": "float"})
    text = spec_of(drop=[{"where": "big < 0"}])
    con.register("texts", pa.table({"big": ["1", "x"]}))
    with pytest.raises(Exception, match=r"for example 'CAST\(big AS DOUBLE\) < 0'"):
        plan.check_predicates(run, text, plan.drop_conditions(text, {}, "local"), "texts", {"big": "string"})
    # the engine's message is cut to its first line; a message that is empty gives the exception's type
    first = 'on the snapshot: Binder Error: Referenced column "nope" not found in FROM clause!; write a SQL predicate'
    with pytest.raises(Exception, match=re.escape(first)):
        plan.check_predicates(run, spec, conditions, "source")

    def silent(sql: str) -> list[tuple[Any, ...]]:
        raise RuntimeError("  ")

    with pytest.raises(Exception, match=r"^drop\[2\]\.where: cannot evaluate 'x < 0' on the snapshot: RuntimeError; "):
        plan.check_predicates(silent, spec, conditions, "source")
    # one condition per rule, or the call is wrong
    with pytest.raises(ValueError, match="zip"):
        plan.check_predicates(run, spec, conditions[:2], "source")


# -- statistics ---------------------------------------------------------------------------------------------------

FEATURES: list[dict[str, Any]] = [
    {"numeric": {"column": "x", "bucketize": {"bins": 4}, "impute": "median"}},
    {"categorical": {"column": "c", "encoding": "ordinal", "impute": "most_frequent"}},
    {"text": {"column": "s"}},
    {"numeric": {"column": "x", "name": "x_mean", "impute": "mean"}},
    {"categorical": {"column": "c", "name": "c_h", "encoding": "hash", "buckets": 4}},
    {"categorical": {"column": "c", "name": "c_1", "top_k": 1}},
    {"numeric": {"column": "x", "name": "x_0", "impute": "constant", "fill_value": 0}},
]
ROWS = pa.table(
    {
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, None],
        "c": ["a", "b", "b", None, "a", "c", "c", "c", "a"],
        "s": ["a b", "b", "c", None, "a", "a", "b", "b", "a"],
        "y": ["n", "y", "n", "n", "y", "y", "n", "y", "n"],
    }
)


def prepared() -> tuple[Transform, Any]:
    t = Transform(features=FEATURES).fit(ROWS)
    table = pa.Table.from_batches([t.prepare(ROWS)]).append_column("__label", ROWS.column("y"))
    con = duckdb.connect()
    con.register("prep", table)
    return t, con


def exact_quantiles(con: Any, column: str, probabilities: list[float], count: int) -> list[float]:
    """What the Spark engine does: the values at the ranks :func:`ranks_needed` names, then :func:`interpolate`."""
    values = [v for (v,) in con.execute(f"SELECT {column} FROM prep WHERE {column} IS NOT NULL ORDER BY 1").fetchall()]
    return plan.interpolate({r: values[r] for r in plan.ranks_needed(probabilities, count)}, probabilities, count)


EXPECTED: dict[str, Any] = {
    "rows": 9,
    "label_classes": 2,
    "label_example": "n",
    # x = 1..8: mean 4.5, population std sqrt(5.25), quartiles at (n - 1) p = 1.75, 3.5, 5.25
    "numeric": {
        "0": {"count": 8, "mean": 4.5, "std": math.sqrt(5.25), "min": 1.0, "max": 8.0, "quantiles": [2.75, 4.5, 6.25]},
        "3": {"count": 8, "mean": 4.5, "std": math.sqrt(5.25), "min": 1.0, "max": 8.0, "quantiles": None},
        "6": {"count": 8, "mean": 4.5, "std": math.sqrt(5.25), "min": 1.0, "max": 8.0, "quantiles": None},
    },
    # a: 3, b: 2, c: 3 -> by count, then by value; onehot top_k 1 keeps one
    "counts": {"1": [["a", 3], ["c", 3], ["b", 2]], "5": [["a", 3]]},
    # documents per token: a 4 (a b, a, a, a), b 4, c 1
    "df": {"2": [["a", 4], ["b", 4], ["c", 1]]},
    # median of 1..8 is 4.5; most frequent category: a and c have 3, the smallest wins; mean 4.5
    "impute": {"0": 4.5, "1": "a", "3": 4.5},
}


def assert_stats(got: dict[str, Any]) -> None:
    assert got.keys() == EXPECTED.keys()
    for key in ("rows", "label_classes", "label_example", "counts", "df", "impute"):
        assert got[key] == EXPECTED[key], key
    assert got["numeric"].keys() == EXPECTED["numeric"].keys()
    for key, want in EXPECTED["numeric"].items():
        have = got["numeric"][key]
        assert have == {**want, "std": pytest.approx(want["std"], rel=1e-12)}, key
    assert isinstance(got["impute"]["0"], float) and isinstance(got["impute"]["1"], str)


def test_statistics_by_hand_with_the_sql_quantiles() -> None:
    t, con = prepared()
    assert_stats(plan.collect_statistics(lambda sql: con.execute(sql).fetchall(), t, "prep", "local", True))


def test_statistics_by_hand_with_the_quantiles_callback() -> None:
    t, con = prepared()
    calls: list[tuple[str, list[float], int]] = []

    def quantiles(column: str, probabilities: list[float], count: int) -> list[float]:
        calls.append((column, list(probabilities), count))
        return exact_quantiles(con, column, probabilities, count)

    queries: list[str] = []

    def run(sql: str) -> list[tuple[Any, ...]]:
        queries.append(sql)
        return con.execute(sql).fetchall()

    assert_stats(plan.collect_statistics(run, t, "prep", "local", True, quantiles=quantiles))
    # the bucket edges and the median come from the callback, never from a SQL quantile
    assert calls == [("n0", [0.25, 0.5, 0.75], 8), ("r0", [0.5], 8)]
    assert not any("quantile" in q for q in queries)
    assert queries[0].endswith(
        "MAX(n0), NULL, COUNT(n3), AVG(n3), STDDEV_POP(n3), MIN(n3), MAX(n3), NULL, "
        "COUNT(n6), AVG(n6), STDDEV_POP(n6), MIN(n6), MAX(n6), NULL FROM prep"
    )


def test_without_label_the_statistics_have_no_label_keys() -> None:
    t, con = prepared()
    got = plan.collect_statistics(lambda sql: con.execute(sql).fetchall(), t, "prep", "local", False)
    assert "label_classes" not in got and "label_example" not in got
    assert got["numeric"]["0"]["quantiles"] == [2.75, 4.5, 6.25] and got["rows"] == 9


class Recorder:
    """A Spark SQL stand-in: records each query and answers with canned rows by its start."""

    def __init__(self, answers: dict[str, list[tuple[Any, ...]]]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    def __call__(self, sql: str) -> list[tuple[Any, ...]]:
        self.queries.append(sql)
        return next(rows for start, rows in self.answers.items() if sql.startswith(start))


def test_spark_sql_of_the_statistics() -> None:
    t = Transform(features=FEATURES[:4]).fit(ROWS)
    answers: dict[str, list[tuple[Any, ...]]] = {
        "SELECT COUNT(*), COUNT(DISTINCT": [
            (9, 2, "n", 8, 4.5, 2.0, 1.0, 8.0, [2.75, 4.5, 6.25], 8, 4.5, 2.0, 1.0, 8.0, None)
        ],
        "SELECT c1,": [("a", 3)],
        "SELECT tok,": [("a", 4)],
        "SELECT percentile(r0": [(4.5,)],
        "SELECT AVG(r3)": [(4.5,)],
    }
    run = Recorder(answers)
    got = plan.collect_statistics(run, t, "v", "spark", True)
    assert run.queries == [
        "SELECT COUNT(*), COUNT(DISTINCT __label), MIN(__label), COUNT(n0), AVG(n0), STDDEV_POP(n0), MIN(n0), "
        "MAX(n0), percentile(n0, array(0.25, 0.5, 0.75)), COUNT(n3), AVG(n3), STDDEV_POP(n3), MIN(n3), MAX(n3), "
        "NULL FROM v",
        "SELECT c1, COUNT(*) AS n FROM v WHERE c1 IS NOT NULL GROUP BY c1 ORDER BY n DESC, c1",
        "SELECT tok, COUNT(*) AS n FROM (SELECT explode(t2) AS tok FROM v) x GROUP BY tok HAVING COUNT(*) >= 1 "
        "ORDER BY n DESC, tok LIMIT 1000",
        "SELECT percentile(r0, 0.5) FROM v",
        "SELECT c1, COUNT(*) AS n FROM v WHERE c1 IS NOT NULL GROUP BY c1 ORDER BY n DESC, c1 LIMIT 1",
        "SELECT AVG(r3) FROM v",
    ]
    assert got["numeric"]["0"] == {
        "count": 8,
        "mean": 4.5,
        "std": 2.0,
        "min": 1.0,
        "max": 8.0,
        "quantiles": [2.75, 4.5, 6.25],
    }
    assert got["impute"] == {"0": 4.5, "1": "a", "3": 4.5}


def test_quantiles_sql_per_engine() -> None:
    assert plan._quantiles("n0", 4, "local") == "quantile_cont(n0, [0.25, 0.5, 0.75])"
    assert plan._quantiles("n0", 2, "spark") == "percentile(n0, array(0.5))"


def test_a_statistic_over_no_value_is_none() -> None:
    # the callback is not asked for the median of no value; mean, median and most_frequent of nothing are None
    def never(column: str, probabilities: list[float], count: int) -> list[float]:
        raise AssertionError("asked for quantiles of no value")

    empty = Recorder(
        {"SELECT COUNT(r0)": [(0,)], "SELECT AVG": [(None,)], "SELECT quantile_cont": [(None,)], "SELECT c1": []}
    )
    assert plan._fill_statistic(empty, "r0", "median", "v", "spark", never) is None
    assert plan._fill_statistic(empty, "r0", "mean", "v", "local", None) is None
    assert plan._fill_statistic(empty, "r0", "median", "v", "local", None) is None
    assert plan._fill_statistic(empty, "c1", "most_frequent", "v", "local", None) is None
    seven = Recorder({"SELECT COUNT(r0)": [(None,)]})
    assert plan._fill_statistic(seven, "r0", "median", "v", "local", never) is None
    assert seven.queries == ["SELECT COUNT(r0) FROM v"]


def test_impute_statistics_keeps_none_for_no_value() -> None:
    t = Transform(features=FEATURES[:2]).fit(ROWS)
    run = Recorder({"SELECT quantile_cont(r0": [(None,)], "SELECT c1": []})
    assert plan.impute_statistics(run, t.feature_items(), "v", "local") == {"0": None, "1": None}


def test_duckdb_statistics_of_no_batch() -> None:
    t = Transform(features=[{"categorical": {"column": "c", "encoding": "hash", "buckets": 2}}]).fit(ROWS)
    empty = t.prepare(ROWS.slice(0, 0))
    assert plan.duckdb_statistics(t, [empty], label=False) == {
        "rows": 0,
        "numeric": {},
        "counts": {},
        "df": {},
        "impute": {},
    }
    reader = pa.RecordBatchReader.from_batches(empty.schema, [t.prepare(ROWS)])
    assert plan.duckdb_statistics(t, reader, label=None)["rows"] == 9


# -- exact quantiles by rank ---------------------------------------------------------------------------------------


def test_interpolation_by_hand() -> None:
    values = {0: 10.0, 1: 20.0, 2: 40.0, 3: 80.0, 4: 160.0}
    # positions 4 p: 0.25 -> 1 (exact), 0.3 -> 1.2, 0.5 -> 2, 0.9 -> 3.6, 1 -> 4
    got = plan.interpolate(values, [0.25, 0.3, 0.5, 0.9, 1.0], 5)
    assert got == pytest.approx([20.0, 24.0, 40.0, 128.0, 160.0], rel=1e-12)
    assert plan.ranks_needed([0.25, 0.3, 0.5, 0.9, 1.0], 5) == {1, 2, 3, 4}
    assert plan.ranks_needed([0.0], 3) == {0}
    assert plan.interpolate({0: 5.0}, [0.5], 1) == [5.0]


# -- output rows ---------------------------------------------------------------------------------------------------


def test_output_schema_fixed_and_variable_lists() -> None:
    types = {"id": pa.int32(), "y": pa.string()}
    spec = spec_of(label="y")
    fixed = plan.output_schema(types, spec, 3)
    assert fixed == pa.schema(
        [("id", pa.int32()), ("split", pa.string()), ("label", pa.string()), ("features", pa.list_(pa.float32(), 3))]
    )
    variable = plan.output_schema(types, spec_of(), 3, fixed=False)
    assert variable == pa.schema([("id", pa.int32()), ("split", pa.string()), ("features", pa.list_(pa.float32()))])


def test_output_batch_rows_in_both_list_layouts() -> None:
    spec = spec_of(
        label="y",
        split={"train": 1.0, "valid": 0.0, "test": 0.0},
        features=[{"numeric": {"column": "x"}}, {"numeric": {"column": "x", "name": "x2", "log1p": True}}],
    )
    batch = pa.RecordBatch.from_pydict(
        {"id": pa.array([1, 2, 3], pa.int64()), "x": [0.0, 1.0, 3.0], "y": pa.array([0, 1, 0], pa.int8())}
    )
    t = Transform(features=[f.model_dump(exclude_none=True) for f in spec.features]).fit(batch)
    want = [[0.0, 0.0], [1.0, float(np.float32(math.log(2)))], [3.0, float(np.float32(math.log(4)))]]
    for fixed in (True, False):
        schema = plan.output_schema({"id": pa.int64(), "y": pa.int16()}, spec, 2, fixed=fixed)
        out = plan.output_batch(batch, t, t.tokenizer(), spec, schema)
        assert out.schema == schema
        assert out.to_pydict() == {"id": [1, 2, 3], "split": ["train"] * 3, "label": [0, 1, 0], "features": want}
    no_label = spec_of(split={"train": 0.5, "valid": 0.25, "test": 0.25, "seed": 7})
    schema = plan.output_schema({"id": pa.int64()}, no_label, 2)
    out = plan.output_batch(batch, t, t.tokenizer(), no_label, schema)
    codes = split_codes(batch.column("id"), train=0.5, valid=0.25, seed=7).tolist()
    assert out.column_names == ["id", "split", "features"]
    assert out.column(1).to_pylist() == [("train", "valid", "test")[c] for c in codes]


def test_prepare_train_keeps_the_train_rows_and_the_label_text() -> None:
    spec = spec_of(label="y", split={"train": 0.5, "valid": 0.5, "test": 0.0, "seed": 1})
    ids = pa.array(range(40), pa.int64())
    batch = pa.RecordBatch.from_pydict({"id": ids, "x": [float(i) for i in range(40)], "y": [i % 3 for i in range(40)]})
    t = Transform(features=[{"numeric": {"column": "x"}}]).fit(batch)
    train = plan._codes(batch, spec) == 0
    assert 0 < train.sum() < 40
    got = plan.prepare_train(batch, t, t.tokenizer(), spec)
    assert got.column_names == ["n0", "__label"]
    assert got.column("n0").to_pylist() == [float(i) for i in range(40) if train[i]]
    assert got.column("__label").to_pylist() == [str(i % 3) for i in range(40) if train[i]]
    assert plan.prepare_train(batch, t, t.tokenizer(), spec_of()).column_names == ["n0"]


def test_onehot_counts_only_its_default_top_k_and_ordinal_counts_every_category() -> None:
    table = pa.table({"k": [f"v{j:02d}" for j in range(12)] + ["v05"]})
    t = Transform(
        features=[
            {"categorical": {"column": "k"}},
            {"categorical": {"column": "k", "name": "o", "encoding": "ordinal"}},
        ]
    ).fit(table)
    con = duckdb.connect()
    con.register("prep", pa.Table.from_batches([t.prepare(table)]))
    queries: list[str] = []

    def run(sql: str) -> list[tuple[Any, ...]]:
        queries.append(sql)
        return con.execute(sql).fetchall()

    counts = plan.collect_statistics(run, t, "prep", "local", False)["counts"]
    # v05 twice, then the rest by value: one-hot keeps the default top 10, ordinal every category
    assert counts["0"] == [["v05", 2]] + [[f"v{j:02d}", 1] for j in (0, 1, 2, 3, 4, 6, 7, 8, 9)]
    assert counts["1"] == [["v05", 2]] + [[f"v{j:02d}", 1] for j in range(12) if j != 5]
    assert queries[1].endswith("ORDER BY n DESC, c0 LIMIT 10") and queries[2].endswith("ORDER BY n DESC, c1")
