"""BATCH imputation: each strategy's fill value on hand-computed cases, fitted on the train split only, kept in
transform.json, the same on Spark, and refused where it makes no sense."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge import dump
from aiforge.batch import batch
from aiforge.batch._encoders import hash_bucket, split_codes
from aiforge.batch.spec import load_spec
from aiforge.batch.transform import Transform
from aiforge.errors import InvalidInput

NAN, INF = float("nan"), float("inf")
# observed values 1, 1, 2, 6, 8, 12: mean 30 / 6 = 5, median (2 + 6) / 2 = 4, most frequent 1
X = [1.0, 12.0, None, 2.0, 1.0, NAN, 8.0, INF, 6.0]


def fit(*features: dict[str, Any], **columns: list[Any]) -> Transform:
    return Transform(features=list(features)).fit(pa.table(columns))


@pytest.mark.parametrize(
    ("impute", "fill"),
    [
        ({"impute": "mean"}, 5.0),
        ({"impute": "median"}, 4.0),
        ({"impute": "most_frequent"}, 1.0),
        ({"impute": "constant", "fill_value": -3}, -3.0),
    ],
)
def test_each_numeric_strategy_fills_missing_nan_and_inf_with_its_value(impute: dict[str, Any], fill: float) -> None:
    t = fit({"numeric": {"column": "x", **impute}}, x=X)
    assert t.state_[0]["fill"] == fill and isinstance(t.state_[0]["fill"], float)
    got = t.transform(pa.table({"x": X}))[:, 0]
    assert got.tolist() == [1.0, 12.0, fill, 2.0, 1.0, fill, 8.0, fill, 6.0]
    assert t.transform_record({"x": None}).tolist() == [fill]


def test_the_fill_comes_before_clip_log1p_and_scaling_statistics_use_observed_values() -> None:
    t = fit({"numeric": {"column": "x", "impute": "mean", "clip": [0, 10], "log1p": True, "scale": "minmax"}}, x=X)
    # the fill is the raw mean (5), then clipped and log1p'd like any value; min/max come from the observed values
    low, high = math.log1p(1.0), math.log1p(10.0)
    assert (t.state_[0]["fill"], t.state_[0]["min"], t.state_[0]["max"]) == (5.0, low, high)
    assert t.transform_record({"x": None})[0] == pytest.approx((math.log1p(5.0) - low) / (high - low), rel=1e-6)
    t = fit({"numeric": {"column": "x", "impute": "constant", "fill_value": 99, "clip": [0, 10]}}, x=X)
    assert t.transform_record({"x": None}).tolist() == [10.0]


def test_without_impute_a_missing_number_is_still_the_mean_after_clip_and_log1p() -> None:
    t = fit({"numeric": {"column": "x", "clip": [0, 10], "log1p": True}}, x=X)
    assert "fill" not in t.state_[0]
    observed = [math.log1p(v) for v in (1.0, 10.0, 2.0, 1.0, 8.0, 10.0, 6.0)]  # inf is clipped to 10, as before
    assert t.transform_record({"x": None})[0] == pytest.approx(sum(observed) / 7, rel=1e-6)


def test_with_impute_infinity_is_missing_for_the_statistics_too() -> None:
    t = fit(
        {"numeric": {"column": "x", "impute": "constant", "fill_value": 0, "clip": [0, 10], "scale": "minmax"}},
        x=[2.0, INF, 4.0],
    )
    assert (t.state_[0]["min"], t.state_[0]["max"]) == (2.0, 4.0)
    assert t.transform(pa.table({"x": [INF, 3.0]}))[:, 0].tolist() == [-1.0, 0.5]


def test_a_log1p_that_is_not_finite_after_the_fill_falls_back_to_the_mean() -> None:
    t = fit({"numeric": {"column": "x", "impute": "constant", "fill_value": -5, "log1p": True}}, x=[0.0, 1.0, None])
    assert t.transform_record({"x": None})[0] == pytest.approx(math.log(2) / 2, rel=1e-6)


def test_most_frequent_takes_the_smallest_value_on_ties() -> None:
    t = fit(
        {"numeric": {"column": "x", "impute": "most_frequent"}},
        {"categorical": {"column": "c", "impute": "most_frequent"}},
        x=[3.0, 3.0, 1.0, 1.0, 7.0],
        c=["b", "b", "a", "a", None],
    )
    assert [s["fill"] for s in t.state_] == [1.0, "a"]


def test_categorical_most_frequent_fills_before_every_encoding() -> None:
    c = ["kr", None, "us", "us", "jp", None]
    t = fit(
        {"categorical": {"column": "c", "impute": "most_frequent"}},
        {"categorical": {"column": "c", "name": "c_o", "encoding": "ordinal", "impute": "most_frequent"}},
        {"categorical": {"column": "c", "name": "c_h", "encoding": "hash", "buckets": 8, "impute": "most_frequent"}},
        c=c,
    )
    assert [s["fill"] for s in t.state_] == ["us", "us", "us"]
    assert t.state_[0]["vocabulary"] == ["us", "jp", "kr"]  # counted over the observed values
    us = t.transform_record({"c": "us"})
    assert t.transform_record({"c": None}).tolist() == us.tolist()
    assert us.tolist()[:5] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert us[5 + hash_bucket("us", 8)] == 1.0


def test_categorical_constant_fills_with_its_text_form() -> None:
    t = fit(
        {"categorical": {"column": "n", "encoding": "ordinal", "impute": "constant", "fill_value": 7}},
        {"categorical": {"column": "n", "name": "n_1", "impute": "constant", "fill_value": "none"}},
        n=pa.array([7, 7, 3, None], pa.int64()),
    )
    assert [s["fill"] for s in t.state_] == ["7", "none"]
    assert t.feature_names_ == ["n", "n_1=7", "n_1=3", "n_1=__other__"]
    # 7 is the category '7' (index 0); 'none' is not a train category, so it is "other"
    assert t.transform_record({"n": None}).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert t.transform_record({"n": 3}).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_without_impute_a_missing_category_is_still_other() -> None:
    t = fit({"categorical": {"column": "c", "top_k": 1}}, c=["a", "a", None])
    assert t.transform_record({"c": None}).tolist() == [0.0, 1.0]


def test_a_statistic_over_no_value_is_refused() -> None:
    message = (
        "feature 'x': impute 'median' found no value of column 'x' in the train split after the drop rules (every "
        "value is missing); use impute: constant with a fill_value, or check the column"
    )
    with pytest.raises(InvalidInput, match="^" + re.escape(message) + "$"):
        fit(
            {"numeric": {"column": "y"}},
            {"numeric": {"column": "x", "impute": "median"}},
            x=pa.array([None, NAN]),
            y=[1.0, 2.0],
        )
    with pytest.raises(InvalidInput, match=r"^feature 'c': impute 'most_frequent' found no value of column 'c'"):
        fit(
            {"categorical": {"column": "c", "encoding": "hash", "impute": "most_frequent"}},
            c=pa.array([None, None], pa.string()),
        )


def test_transform_json_round_trip_keeps_the_fill_and_marks_version_2(tmp_path: Path) -> None:
    t = fit(
        {"numeric": {"column": "x", "impute": "median", "scale": "standardize"}},
        {"categorical": {"column": "c", "impute": "constant", "fill_value": "other"}},
        x=X,
        c=["a", None, "b", "a", "a", "b", None, "a", "b"],
    )
    data = json.loads(t.save(tmp_path).read_text())
    assert data["version"] == 2
    assert data["features"][0]["numeric"] == {"column": "x", "impute": "median", "log1p": False, "scale": "standardize"}
    assert data["features"][1]["categorical"]["impute"] == "constant"
    assert data["features"][1]["categorical"]["fill_value"] == "other"
    assert [s["fill"] for s in data["state"]] == [4.0, "other"]
    loaded = Transform.load(tmp_path)
    rows = pa.table({"x": [None, 3.0, INF], "c": [None, "a", "zz"]})
    np.testing.assert_array_equal(loaded.transform(rows), t.transform(rows))
    assert (
        loaded.transform_record({"x": None, "c": None}).tolist() == t.transform_record({"x": None, "c": None}).tolist()
    )


def test_an_artifact_without_impute_is_still_version_1() -> None:
    data = fit({"numeric": {"column": "x"}}, x=X).to_dict()
    assert data["version"] == 1 and "fill" not in data["state"][0]
    assert "impute" not in data["features"][0]["numeric"]


BASE: dict[str, Any] = {"input": "t", "output": "o", "id": "id"}


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (
            {"numeric": {"column": "x", "impute": "avg"}},
            "features[0].numeric.impute: Input should be 'mean', 'median', 'most_frequent' or 'constant' (got 'avg')",
        ),
        (
            {"numeric": {"column": "x", "impute": "constant"}},
            "features[0].numeric: 'impute: constant' needs a fill_value, e.g. fill_value: 0",
        ),
        (
            {"numeric": {"column": "x", "impute": "constant", "fill_value": "0"}},
            "features[0].numeric: fill_value of a numeric feature must be a finite number; got '0'",
        ),
        (
            {"numeric": {"column": "x", "impute": "constant", "fill_value": True}},
            "features[0].numeric: fill_value of a numeric feature must be a finite number; got True",
        ),
        (
            {"numeric": {"column": "x", "impute": "constant", "fill_value": NAN}},
            "features[0].numeric: fill_value of a numeric feature must be a finite number; got nan",
        ),
        (
            {"numeric": {"column": "x", "impute": "constant", "fill_value": 10**400}},
            "features[0].numeric: fill_value of a numeric feature must be a finite number; got " + str(10**400),
        ),
        (
            {"numeric": {"column": "x", "fill_value": 3}},
            "features[0].numeric: fill_value 3 is only used with 'impute: constant' (got no impute): set impute: "
            "constant or remove fill_value",
        ),
        (
            {"numeric": {"column": "x", "impute": "median", "fill_value": 3}},
            "features[0].numeric: fill_value 3 is only used with 'impute: constant' (got impute 'median'): set impute: "
            "constant or remove fill_value",
        ),
        (
            {"categorical": {"column": "c", "impute": "median"}},
            "features[0].categorical.impute: impute 'median' needs numbers; a categorical feature takes "
            "'most_frequent' or 'constant' (got 'median')",
        ),
        (
            {"categorical": {"column": "c", "impute": "constant", "fill_value": 1.5}},
            "features[0].categorical: fill_value of a categorical feature must be a category: a string (or an integer "
            "for integer categories); got 1.5",
        ),
        (
            {"categorical": {"column": "c", "impute": "constant"}},
            "features[0].categorical: 'impute: constant' needs a fill_value, e.g. fill_value: unknown",
        ),
        (
            {"text": {"column": "t", "impute": "most_frequent"}},
            "features[0].text: a text feature takes no 'impute': a missing text has no tokens (all zeros); impute it "
            "as a categorical feature, or fill it in the dump query",
        ),
    ],
)
def test_bad_impute_options_name_the_key(feature: dict[str, Any], message: str) -> None:
    expected = "invalid batch spec (mapping): 1 error\n  " + message
    with pytest.raises(InvalidInput, match="^" + re.escape(expected) + "$"):
        load_spec({**BASE, "features": [feature]})


# -- BATCH jobs ------------------------------------------------------------------------------------------------

N = 300
SPLIT = {"train": 0.6, "valid": 0.2, "test": 0.2, "seed": 3}


def people(changes: dict[int, tuple[float | None, str | None]] | None = None) -> pa.Table:
    """300 people: ages with gaps (null, NaN) and cities with gaps; ``changes`` replaces (age, city) by id."""
    ages: list[float | None] = [
        None if i % 11 == 4 else (NAN if i % 23 == 7 else float(20 + i * 7 % 45)) for i in range(N)
    ]
    cities = [None if i % 13 == 2 else ("seoul", "busan", "busan", "jeju")[i * 5 % 4] for i in range(N)]
    for i, (age, city) in (changes or {}).items():
        ages[i], cities[i] = age, city
    return pa.table(
        {
            "pid": pa.array(range(N), pa.int64()),
            "age": pa.array(ages, pa.float64()),
            "city": pa.array(cities, pa.string()),
            "y": pa.array([i % 2 for i in range(N)], pa.int64()),
        }
    )


SPEC: dict[str, Any] = {
    "input": "people",
    "output": "people_features",
    "id": "pid",
    "label": "y",
    "split": SPLIT,
    "features": [
        {"numeric": {"column": "age", "impute": "median"}},
        {"numeric": {"column": "age", "name": "age_mean", "impute": "mean", "scale": "standardize"}},
        {"numeric": {"column": "age", "name": "age_mode", "impute": "most_frequent", "bucketize": {"bins": 3}}},
        {"numeric": {"column": "age", "name": "age_0", "impute": "constant", "fill_value": 0}},
        {"categorical": {"column": "city", "impute": "most_frequent"}},
        {
            "categorical": {
                "column": "city",
                "name": "city_h",
                "encoding": "hash",
                "buckets": 4,
                "impute": "most_frequent",
            }
        },
    ],
}


def codes() -> np.ndarray:
    return split_codes(
        pa.array(range(N), pa.int64()), train=SPLIT["train"], valid=SPLIT["valid"], seed=int(SPLIT["seed"])
    )


def run(workspace: Any, tmp_path: Path, table: pa.Table, version: int, **options: Any) -> Any:
    path = tmp_path / f"people{version}.parquet"
    pq.write_table(table, path, row_group_size=100)
    dump(path, name="people", workspace=workspace)
    return batch({**SPEC, "input": f"people@v{version}"}, workspace=workspace, **options)


def test_batch_fits_the_fill_on_the_train_split_only(workspace, tmp_path: Path) -> None:
    split = codes()
    feats = run(workspace, tmp_path, people(), 1)
    state = json.loads((feats.path / "transform.json").read_text())["state"]
    table = people()
    train_ages = np.array(
        [
            a
            for a, s in zip(table.column("age").to_pylist(), split, strict=True)
            if s == 0 and a is not None and not math.isnan(a)
        ]
    )
    values, counts = np.unique(train_ages, return_counts=True)
    train_cities = [c for c, s in zip(table.column("city").to_pylist(), split, strict=True) if s == 0 and c]
    city_counts = {c: train_cities.count(c) for c in set(train_cities)}
    assert state[0]["fill"] == float(np.median(train_ages))
    assert state[1]["fill"] == pytest.approx(float(train_ages.mean()), rel=1e-12)
    assert state[2]["fill"] == float(values[np.argmax(counts)])
    assert state[3]["fill"] == 0.0
    assert state[4]["fill"] == state[5]["fill"] == max(sorted(city_counts), key=lambda c: city_counts[c])
    # a value that only held-out rows have, many times over, changes no statistic
    held = [int(i) for i in np.flatnonzero(split != 0)[:40]]
    again = run(workspace, tmp_path, people(dict.fromkeys(held, (99.0, "daegu"))), 2)
    assert json.loads((again.path / "transform.json").read_text())["state"] == state
    # every row with a missing age or city got the fill, and serving the record gives the same features
    served = Transform.load(feats)
    records = {r["pid"]: r for r in table.to_pylist()}
    rows = feats.to_arrow().to_pylist()
    for row in rows:
        record = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in records[row["id"]].items()}
        assert served.transform_record(record).tolist() == row["features"], row["id"]
    gap = next(r for r in rows if records[r["id"]]["age"] is None)
    names = feats.feature_names
    assert gap["features"][names.index("age")] == state[0]["fill"] and gap["features"][names.index("age_0")] == 0.0


@pytest.mark.spark
def test_spark_fits_the_same_fill_values_as_the_local_engine(spark, workspace, tmp_path: Path) -> None:
    local = run(workspace, tmp_path, people(), 1)
    remote = batch({**SPEC, "input": "people@v1"}, workspace=workspace, engine="spark")
    state_a = json.loads((local.path / "transform.json").read_text())["state"]
    state_b = json.loads((remote.path / "transform.json").read_text())["state"]
    fills_a, fills_b = [s["fill"] for s in state_a], [s["fill"] for s in state_b]
    assert fills_b[1] == pytest.approx(fills_a[1], rel=1e-12)  # a mean: the engines may add in another order
    assert fills_a[:1] + fills_a[2:] == fills_b[:1] + fills_b[2:]  # the exact median, the most frequent, constants
    a = {r["id"]: r["features"] for r in local.to_arrow().to_pylist()}
    b = {r["id"]: r["features"] for r in remote.to_arrow().to_pylist()}
    assert a.keys() == b.keys()
    for pid, features in a.items():
        np.testing.assert_allclose(features, b[pid], rtol=0, atol=1e-6)
