"""The fast exact path of ANALYZE gives what the straightforward computations give.

``analyze(..., exact=True)`` counts distinct numbers from one sort (not Arrow's hash ``count_distinct``), takes
quantiles and histograms from the sorted copy, skips the duplicate-rows grouping when a column differs on every row,
and gathers the leak check's halves once. Each shortcut is checked here against the slow reference on small random
tables with nulls, NaN (several payloads), -0.0 and 0.0, infinities, integers above 2**53, dates, timestamps,
strings and nested values.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from aiforge.analyze import _issues, _leaks, _stats, analyze
from aiforge.analyze._values import normalise


def _floats(rng: np.random.Generator, n: int) -> np.ndarray:
    pool = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1.5, -2.25, 1e300, -1e-300])
    values = np.where(rng.random(n) < 0.3, rng.choice(pool, n), np.round(rng.normal(size=n), 2))
    odd = rng.random(n) < 0.05  # NaNs with other payloads: Arrow counts every NaN as one value
    values[odd] = np.nan
    bits = values.view(np.int64)
    bits[odd] |= rng.integers(1, 2**20, odd.sum())
    return values


def _table(seed: int, n: int = 300, key: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    nulls = rng.random(n) < 0.1
    big = 2**60 + rng.integers(0, 4, n)  # distinct as integers, equal once cast to float64
    start = dt.datetime(2024, 1, 1)
    columns: dict[str, Any] = {
        "f": pa.array(_floats(rng, n), mask=nulls),
        "f32": pa.array(np.clip(_floats(rng, n), -1e30, 1e30).astype(np.float32)),
        "i": pa.array(rng.integers(-5, 5, n), mask=rng.random(n) < 0.2),
        "big": pa.array(big),
        "ts": pa.array([start + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 50, n)], pa.timestamp("us")),
        "d": pa.array([dt.date(2024, 1, 1 + int(s)) for s in rng.integers(0, 20, n)], pa.date32()),
        "s": pa.array(rng.choice(["a", "b", " ", "", "12", "x y"], n).tolist(), mask=rng.random(n) < 0.1),
        "nested": pa.array([[int(v)] if v else None for v in rng.integers(0, 3, n)], pa.list_(pa.int64())),
        "up": pa.array(np.sort(rng.integers(0, 150, n))),  # already sorted: no sort, same figures
        "upf": pa.array(np.r_[np.sort(rng.normal(size=n - 2)), 0.0, -0.0][np.r_[0:n // 2, n - 2, n - 1, n // 2:n - 2]]),
        "y": pa.array(rng.integers(0, 3, n)),
    }
    if key:
        columns["id"] = pa.array(rng.permutation(n))
    table = pa.table(columns)
    return pa.concat_tables([table.slice(0, n // 3), table.slice(n // 3)])  # chunked columns


def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route analyze through the straightforward computations: Arrow's count_distinct, string checks on every row
    and a grouping for every duplicate check."""
    monkeypatch.setattr(_stats, "_raw_numbers", lambda present: None)
    monkeypatch.setattr(_stats, "_encoded_words", lambda present: None)
    monkeypatch.setattr(_issues, "has_key_column", lambda columns, table: False)


def _report(table: pa.Table, **kwargs: Any) -> str:
    """The report's JSON text without its creation time: text, so that even -0.0 against 0.0 would show."""
    stats = analyze(table, exact=True, **kwargs).to_dict()
    stats.pop("created")
    return json.dumps(stats, sort_keys=True)


@pytest.mark.parametrize("seed", range(6))
def test_distinct_from_one_sort_is_arrows_count(seed: int) -> None:
    table = _table(seed)
    for name in ("f", "f32", "i", "big", "ts", "d", "up", "upf"):
        present = normalise(table.column(name)).drop_null()
        raw = _stats._raw_numbers(present)
        assert raw is not None
        assert _stats._sorted_distinct(raw, np.sort(raw)) == pc.count_distinct(present).as_py(), name
    assert _stats._raw_numbers(table.column("s")) is None
    for values, count in (([], 0), ([np.nan, np.nan], 1), ([np.nan, -np.nan], 2), ([-0.0, 0.0, 0.0], 2)):
        raw = np.array(values, dtype=np.float64)
        assert _stats._sorted_distinct(raw, np.sort(raw)) == count == pc.count_distinct(pa.array(raw)).as_py()


@pytest.mark.parametrize("seed", range(6))
def test_numeric_figures_match_the_unsorted_reference(seed: int) -> None:
    table = _table(seed, n=500)
    for name in ("f", "f32", "i", "big", "ts", "d", "up", "upf"):
        stats = _stats.column_stats(table.column(name), total_rows=table.num_rows, exact=True)
        values = _stats.numeric_values(table.column(name))
        finite = values[np.isfinite(values)]
        assert stats["distinct"]["value"] == pc.count_distinct(table.column(name).drop_null()).as_py()
        if not finite.size:
            continue
        reference = np.quantile(finite, _stats.QUANTILES)  # on the values in their own order
        kind = stats["kind"]
        dtype = table.column(name).type
        if kind == "datetime":
            assert list(stats["quantiles"]["value"].values()) == _stats._ticks_to_iso(reference, dtype)
            assert stats["mean"]["value"] == _stats._ticks_to_iso(np.array([finite.mean()]), dtype)[0]
        else:
            assert list(stats["quantiles"]["value"].values()) == reference.tolist()
            assert stats["mean"]["value"] == float(finite.mean())  # summed in the values' order, bit for bit
            assert stats["std"]["value"] == (float(finite.std(ddof=1)) if finite.size > 1 else None)
        expected = _stats._histogram(finite, dtype if kind == "datetime" else None, True)
        assert stats["histogram"] == expected


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("key", [False, True])
def test_whole_report_matches_the_slow_path(seed: int, key: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(seed, key=key)
    fast = _report(table, label="y")
    with monkeypatch.context() as patch:
        _slow(patch)
        slow = _report(table, label="y")
    # the one allowed difference: a quantile or bound that is zero may come out as -0.0 on one side and 0.0 on the
    # other, since selection returns either of two values that compare equal (np.quantile's partition did too)
    assert fast.replace("-0.0,", "0.0,").replace("-0.0]", "0.0]").replace("-0.0}", "0.0}") == slow.replace(
        "-0.0,", "0.0,").replace("-0.0]", "0.0]").replace("-0.0}", "0.0}")


def _python_duplicates(table: pa.Table) -> list[int]:
    seen: set[str] = set()
    repeats = []
    for position, row in enumerate(table.to_pylist()):
        text = repr(sorted(row.items()))
        if text in seen:
            repeats.append(position)
        seen.add(text)
    return repeats


@pytest.mark.parametrize("seed", range(6))
def test_duplicate_rows_with_and_without_a_key_column(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    table = pa.table({
        "a": pa.array(rng.integers(0, 3, n), mask=rng.random(n) < 0.2),
        "s": pa.array(rng.choice(["x", "y"], n).tolist()),
        "l": pa.array([[int(v)] for v in rng.integers(0, 2, n)]),
    })
    expected = _python_duplicates(table)
    assert expected  # 3 x 2 x 2 kinds of rows (with nulls) among 200: there are repeats
    assert _issues.duplicate_positions(table).tolist() == expected
    report = analyze(table, exact=True)
    issue = next(i for i in report.issues if i["type"] == "duplicate_rows")
    assert issue["rows"] == len(expected) and issue["examples"] == expected[:_issues.EXAMPLE_ROWS]

    keyed = table.append_column("id", pa.array(rng.permutation(n)))
    assert _python_duplicates(keyed) == []
    assert not [i for i in analyze(keyed, exact=True).issues if i["type"] == "duplicate_rows"]
    # one null among otherwise distinct ids is still a key; two nulls are not
    ids = rng.permutation(n).astype(float)
    ids[[3]] = np.nan
    one_null = table.append_column("id", pa.array(ids, pa.int64(), from_pandas=True))
    stats = [analyze(one_null, exact=True).column("id")]
    assert _issues.has_key_column(stats, one_null)
    ids[[7]] = np.nan
    two_nulls = table.append_column("id", pa.array(ids, pa.int64(), from_pandas=True))
    assert not _issues.has_key_column([analyze(two_nulls, exact=True).column("id")], two_nulls)


def test_float_columns_are_never_keys() -> None:
    # -0.0 and 0.0 are two values to count_distinct: a float column does not prove that rows differ
    table = pa.table({"f": [0.0, -0.0], "g": [1, 1]})
    stats = analyze(table, exact=True).columns
    assert not _issues.has_key_column(stats, table)


def _reference_leaks(table: pa.Table, columns: list[dict[str, Any]], label: dict[str, Any], seed: int) -> dict:
    """The leak scores computed the plain way: quantiles of the unsorted training values, indexing as needed."""
    y = table.column(label["name"])
    rows = np.flatnonzero(pc.is_valid(y).to_numpy(zero_copy_only=False))
    order = np.random.default_rng(seed).permutation(rows)
    train, test = order[: order.size // 2], order[order.size // 2:]
    target = _issues.encode(y)[0]
    out = {}
    for stats in columns:
        if stats["name"] == label["name"] or stats["kind"] == "other":
            continue
        column = table.column(stats["name"])
        x = _issues.encode(column)[0]
        if stats["kind"] in ("numeric", "datetime") and stats["distinct"]["value"] > 100:
            values = _stats.numeric_values(column.fill_null(0)) if column.null_count == 0 else None
            if values is not None:
                finite = values[train][np.isfinite(values[train])]
                bins = min(100, max(2, finite.size // 20))
                edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))[1:-1]
                x = np.where(np.isfinite(values), np.searchsorted(edges, values, side="right"), len(edges) + 1)
        size = int(x.max()) + 1
        seen = np.bincount(x[train], minlength=size) > 0
        k = int(target.max()) + 1
        counts = np.bincount(x[train] * k + target[train], minlength=size * k).reshape(size, k)
        fallback = int(np.bincount(target[train], minlength=k).argmax())
        predict = np.where(seen, counts.argmax(axis=1), fallback)
        score = float((predict[x[test]] == target[test]).mean())
        baseline = float((target[test] == fallback).mean())
        gain = (score - baseline) / (1 - baseline) if baseline < 1 else 0.0
        leak = score >= _leaks.LEAK_ACCURACY and gain >= _leaks.LEAK_GAIN
        out[stats["name"]] = {"metric": "accuracy", "score": score, "baseline": baseline, "leak": bool(leak)}
    return out


@pytest.mark.parametrize("seed", range(4))
def test_leak_scores_match_the_plain_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    y = rng.integers(0, 2, n)
    table = pa.table({
        "x": rng.normal(size=n) + y,
        "leak": y * 10.0 + rng.random(n),  # > 100 distinct values, binned, predicts y
        "c": rng.choice(["a", "b", "c"], n).tolist(),
        "row": np.arange(n),  # sorted: its training half is too
        "y": y,
    })
    report = analyze(table, label="y", exact=True)
    scores = {name: {k: v for k, v in s.items() if k != "exact"} for name, s in report.to_dict()["leak_scores"].items()}
    assert scores == _reference_leaks(table, report.columns, report.label, seed=0)
    assert scores["leak"]["leak"]


@pytest.mark.parametrize("seed", range(4))
def test_string_figures_from_distinct_values_match_every_row(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    numbers = ["1", "1.0", " 01 ", "-5.00", "99.94", "10", "9", "-5", "99.940", " "]  # ties on the bounds
    words = ["a", "", "  ", "x" * 300, "é" * 250, "b c", "12", "z"]
    table = pa.table({
        "numbers": pa.array(rng.choice(numbers, n).tolist(), mask=rng.random(n) < 0.1),
        "mixed": pa.array(rng.choice(numbers + words, n).tolist()),
        "many": pa.array([f"w{v}" for v in rng.integers(0, 150, n)]),
        "bytes": pa.array([bytes([65 + int(v)]) * int(v) for v in rng.integers(0, 30, n)]),
        "large": pa.array(rng.choice(words, n).tolist(), pa.large_string()),
        "dict": pa.array(rng.choice(words, n).tolist()).dictionary_encode(),
    })
    table = pa.concat_tables([table.slice(0, 150), table.slice(150)])
    fast = _report(table)
    with monkeypatch.context() as patch:
        _slow(patch)
        slow = _report(table)
    assert fast == slow
    assert json.loads(fast)["columns"][0]["min"]["order"] == "numeric"
