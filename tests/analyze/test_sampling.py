"""Sampling in ANALYZE: exact figures from Parquet metadata or one pass, block samples, clustering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiforge import analyze
from aiforge.analyze import _sampling

ROWS = 20_000


def _table(seed: int = 0, sort: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    v = rng.normal(50, 10, ROWS)
    v[rng.choice(ROWS, 500, replace=False)] = np.nan
    order = np.argsort(np.nan_to_num(v)) if sort else np.arange(ROWS)
    missing = rng.random(ROWS) < 0.1
    return pa.table(
        {
            "v": pa.array(v[order]),
            "n": pa.array(rng.integers(-5, 100, ROWS), mask=missing),
            "c": rng.choice(["a", "b", "c"], ROWS),
            "t": pa.array(rng.integers(0, 10**9, ROWS), pa.timestamp("s")),
        }
    )


def _write(tmp_path: Path, table: pa.Table, name: str = "d.parquet", **options) -> str:
    path = tmp_path / name
    pq.write_table(table, path, row_group_size=500, **options)
    return str(path)


@pytest.mark.parametrize("statistics", [True, False], ids=["metadata", "duckdb-pass"])
def test_exact_figures_while_sampling(tmp_path: Path, statistics: bool):
    table = _table()
    report = analyze(_write(tmp_path, table, write_statistics=statistics), sample_rows=2_000, seed=3)
    assert report.rows == ROWS and report.sample["rows"] == 2_000 and report.sample["exact"] is False
    v, n = table.column("v").to_numpy(), table.column("n")
    col_v, col_n = report.column("v"), report.column("n")
    assert col_v["min"] == {"value": float(np.nanmin(v)), "exact": True}
    assert col_v["max"] == {"value": float(np.nanmax(v)), "exact": True}
    assert col_n["missing"] == {"value": n.null_count, "exact": True}
    assert col_n["count"] == {"value": ROWS - n.null_count, "exact": True}
    assert col_n["min"]["value"] == pa.compute.min(n).as_py()
    assert report.column("t")["max"]["value"] == pa.compute.max(table.column("t")).as_py().isoformat()
    assert col_v["mean"]["exact"] is False
    assert col_v["mean"]["value"] == pytest.approx(np.nanmean(v), rel=0.02)
    assert col_v["nan"]["value"] == pytest.approx(500, rel=0.5)
    assert report.column("c")["distinct"]["value"] == 3


def test_block_sample_is_reproducible_and_reads_few_blocks(tmp_path: Path):
    source = _sampling.open_source(_write(tmp_path, _table()))
    assert len(source.blocks) == ROWS // 500
    first = _sampling.draw_sample(source, 1_000, seed=5, exact=False)
    again = _sampling.draw_sample(source, 1_000, seed=5, exact=False)
    other = _sampling.draw_sample(source, 1_000, seed=6, exact=False)
    same = first.table.drop_columns(["v"])  # NaN != NaN, so compare v apart
    assert same.equals(again.table.drop_columns(["v"])) and not same.equals(other.table.drop_columns(["v"]))
    assert np.array_equal(first.table["v"].to_numpy(), again.table["v"].to_numpy(), equal_nan=True)
    assert first.table.num_rows == 1_000 and first.block.shape == (1_000,)
    assert first.method.startswith("row-group blocks")
    # within each chosen block the rows are distinct
    assert first.table.group_by(["v", "n", "c", "t"]).aggregate([]).num_rows == 1_000


def test_blocks_are_a_subset_when_data_is_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_sampling, "_READ_BUDGET_ROWS", 4_000)
    source = _sampling.open_source(_write(tmp_path, _table()))
    sample = _sampling.draw_sample(source, 1_000, seed=0, exact=False)
    assert sample.blocks_read == 8 and sample.blocks_total == 40
    assert set(np.unique(sample.block)) == set(range(8))


def test_sorted_column_is_flagged(tmp_path: Path):
    report = analyze(_write(tmp_path, _table(sort=True)), sample_rows=2_000)
    warnings = {w["column"]: w["reason"] for w in report.sample["warnings"]}
    assert "sorted across row groups" in warnings["v"]
    assert "n" not in warnings and "t" not in warnings
    assert "sampling: column v sorted" in report.summary_text()


def test_clustered_means_with_overlapping_ranges_are_flagged(tmp_path: Path):
    rng = np.random.default_rng(0)
    level = np.repeat(np.arange(40, dtype=float), 500)  # each block has its own level...
    values = level + rng.normal(0, 0.5, ROWS)
    values[::500] = -100.0  # ...but every block spans the whole range, so metadata alone cannot tell
    values[1::500] = 200.0
    report = analyze(_write(tmp_path, pa.table({"v": values})), sample_rows=2_000)
    reasons = [w["reason"] for w in report.sample["warnings"]]
    assert len(reasons) == 1 and "between sampled row groups" in reasons[0]


def test_shuffled_data_has_no_warning(tmp_path: Path):
    report = analyze(_write(tmp_path, _table()), sample_rows=2_000)
    assert report.sample["warnings"] == []


def test_exact_scans_everything(tmp_path: Path):
    table = _table()
    report = analyze(_write(tmp_path, table), sample_rows=100, exact=True)
    assert report.sample["exact"] is True and report.sample["rows"] == ROWS
    v = table.column("v").to_numpy()
    assert report.column("v")["mean"] == {"value": pytest.approx(np.nanmean(v)), "exact": True}
    assert report.column("v")["nan"] == {"value": 500, "exact": True}


def test_distinct_is_estimated_when_sampling():
    table = pa.table({"id": np.arange(50_000), "c": np.arange(50_000) % 7})
    report = analyze(table, sample_rows=5_000)
    ids, cats = report.column("id")["distinct"], report.column("c")["distinct"]
    assert ids["exact"] is False and "Chao1" in ids["method"]
    assert ids["value"] == 50_000  # every sampled value seen once: capped at the rows present
    assert cats["value"] == 7


# -- properties ----------------------------------------------------------------------------------------------

# + 0.0 turns -0.0 into 0.0: Arrow counts them as two distinct values, numpy as one
finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False).map(
    lambda v: v + 0.0
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(finite, st.none()), min_size=1, max_size=60))
def test_numeric_figures_match_numpy(values: list[float | None]):
    stats = analyze(pa.table({"v": pa.array(values, pa.float64())})).column("v")
    present = np.array([v for v in values if v is not None], dtype=float)
    assert stats["missing"]["value"] == len(values) - present.size
    assert stats["count"]["value"] == present.size
    if present.size:
        assert stats["min"]["value"] == present.min() and stats["max"]["value"] == present.max()
        assert stats["mean"]["value"] == pytest.approx(present.mean(), rel=1e-9, abs=1e-6)
        assert stats["zeros"]["value"] == int((present == 0).sum())
        assert sum(stats["histogram"]["value"]["counts"]) == present.size
        assert stats["distinct"]["value"] == np.unique(present).size


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b"])), min_size=2, max_size=40),
)
def test_duplicates_and_bias_match_definitions(rows: list[tuple[int, str]]):
    table = pa.table({"k": [r[0] for r in rows], "y": [r[1] for r in rows]})
    report = analyze(table, label="y")
    duplicates = len(rows) - len(set(rows))
    found = {i["type"]: i["rows"] for i in report.issues}
    assert found.get("duplicate_rows", 0) == duplicates
    overall = {c: sum(r[1] == c for r in rows) / len(rows) for c in ("a", "b")}
    for entry in report.bias[0]["slices"]:
        inside = [r[1] for r in rows if r[0] == entry["value"]]
        shares = {c: inside.count(c) / len(inside) for c in ("a", "b")}
        assert entry["rows"] == len(inside)
        assert entry["deviation"] == pytest.approx(0.5 * sum(abs(shares[c] - overall[c]) for c in overall))


def test_a_ragged_csv_is_an_error_naming_the_line(tmp_path: Path) -> None:
    from aiforge.errors import SourceError

    path = tmp_path / "rag.csv"
    path.write_text("a,b\n1,2\n3,4\n5\n")
    with pytest.raises(SourceError, match=r"rag\.csv, line 4: expected 2 fields like the header, found 1"):
        analyze(str(path))
