"""A workspace written by aiforge 0.1.0 (before the layout change) opens, reads and serves unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import aiforge
from aiforge.batch import FeatureSnapshot, Transform

RELEASE = Path(__file__).parent / "data" / "release-0.1.0"


@pytest.fixture
def old(tmp_path: Path) -> aiforge.Workspace:
    home = tmp_path / "home"
    shutil.copytree(RELEASE, home, ignore=shutil.ignore_patterns("README.md"))
    return aiforge.Workspace(home)


def test_the_catalog_lists_every_snapshot(old: aiforge.Workspace) -> None:
    assert [s.ref for s in old.list_snapshots()] == ["orders@v1", "orders_clean@v1", "orders_features@v1"]
    orders = old.get_snapshot("orders")
    assert orders.rows == 120 and orders.columns == ["id", "x1", "x2", "city", "label"]
    assert orders.manifest["engine"] == "local" and orders.manifest["aiforge_version"] == "0.1.0"
    assert orders.dataset().to_table().num_rows == 120


def test_features_and_their_transform_still_agree(old: aiforge.Workspace) -> None:
    features = FeatureSnapshot.from_snapshot(old.get_snapshot("orders_features@v1"))
    X, y = features.to_numpy()
    assert X.shape == (120, len(features.feature_names)) == (120, 6) and y is not None and set(y.tolist()) == {0, 1}
    transform = Transform.load(features.path / "transform.json")
    assert transform.feature_names_ == features.feature_names
    raw = old.get_snapshot("orders@v1").dataset().to_table()
    rows = {r["id"]: r for r in raw.to_pylist()}
    stored = pq.read_table(features.files).to_pylist()
    for row in stored[:20]:  # a record served today gets exactly the features written by the old release
        served = transform.transform_record(rows[row["id"]])
        np.testing.assert_allclose(served, np.asarray(row["features"], dtype=np.float32), rtol=0, atol=1e-6)


def test_the_cleaned_snapshot_keeps_its_given_labels(old: aiforge.Workspace) -> None:
    cleaned = old.get_snapshot("orders_clean")
    assert "label_given" in cleaned.columns and cleaned.rows == 120
    assert cleaned.manifest["source"] == "snapshot:orders@v1"


def test_the_model_repository_is_served(old: aiforge.Workspace) -> None:
    from aiforge.serve import ModelRepository

    repo = ModelRepository.load(old.home / "models")
    assert repo.names() == ["orders"] and repo.versions("orders") == ["1"]
    version = repo.get("orders")
    x = np.array([[2.0, 2.0], [-2.0, -2.0]], dtype=np.float32)
    outputs = version.run({version.inputs[0].name: x})
    labels = next(v for v in outputs.values() if v.dtype.kind in "iu")
    assert labels.tolist() == [1, 0]


def test_a_new_dump_takes_the_next_version(old: aiforge.Workspace, tmp_path: Path) -> None:
    source = tmp_path / "more.parquet"
    pq.write_table(old.get_snapshot("orders@v1").dataset().to_table(), source)
    assert aiforge.dump(str(source), name="orders", workspace=old).ref == "orders@v2"
