"""BATCH on Spark: the same spec gives the same rows, splits, drop counts and features as the local engine."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge import dump
from aiforge.batch import batch
from aiforge.errors import ColumnNotFound, InvalidInput, ServiceError

pytestmark = pytest.mark.spark

N = 600


def source_table() -> pa.Table:
    """Numbers (with NaN, inf and negatives), categories, English and Korean text, string ids, duplicates."""
    ids = [f"u{i:04d}" for i in range(N)]
    table = pa.table(
        {
            "uid": ids,
            "x": [float("nan") if i % 37 == 5 else (i * 7 % 101) / 3 for i in range(N)],
            "amount": [float("inf") if i == 44 else (-2.0 if i % 61 == 9 else (i % 17) * 1.5) for i in range(N)],
            "n": pa.array([i % 9 for i in range(N)], pa.int32()),
            "city": [
                None if i % 53 == 0 else ("seoul", "busan", "daegu", "incheon", "jeju")[i * 3 % 5] for i in range(N)
            ],
            "review": [
                ("great phone", "배송이 빠르고 좋아요", "Bad battery, great screen", "so-so", "")[i % 5]
                for i in range(N)
            ],
            "label": [("pos", "neg", "neu")[i % 3] for i in range(N)],
        }
    )
    return pa.concat_tables([table, table.slice(100, 7)])


SPEC: dict[str, Any] = {
    "input": "shop",
    "output": "shop_features",
    "id": "uid",
    "label": "label",
    "split": {"train": 0.7, "valid": 0.15, "test": 0.15, "seed": 7},
    "drop": [{"where": "amount < 0"}, {"issue": "duplicate_rows"}, {"issue": "invalid_values"}],
    "features": [
        {"numeric": {"column": "x", "scale": "standardize"}},
        {"numeric": {"column": "x", "name": "x_mm", "clip": [1, 30], "log1p": True, "scale": "minmax"}},
        {"numeric": {"column": "amount", "bucketize": {"bins": 4}}},
        {"categorical": {"column": "city", "top_k": 3}},
        {"categorical": {"column": "n", "encoding": "ordinal"}},
        {"categorical": {"column": "n", "name": "n_hash", "encoding": "hash", "buckets": 5}},
        {"text": {"column": "review", "encoding": "tfidf", "max_features": 20}},
        {"text": {"column": "review", "name": "review_h", "encoding": "hash", "buckets": 16}},
    ],
}


@pytest.fixture(scope="module")
def nlp_url() -> Iterator[str]:
    from aiforge.nlp import NlpServer, create_nlp_app

    with NlpServer(create_nlp_app()) as server:
        yield server.url


@pytest.fixture
def shop(workspace, tmp_path: Path):
    path = tmp_path / "shop.parquet"
    pq.write_table(source_table(), path, row_group_size=150)  # several row groups: several Spark partitions
    return dump(path, name="shop", workspace=workspace)


def by_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in table.to_pylist()}


def test_local_and_spark_give_the_same_features(spark, workspace, shop, nlp_url) -> None:
    spec = {**SPEC, "nlp": {"url": nlp_url, "batch_size": 64}}
    local = batch(spec, workspace=workspace)
    remote = batch(spec, workspace=workspace, engine="spark")
    assert remote.manifest["engine"] == "spark" and remote.manifest["master"] == "local[*]"
    for key in ("rows_in", "drops", "splits", "feature_names", "n_features", "rows", "schema"):
        assert local.manifest[key] == remote.manifest[key], key
    assert local.manifest["drops"] == [
        {"rule": "where: amount < 0", "rows": 10},
        {"rule": "issue: duplicate_rows", "rows": 7},
        {"rule": "issue: invalid_values", "rows": 29},
    ]
    a, b = by_id(local.to_arrow()), by_id(remote.to_arrow())
    assert a.keys() == b.keys()
    for uid, row in a.items():
        assert (row["split"], row["label"]) == (b[uid]["split"], b[uid]["label"]), uid
        np.testing.assert_allclose(row["features"], b[uid]["features"], rtol=0, atol=1e-6)
    assert any(name.startswith("review:배송") for name in local.feature_names)
    state_a = json.loads((local.path / "transform.json").read_text())["state"]
    state_b = json.loads((remote.path / "transform.json").read_text())["state"]
    for left, right in zip(state_a, state_b, strict=True):
        assert left.keys() == right.keys()
        for key in left:
            if isinstance(left[key], float):
                assert left[key] == pytest.approx(right[key], rel=1e-12, abs=1e-12)
            elif key == "idf":
                np.testing.assert_allclose(left[key], right[key], rtol=1e-12)
            else:
                assert left[key] == right[key], key
    X, y = remote.to_numpy("test")
    assert X.shape == (remote.manifest["splits"]["test"], remote.manifest["n_features"]) and y is not None


def test_spark_errors_write_nothing(spark, workspace, shop) -> None:
    with pytest.raises(ColumnNotFound, match=r"^column 'price' \(features\[0\]\.numeric\.column\) not found"):
        batch({**SPEC, "features": [{"numeric": {"column": "price"}}]}, workspace=workspace, engine="spark")
    with pytest.raises(InvalidInput, match=re.escape("drop[0].where: cannot evaluate 'amout < 0' on the snapshot")):
        batch({**SPEC, "drop": [{"where": "amout < 0"}]}, workspace=workspace, engine="spark")
    with pytest.raises(ServiceError, match=r"^NLP API at http://127\.0\.0\.1:\d+/v1/tokenize failed after 2 attempts"):
        batch(
            {**SPEC, "nlp": {"url": "http://127.0.0.1:9", "retries": 1, "backoff": 0.01}},
            workspace=workspace,
            engine="spark",
        )
    assert [s.ref for s in workspace.list_snapshots()] == ["shop@v1"]
    assert not (workspace.snapshots_dir / "shop_features").exists()


def test_spark_refuses_a_numeric_feature_over_strings_before_any_work(spark, workspace, shop) -> None:
    spec = {**SPEC, "features": [*SPEC["features"][:3], {"numeric": {"column": "city", "scale": "standardize"}}]}
    message = (
        "features[3].numeric.column: column 'city' of snapshot shop@v1 has type string; a numeric feature needs "
        "numbers (integer, floating point, decimal or boolean): cast it to a number in the dump query, or use a "
        "categorical feature"
    )
    for engine in ("spark", "local"):
        with pytest.raises(InvalidInput, match="^" + re.escape(message) + "$"):
            batch(spec, workspace=workspace, engine=engine)
    assert [s.ref for s in workspace.list_snapshots()] == ["shop@v1"]
