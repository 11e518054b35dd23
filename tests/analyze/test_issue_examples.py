"""Issues name example rows, not only counts (issue 12): 0-based row numbers in the data, sample or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aiforge import analyze
from aiforge.analyze._issues import duplicate_positions


def _issue(report, kind: str) -> dict:  # type: ignore[no-untyped-def]
    return next(i for i in report._stats["issues"] if i["type"] == kind)


def test_each_row_issue_names_its_first_rows() -> None:
    n = 1_000
    x = np.arange(n, dtype=np.float64)
    x[[7, 300]] = np.nan
    x[[12]] = np.inf
    x[[900]] = 1e12  # an outlier
    text = np.array(["12"] * n, dtype=object)
    text[[5, 600]] = "twelve"
    text[[40]] = " "
    table = pa.table({"x": x, "t": pa.array(text.tolist(), pa.string()), "k": np.arange(n) % 7})
    table = pa.concat_tables([table, table.slice(3, 2)])  # rows 1000 and 1001 repeat rows 3 and 4
    report = analyze(table)
    assert _issue(report, "nan_values")["examples"] == [7, 300]
    assert _issue(report, "infinite_values")["examples"] == [12]
    assert _issue(report, "outliers")["examples"] == [12, 900]  # inf is beyond the fences too
    assert _issue(report, "mixed_types")["examples"] == [5, 600]
    assert _issue(report, "empty_strings")["examples"] == [40]
    assert _issue(report, "duplicate_rows")["examples"] == [1000, 1001]
    page = report.to_html()
    assert "example rows" in page and "<td class='rows'>7, 300</td>" in page


def test_examples_of_a_sample_are_row_numbers_in_the_whole_file(tmp_path: Path) -> None:
    n = 50_000
    values = np.zeros(n)
    bad = np.array([123, 24_999, 41_000, 49_999])
    values[bad] = np.nan
    pq.write_table(pa.table({"v": values, "i": np.arange(n)}), tmp_path / "d.parquet", row_group_size=5_000)
    report = analyze(tmp_path / "d.parquet", sample_rows=20_000, seed=3)
    assert not report._stats["sample"]["exact"]
    examples = _issue(report, "nan_values")["examples"]
    assert examples and set(examples) <= set(bad.tolist())  # real positions, whichever the sample caught


def test_duplicate_positions_are_the_later_copies() -> None:
    table = pa.table({"a": [1, 2, 1, None, None, 2], "b": ["x", "y", "x", "z", "z", "w"]})
    assert duplicate_positions(table).tolist() == [2, 4]
