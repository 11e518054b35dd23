"""Numbers stored as text (a PostgreSQL NUMERIC dumped before DUMP kept it a number) are an issue, and their min/max
are the smallest and largest numbers, said to be in numeric order (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from aiforge import analyze

#: text order and number order differ: '-4.92' < '-5.00' and '10.50' < '9.99' as text
AMOUNTS = ["-4.92", "-5.00", "10.50", "9.99", "99.94", "0.00", "7", None, "12.25", "-0.50"]


def _issues(report, column: str) -> dict[str, dict]:
    return {i["type"]: i for i in report.issues if i["column"] == column}


def test_every_value_numeric_text_is_an_issue_with_numeric_min_max(tmp_path: Path) -> None:
    table = pa.table({"amount": pa.array(AMOUNTS * 20, pa.string()), "country": ["KR", "US"] * 100})
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path)
    report = analyze(str(path), workspace=tmp_path / "home", exact=True)
    amount = report.column("amount")
    assert amount["min"] == {"value": "-5.00", "exact": True, "order": "numeric"}
    assert amount["max"] == {"value": "99.94", "exact": True, "order": "numeric"}
    issue = _issues(report, "amount")["numbers_as_text"]
    assert issue["rows"] == 180 and issue["severity"] == "warning"
    assert issue["message"] == (
        "every value is a number stored as text (-5.00 to 99.94 in numeric order), so comparisons and sorting treat "
        "them as text: cast it to a number in the dump query, or in SQL over the snapshot (CAST(amount AS DOUBLE))"
    )
    assert "mixed_types" not in _issues(report, "amount")
    # other text keeps its alphabetical min/max, said so, and no such issue
    assert report.column("country")["min"] == {"value": "KR", "exact": True, "order": "alphabetical"}
    assert not _issues(report, "country")
    # the HTML report says which order the bounds are in
    html = report.to_html()
    assert "-5.00 <span class=\"note\">(numeric order)</span>" in html


def test_text_that_is_mostly_numbers_stays_mixed_types(tmp_path: Path) -> None:
    table = pa.table({"amount": pa.array([*AMOUNTS, "n/a"] * 10, pa.string())})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    report = analyze(str(path), workspace=tmp_path / "home", exact=True)
    issues = _issues(report, "amount")
    assert "numbers_as_text" not in issues and issues["mixed_types"]["rows"] == 10
    assert report.column("amount")["min"]["order"] == "alphabetical"
