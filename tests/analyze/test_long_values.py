"""The report's size does not depend on how long the data's values are: long values are cut, marked and measured."""

from __future__ import annotations

import json
import tracemalloc

import pyarrow as pa
import pytest

from aiforge import analyze

BIG = 5_000_000
MB = 1_000_000
CUT = "… (5,000,000 characters)"


def _long_table() -> pa.Table:
    # 6 rows of 5 MB strings: few distinct values, so the column is categorical and lands in top values, the bias
    # slices and the scatter; the label is long too, so classes and label shares carry it
    rows = 12
    return pa.table(
        {
            "blob": [chr(65 + i % 3) * BIG if i % 2 else "short" for i in range(rows)],
            "binary": pa.array([b"\xff" + b"x" * BIG if i % 2 else b"b" for i in range(rows)], pa.binary()),
            "x": list(range(rows)),
            "y": ["L" * BIG if i % 3 else "no" for i in range(rows)],
        }
    )


def test_html_and_json_stay_small_with_megabyte_values() -> None:
    report = analyze(_long_table(), label="y")
    page, stats = report.to_html(), report.to_json()
    assert len(page.encode()) < 2 * MB
    assert len(stats.encode()) < 2 * MB


def test_long_values_are_cut_with_an_ellipsis_and_their_length() -> None:
    report = analyze(_long_table(), label="y")
    blob = report.column("blob")
    top = [item["value"] for item in blob["top_values"]["value"]]
    assert "short" in top
    assert "A" * 200 + CUT in top and "B" * 200 + CUT in top
    assert blob["max"]["value"] == "short" and blob["min"]["value"] == "A" * 200 + CUT
    assert blob["lengths"]["value"]["max"] == BIG  # the statistics still describe the whole value
    binary = report.column("binary")
    assert binary["max"]["value"] == "\ufffd" + "x" * 199 + "… (5,000,001 bytes)"
    classes = [c["value"] for c in report.label["classes"]["value"]]
    assert sorted(classes) == sorted(["L" * 200 + CUT, "no"])
    slices = next(group for group in report.bias if group["column"] == "blob")["slices"]
    assert {s["value"] for s in slices} == {"short", "A" * 200 + CUT, "B" * 200 + CUT, "C" * 200 + CUT}
    assert all(len(key) < 300 for s in slices for key in s["label_shares"])
    scatter = report._scatter["columns"]
    assert max(len(v) for v in scatter["blob"] if v is not None) == 200 + len(CUT)
    assert max(len(v) for v in scatter["y"] if v is not None) == 200 + len(CUT)
    assert all(len(issue["message"]) < 500 for issue in report.issues)


def test_a_constant_long_value_is_named_in_short() -> None:
    table = pa.table({"c": ["Z" * BIG] * 4, "x": [1, 2, 3, 4]})
    report = analyze(table)
    (constant,) = [i for i in report.issues if i["type"] == "constant"]
    assert constant["message"] == f"every value is {'Z' * 200 + CUT!r}"


@pytest.mark.parametrize("size", [BIG])
def test_python_memory_does_not_grow_with_the_values(size: int) -> None:
    table = _long_table()
    tracemalloc.start()
    try:
        report = analyze(table, label="y")
        json.loads(report.to_json())
        report.to_html()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the data is 36 MB in Arrow buffers; the Python side of the report must not copy it (it held ~300 MB before)
    assert peak < 20 * MB
