"""ANALYZE on hand-made data: exact statistics, each issue with its rows, label balance, bias, errors, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aiforge import (
    ColumnNotFound,
    EmptyResult,
    InvalidInput,
    Report,
    SnapshotNotFound,
    SourceError,
    UnknownSource,
    analyze,
)
from aiforge.cli import app

N = 200


def _value(report: Report, column: str, figure: str):
    entry = report.column(column)[figure]
    return entry["value"]


def _clean_table(seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(N),
            "x": rng.normal(10, 2, N),
            "city": rng.choice(["paris", "rome", "oslo"], N),
            "y": rng.integers(0, 2, N),
        }
    )


def _dirty_table() -> pa.Table:
    table = _clean_table()
    x = table.column("x").to_numpy().copy()
    x[7] = 1_000.0  # one outlier
    y = table.column("y").to_numpy()
    mixed = [str(i) for i in range(N)]
    for i in (3, 50, 120):
        mixed[i] = "n/a"
    return pa.table(
        {
            "id": table.column("id"),
            "x": x,
            "city": table.column("city"),
            "const": pa.array([5] * N),
            "sparse": pa.array([None] * 150 + [1.5, 2.5] * 25, pa.float64()),
            "mixed": mixed,
            "leak": np.where(y == 1, "approved", "rejected"),
            "y": y,
        }
    )


def _issues(report: Report) -> dict[tuple[str, str | None], int]:
    return {(i["type"], i["column"]): i["rows"] for i in report.issues}


# -- statistics ----------------------------------------------------------------------------------------------


def test_numeric_statistics_equal_numpy():
    values = np.array([3.5, -1.0, 0.0, 7.25, 0.0, 12.0, np.nan, 2.0])
    mask = np.zeros(len(values), dtype=bool)
    mask[1] = True  # a null
    table = pa.table({"v": pa.array(values, mask=mask)})
    stats = analyze(table).column("v")
    present = values[~mask]
    finite = present[~np.isnan(present)]
    assert stats["count"] == {"value": 7, "exact": True}
    assert stats["missing"] == {"value": 1, "exact": True}
    assert stats["nan"]["value"] == 1
    assert stats["zeros"]["value"] == 2
    assert stats["min"]["value"] == finite.min()
    assert stats["max"]["value"] == finite.max()
    assert stats["mean"]["value"] == pytest.approx(finite.mean())
    assert stats["std"]["value"] == pytest.approx(finite.std(ddof=1))
    assert stats["quantiles"]["value"]["p50"] == pytest.approx(np.median(finite))
    assert sum(stats["histogram"]["value"]["counts"]) == len(finite)
    assert stats["kind"] == "numeric"
    assert stats["type"] == "double"


def test_string_and_datetime_statistics():
    table = pa.table(
        {
            "s": ["ab", "abc", None, "", "ab"],
            "t": pa.array([0, 86_400, None, 2 * 86_400, 86_400], pa.timestamp("s")),
            "b": [True, False, True, None, True],
        }
    )
    report = analyze(table)
    s = report.column("s")
    assert s["kind"] == "categorical"
    assert s["lengths"]["value"]["min"] == 0 and s["lengths"]["value"]["max"] == 3
    assert s["top_values"]["value"][0] == {"value": "ab", "count": 2}
    assert s["empty_strings"]["value"] == 1
    assert s["distinct"] == {"value": 3, "exact": True}
    t = report.column("t")
    assert t["kind"] == "datetime"
    assert t["min"]["value"] == "1970-01-01T00:00:00"
    assert t["max"]["value"] == "1970-01-03T00:00:00"
    assert t["missing"]["value"] == 1
    b = report.column("b")
    assert b["kind"] == "boolean"
    assert b["mean"]["value"] == pytest.approx(0.75)


def test_every_figure_says_whether_it_is_exact():
    def walk(node, path=""):
        if isinstance(node, dict):
            if "value" in node and path.count("/") <= 3:
                assert isinstance(node.get("exact"), bool), path
            for key, value in node.items():
                walk(value, f"{path}/{key}")

    for column in analyze(_dirty_table(), label="y").to_dict()["columns"]:
        for key, figure in column.items():
            if key not in ("name", "type", "kind"):
                assert isinstance(figure["exact"], bool), (column["name"], key)


# -- issues --------------------------------------------------------------------------------------------------


def test_each_issue_is_found_with_the_rows_it_affects():
    report = analyze(_dirty_table(), label="y")
    found = _issues(report)
    assert found[("constant", "const")] == N
    assert found[("mostly_missing", "sparse")] == 150
    assert found[("outliers", "x")] == 1
    assert found[("mixed_types", "mixed")] == 3
    assert found[("label_leak", "leak")] == N
    assert ("label_leak", "id") not in found  # unique IDs never repeat in the held-out half
    assert ("label_leak", "city") not in found
    assert all(i["exact"] for i in report.issues)
    assert report.issues[0]["severity"] == "error"


def test_duplicate_rows_and_invalid_values():
    table = pa.table(
        {
            "a": [1, 2, 1, 3, 1, 2],
            "b": ["x", "y", "x", "z", "x", "y"],
            "f": [0.5, float("inf"), 0.5, float("nan"), 0.5, float("inf")],
        }
    )
    found = _issues(analyze(table))
    assert found[("duplicate_rows", None)] == 3
    assert found[("infinite_values", "f")] == 2
    assert found[("nan_values", "f")] == 1


def test_clean_data_has_no_issues():
    report = analyze(_clean_table(), label="y")
    assert report.issues == []
    assert "0 issues found" in report.summary_text()


# -- label, bias ---------------------------------------------------------------------------------------------


def test_label_imbalance_and_bias_slices_hand_computed():
    region = ["a"] * 10 + ["b"] * 10 + ["c"] * 20
    y = [1] * 8 + [0] * 2 + [1] * 2 + [0] * 8 + [1] * 10 + [0] * 10
    report = analyze(pa.table({"region": region, "y": y}), label="y")
    label = report.label
    assert label is not None and label["task"] == "classification"
    assert label["classes"]["value"][0]["count"] == 20
    assert label["imbalance_ratio"]["value"] == 1.0
    slices = {s["value"]: s for s in report.bias[0]["slices"]}
    assert slices["a"]["deviation"] == pytest.approx(0.3)  # |0.8-0.5|/2 + |0.2-0.5|/2
    assert slices["b"]["deviation"] == pytest.approx(0.3)
    assert slices["c"]["deviation"] == pytest.approx(0.0)
    assert slices["a"]["label_shares"] == {"1": 0.8, "0": 0.2}
    top = label["top_biased_slices"]
    assert [(s["value"], s["rows"]) for s in top[:2]] == [("a", 10), ("b", 10)]


def test_imbalanced_label_is_an_issue():
    y = [0] * 95 + [1] * 5
    report = analyze(pa.table({"y": y, "k": list(range(100))}), label="y")
    assert report.label["imbalance_ratio"]["value"] == 19.0
    assert report.label["minority_share"]["value"] == 0.05
    assert _issues(report)[("label_imbalance", "y")] == 5


def test_regression_label_and_bias_by_mean():
    rng = np.random.default_rng(0)
    group = np.repeat(["lo", "hi"], 100)
    target = np.where(group == "hi", 10.0, 0.0) + rng.normal(0, 1, 200)
    report = analyze(pa.table({"g": group, "t": target}), label="t")
    assert report.label["task"] == "regression"
    assert report.label["mean"]["value"] == pytest.approx(target.mean())
    assert report.bias[0]["slices"][0]["deviation"] > 0.9


# -- reproducibility and exactness ---------------------------------------------------------------------------


def _without_time(report: Report) -> dict:
    data = report.to_dict()
    data.pop("created")
    return data


def test_same_seed_same_report_and_seed_changes_sample():
    rng = np.random.default_rng(3)
    table = pa.table({"v": rng.normal(size=5_000), "c": rng.choice(list("abcd"), 5_000)})
    one = analyze(table, sample_rows=500, seed=7)
    two = analyze(table, sample_rows=500, seed=7)
    other = analyze(table, sample_rows=500, seed=8)
    assert _without_time(one) == _without_time(two)
    assert one.column("v")["mean"] != other.column("v")["mean"]
    assert one.sample == {**one.sample, "rows": 500, "seed": 7, "exact": False}
    assert one.column("v")["mean"]["exact"] is False
    assert one.column("v")["min"] == {"value": float(np.min(table["v"])), "exact": True}


def test_exact_equals_sampling_when_data_fits_in_the_sample(tmp_path: Path):
    path = tmp_path / "d.parquet"
    pq.write_table(_dirty_table(), path, row_group_size=50)
    sampled = analyze(str(path), label="y")
    exact = analyze(str(path), label="y", exact=True, sample_rows=10)
    assert _without_time(sampled) == _without_time(exact)
    assert sampled.sample["exact"] is True


# -- inputs --------------------------------------------------------------------------------------------------


def test_inputs_table_dataframe_csv_parquet_glob_and_snapshot(tmp_path: Path, workspace):
    import pandas as pd

    table = _clean_table()
    pq.write_table(table.slice(0, 100), tmp_path / "p1.parquet")
    pq.write_table(table.slice(100), tmp_path / "p2.parquet")
    table.to_pandas().to_csv(tmp_path / "d.csv", index=False)
    expected = float(np.mean(table["x"]))
    for data in (
        table,
        pd.DataFrame(table.to_pandas()),
        str(tmp_path / "d.csv"),
        str(tmp_path / "p*.parquet"),
    ):
        report = analyze(data, label="y")
        assert report.rows == N
        assert report.column("x")["mean"]["value"] == pytest.approx(expected)
    with workspace.staging("test") as staged:
        (staged / "data").mkdir()
        pq.write_table(table, staged / "data" / "part-0.parquet")
        manifest = {
            "rows": N,
            "bytes": 1,
            "created": "2026-01-01T00:00:00",
            "schema": [{"name": n, "type": "x"} for n in table.column_names],
            "files": [{"path": "data/part-0.parquet"}],
        }
        snapshot = workspace.commit_snapshot("people", staged, manifest)
    for data in ("people", "people@v1", snapshot):
        report = analyze(data, workspace=workspace)
        assert report.subject == "people@v1" and report.rows == N


def test_errors_are_clear(tmp_path: Path, workspace):
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    with pytest.raises(
        ColumnNotFound, match=r"label column 'nope' not found in table; available columns: a, b"
    ):
        analyze(table, label="nope")
    with pytest.raises(SnapshotNotFound, match=r"snapshot 'ghost' not found"):
        analyze("ghost", workspace=workspace)
    with pytest.raises(
        UnknownSource,
        match=r"no Parquet/CSV file matches .*missing/x.parquet'; give an existing file, folder or glob "
        r"or a snapshot NAME@vN$",
    ):
        analyze(str(tmp_path / "missing" / "x.parquet"))
    (tmp_path / "stats.json").write_text("{}")
    with pytest.raises(UnknownSource, match=r"cannot tell the format of .*stats.json': expected a Parquet"):
        analyze(str(tmp_path / "stats.json"))
    with pytest.raises(
        InvalidInput, match=r"^analyze reads snapshots and Parquet/CSV files, not 'postgresql://ana@db/shop'; dump"
    ):
        analyze("postgresql://ana:pw@db/shop")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(SourceError, match=r"cannot read Parquet file .*bad.parquet"):
        analyze(str(bad))
    with pytest.raises(EmptyResult, match=r"no rows; there is nothing to analyze"):
        analyze(table.slice(0, 0))
    empty = tmp_path / "empty.parquet"
    pq.write_table(table.slice(0, 0), empty)
    with pytest.raises(EmptyResult, match=r"empty.parquet has no rows"):
        analyze(str(empty))
    with pytest.raises(InvalidInput, match=r"^sample_rows must be a positive integer; got 0$"):
        analyze(table, sample_rows=0)
    with pytest.raises(InvalidInput, match=r"^seed must be an integer >= 0; got -1$"):
        analyze(table, seed=-1)
    with pytest.raises(InvalidInput, match=r"cannot analyze an object of type int"):
        analyze(42)


# -- report files, workspace, CLI ----------------------------------------------------------------------------


def test_report_saves_into_the_workspace_and_is_listed(workspace):
    report = analyze(_dirty_table(), label="y")
    html_path, json_path = report.save(workspace=workspace)
    assert html_path is not None and json_path is not None
    assert html_path.name == "report.html" and json_path.name == "stats.json"
    assert html_path.parent.parent.parent == workspace.reports_dir
    assert json.loads(json_path.read_text())["rows"] == {"value": N, "exact": True}
    listed = workspace.list_reports()
    assert [(r["subject"], r["html"], r["json"]) for r in listed] == [
        ("table", str(html_path), str(json_path))
    ]
    assert not list(html_path.parent.glob("*.tmp"))


def test_report_html_is_self_contained(tmp_path: Path, workspace):
    report = analyze(_dirty_table(), label="y")
    html_path, json_path = report.save(html=tmp_path / "r.html", workspace=workspace)
    assert json_path is None
    page = html_path.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)  # nothing loaded from elsewhere
    assert "http://" not in page and "https://" not in page
    assert '<canvas id="scatter">' in page and "<svg" in page and "scatter-data" in page
    assert page.count("</script>") == 2  # data and script: no payload closes its element early
    assert report._repr_html_().startswith("<iframe srcdoc=")
    assert report.to_json() == json.dumps(report.to_dict(), indent=2)


def test_cli_analyze_writes_files(tmp_path: Path, workspace):
    path = tmp_path / "d.parquet"
    pq.write_table(_dirty_table(), path)
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(path),
            "--label",
            "y",
            "--out",
            str(tmp_path / "r.html"),
            "--json",
            str(tmp_path / "s.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").exists()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["rows"]["value"] == N
    assert "d.parquet: 200 rows x 8 columns; statistics from every row (exact)" in result.stdout
    assert "label_leak" in result.stdout
    assert f"Report: {tmp_path / 'r.html'}" in result.stdout
    assert len(workspace.list_reports()) == 1


def test_cli_analyze_errors(tmp_path: Path, workspace):
    path = tmp_path / "d.parquet"
    pq.write_table(_clean_table(), path)
    result = CliRunner().invoke(app, ["analyze", str(path), "--label", "nope"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: label column 'nope' not found")
    assert "available columns: id, x, city, y" in result.stderr
    result = CliRunner().invoke(app, ["analyze", "ghost"])
    assert result.exit_code == 1
    assert "Error: snapshot 'ghost' not found" in result.stderr
    assert workspace.list_reports() == []


def test_scatter_offers_the_most_informative_columns_first_and_constants_last() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2_000)
    table = pa.table(
        {
            "const": np.zeros(2_000),
            "noise": rng.normal(size=2_000),
            "signal": y + rng.normal(scale=0.3, size=2_000),
            "y": y,
        }
    )
    order = list(analyze(table, label="y")._scatter["columns"])
    assert order[0] == "signal"
    assert order[-1] == "const"


def test_scatter_never_opens_on_the_label_or_a_row_id() -> None:
    """Issue 12: the page plots the first two columns; the label is the colour and an id spreads rows evenly."""
    rng = np.random.default_rng(1)
    n = 2_000
    table = pa.table({"id": np.arange(n), "returned": rng.integers(0, 2, n), "age": rng.integers(18, 80, n),
                      "income": rng.lognormal(8, 1, n), "const": np.ones(n)})
    with_label = list(analyze(table, label="returned")._scatter["columns"])
    assert set(with_label[:2]) == {"age", "income"} and with_label[2:] == ["id", "returned", "const"]
    assert list(analyze(table)._scatter["columns"]) == ["returned", "age", "income", "id", "const"]
