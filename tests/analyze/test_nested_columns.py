"""ANALYZE on list, struct and map columns (and the other Arrow types a snapshot can hold): statistics, never a
traceback."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aiforge import analyze, dump
from aiforge.analyze._issues import duplicate_rows
from aiforge.cli import app

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
POINT = pa.struct([("x", pa.int64()), ("tag", pa.string())])


def _nested_table() -> pa.Table:
    y = [0, 1, 0, 1, 0, 1, 0, 1]
    return pa.table(
        {
            "ids": pa.array([[1, 2], [3], None, [], [1, 2], [7, 8, 9], [1, 2], None], pa.list_(pa.int32())),
            "tags": pa.array([["a"], ["b", "c"], ["a"], None, ["a"], [], ["a"], ["b", "c"]], pa.list_(pa.string())),
            "point": pa.array(
                [{"x": 1, "tag": "p"}, {"x": 2, "tag": "q"}, None, {"x": 1, "tag": "p"}, {"x": None, "tag": "r"},
                 {"x": 1, "tag": "p"}, {"x": 1, "tag": "p"}, {"x": 2, "tag": "q"}],
                POINT,
            ),
            "attrs": pa.array(
                [[("k", 1)], [("j", 2), ("k", 3)], None, [("k", 1)], [], [("k", 1)], None, None],
                pa.map_(pa.string(), pa.int64()),
            ),
            "y": y,
        }
    )


def _check_nested_stats(report, item: str = "item") -> None:
    ids = report.column("ids")
    assert (ids["type"], ids["kind"]) == (f"list<{item}: int32>", "nested")
    assert (ids["missing"]["value"], ids["count"]["value"]) == (2, 6)
    assert ids["distinct"]["value"] == 4  # [1,2] [3] [] [7,8,9]
    lengths = ids["lengths"]["value"]
    assert (lengths["min"], lengths["max"]) == (0, 3) and lengths["mean"] == pytest.approx(10 / 6)
    assert ids["top_values"]["value"][0] == {"value": "[1,2]", "count": 3}
    tags = report.column("tags")
    assert (tags["type"], tags["distinct"]["value"]) == (f"list<{item}: string>", 3)
    assert tags["top_values"]["value"][0] == {"value": '["a"]', "count": 4}
    point = report.column("point")
    assert (point["kind"], point["missing"]["value"], point["distinct"]["value"]) == ("nested", 1, 3)
    assert "lengths" not in point
    assert point["top_values"]["value"][0] == {"value": '{"x":1,"tag":"p"}', "count": 4}
    attrs = report.column("attrs")
    assert attrs["type"].startswith("map<string, int64")  # Parquet adds the field's name: ... ('attrs')>
    assert (attrs["missing"]["value"], attrs["distinct"]["value"]) == (3, 3)
    assert attrs["lengths"]["value"]["max"] == 2


def test_list_struct_and_map_columns_get_their_statistics() -> None:
    report = analyze(_nested_table(), label="y")
    _check_nested_stats(report)
    json.loads(report.to_json())
    assert '<div class="type">nested · list&lt;item: int32&gt;</div>' in report.to_html()


def test_the_same_statistics_from_a_parquet_file_sampled_or_not(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pq.write_table(_nested_table(), path)
    _check_nested_stats(analyze(str(path), label="y"), item="element")  # Parquet's name for a list's items
    # more rows than the sample: the exact figures come from one DuckDB pass, the rest from row-group blocks
    big = pa.concat_tables([_nested_table()] * 500)
    pq.write_table(big, tmp_path / "big.parquet", row_group_size=400)
    report = analyze(str(tmp_path / "big.parquet"), label="y", sample_rows=1_000)
    assert report.sample["exact"] is False
    ids = report.column("ids")
    assert (ids["missing"], ids["count"]) == ({"value": 1_000, "exact": True}, {"value": 3_000, "exact": True})
    assert ids["distinct"]["value"] == 4 and ids["lengths"]["value"]["max"] == 3


def test_nested_columns_in_the_issue_checks() -> None:
    n = 40
    y = [i % 2 for i in range(n)]
    table = pa.table(
        {
            "same": pa.array([[1, 2]] * n, pa.list_(pa.int32())),
            "sparse": pa.array([None] * 30 + [{"a": 1}] * 10),
            "status": pa.array([["approved"] if v else ["rejected"] for v in y]),  # the label, in a list
            "y": y,
        }
    )
    report = analyze(table, label="y")
    issues = {(i["type"], i["column"]): i for i in report.issues}
    assert issues[("constant", "same")]["message"] == "every value is '[1,2]'"
    assert issues[("mostly_missing", "sparse")]["rows"] == 30
    assert ("label_leak", "status") in issues
    assert not any(kind in ("outliers", "mixed_types") for kind, _ in issues)
    # rows that differ only in a list are not duplicates (the list was once compared as if every value were equal)
    assert duplicate_rows(pa.table({"l": pa.array([[1], [2]]), "x": [1, 1]})) == 0
    assert duplicate_rows(pa.table({"l": pa.array([[1], [1]]), "x": [1, 1]})) == 1
    assert duplicate_rows(pa.table({"m": pa.array([[("k", 1)], [("k", 2)]], pa.map_(pa.string(), pa.int8()))})) == 0


def test_a_nested_label_is_a_classification_over_its_values() -> None:
    table = pa.table({"x": [1, 2, 3, 4, 5, 6], "y": pa.array([[1], [2], [1], [2], [1], [1]], pa.list_(pa.int32()))})
    report = analyze(table, label="y")
    assert report.label["task"] == "classification"
    assert [(c["value"], c["count"]) for c in report.label["classes"]["value"]] == [("[1]", 4), ("[2]", 2)]
    assert report._scatter["columns"]["y"] == ["[1]", "[2]", "[1]", "[2]", "[1]", "[1]"]


def _odd_columns() -> dict[str, pa.Array]:
    return {
        "large_list": pa.array([[1, 2], [3], None, [1, 2]], pa.large_list(pa.int64())),
        "fixed_list": pa.array([[1, 2], [3, 4], None, [1, 2]], pa.list_(pa.int64(), 2)),
        "list_view": pa.array([[1], [2], None, [1]], pa.list_view(pa.int64())),
        "list_of_structs": pa.array([[{"x": 1}], [], None, [{"x": 1}]]),
        "struct_of_lists": pa.array([{"a": [1, 2]}, {"a": []}, None, {"a": [1, 2]}]),
        "union": pa.UnionArray.from_sparse(
            pa.array([0, 1, 0, 1], pa.int8()), [pa.array([1, 2, 3, 4]), pa.array(["a", "b", "c", "b"])]
        ),
        "run_end": pc.run_end_encode(pa.array([1, 1, 2, None])),
        "uuid": pa.array([b"0" * 16, b"1" * 16, None, b"0" * 16], pa.uuid()),
        "interval": pa.array([pa.MonthDayNano(v) if v else None for v in ([1, 2, 3], None, [1, 2, 3], [0, 0, 1])]),
        "string_view": pa.array(["a", "b", None, "a"], pa.string_view()),
        "binary_view": pa.array([b"a", b"b", None, b"a"], pa.binary_view()),
        "time": pa.array([dt.time(1), dt.time(2), None, dt.time(1)]),
        "duration": pa.array([dt.timedelta(1), dt.timedelta(2), None, dt.timedelta(1)]),
        "nulls": pa.array([None] * 4),
    }


@pytest.mark.parametrize("name", list(_odd_columns()))
def test_every_arrow_type_is_analyzed_as_a_column_and_as_the_label(name: str) -> None:
    column = _odd_columns()[name]
    # 4 rows: one missing and two distinct values, but for the all-null column and the union (no nulls, 1 b 3 b)
    missing, distinct = {"nulls": (4, 0), "union": (0, 3)}.get(name, (1, 2))
    as_column = pa.table({name: column, "y": [0, 1, 0, 1]}), "y"
    as_label = pa.table({"x": [1, 2, 3, 4], name: column}), name
    for table, label in (as_column, as_label):
        report = analyze(table, label=label)
        json.loads(report.to_json())
        assert "<html" in report.to_html()
        stats = report.column(name)
        assert (stats["missing"]["value"], stats["distinct"]["value"]) == (missing, distinct)


@pytest.mark.postgres
def test_postgres_arrays_dumped_to_a_snapshot(workspace, tmp_path: Path) -> None:
    query = (
        "SELECT * FROM (VALUES (1, ARRAY[1,2,NULL]::int[], ARRAY['x','y z']::text[]), (2, NULL, ARRAY[]::text[]), "
        "(3, ARRAY[1,2,NULL]::int[], ARRAY['x']::text[])) AS t(k, ai, at)"
    )
    snapshot = dump(PG_URL, query=query, name="arrays", workspace=workspace)
    assert re.fullmatch(r"list<(item|element): int32>", snapshot.manifest["schema"][1]["type"])
    report = analyze("arrays@v1", workspace=workspace)
    ai = report.column("ai")
    assert re.fullmatch(r"list<(item|element): int32>", ai["type"])
    assert (ai["kind"], ai["missing"]["value"], ai["distinct"]["value"]) == ("nested", 1, 1)
    assert ai["top_values"]["value"] == [{"value": "[1,2,null]", "count": 2}]
    assert report.column("at")["distinct"]["value"] == 3
    result = CliRunner().invoke(app, ["analyze", "arrays", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "arrays@v1: 3 rows x 3 columns" in result.stdout
    stats = json.loads((tmp_path / "s.json").read_text())
    assert [c["kind"] for c in stats["columns"]] == ["numeric", "nested", "nested"]


def test_cli_analyze_nested_parquet(tmp_path: Path, workspace) -> None:
    path = tmp_path / "nested.parquet"
    pq.write_table(_nested_table(), path)
    result = CliRunner().invoke(app, ["analyze", str(path), "--label", "y", "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "nested.parquet: 8 rows x 5 columns" in result.stdout


def test_long_nested_values_are_cut_like_long_strings() -> None:
    big = "v" * 5_000_000
    table = pa.table({"tags": pa.array([[big], [big], ["a"], None]), "y": [0, 1, 0, 1]})
    report = analyze(table, label="y")
    top = report.column("tags")["top_values"]["value"][0]
    assert top == {"value": '["' + "v" * 198 + "… (5,000,004 characters)", "count": 2}
    assert len(report.to_html()) < 1_000_000 and len(report.to_json()) < 100_000
