"""CLEAN on real tables: missing feature values are imputed for the checkers (and said so), and a BATCH feature
snapshot is cleaned from its feature vectors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aiforge import dump
from aiforge.batch import batch
from aiforge.clean import clean
from aiforge.clean._features import impute_missing
from aiforge.cli import app
from aiforge.errors import InvalidInput
from aiforge.workspace import Workspace

NAN, INF = float("nan"), float("inf")


def _pets(blobs: Any) -> tuple[pa.Table, np.ndarray]:
    """The blobs with 10% of the labels flipped, x0 missing in 29 rows (18 null, 11 NaN), an id, a kind."""
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    names = np.array(["cat", "dog", "eel"])
    x0 = [None if i % 17 == 3 else (NAN if i % 29 == 5 else float(v)) for i, v in enumerate(X[:, 0])]
    table = pa.table({"id": np.arange(len(y)), "x0": pa.array(x0, pa.float64()), "x1": X[:, 1], "kind": names[noisy]})
    return table, names[y]


def _observed(table: pa.Table, column: str) -> np.ndarray:
    values = np.array([v for v in table.column(column).to_pylist() if v is not None], dtype=np.float64)
    return values[np.isfinite(values)]


@pytest.mark.parametrize(
    ("strategy", "fill"),
    [("median", 4.0), ("mean", 5.0), ("most_frequent", 1.0)],
)
def test_each_strategy_fills_with_its_hand_computed_value(strategy: str, fill: float) -> None:
    # observed 1, 1, 2, 6, 8, 12: median (2 + 6) / 2 = 4, mean 30 / 6 = 5, most frequent 1; NaN and inf are missing
    column = [1.0, 12.0, NAN, 2.0, 1.0, INF, 8.0, 6.0]
    matrix = np.array([column, [3.0] * 8]).T
    filled, info = impute_missing(matrix.copy(), [("x", None), ("y", None)], strategy, 8)
    assert filled[:, 0].tolist() == [1.0, 12.0, fill, 2.0, 1.0, fill, 8.0, 6.0]
    assert filled[:, 1].tolist() == [3.0] * 8
    assert info == {"x": {"missing": 2, "value": fill}}


def test_vector_positions_are_filled_one_by_one_and_ties_take_the_smallest() -> None:
    matrix = np.array([[1.0, 7.0], [NAN, 5.0], [3.0, NAN], [3.0, 5.0], [1.0, 7.0]])
    filled, info = impute_missing(matrix, [("v", 0), ("v", 1)], "most_frequent", 5)
    assert filled.tolist() == [[1.0, 7.0], [1.0, 5.0], [3.0, 5.0], [3.0, 5.0], [1.0, 7.0]]
    assert info == {"v": {"missing": 2, "values": {0: 1.0, 1: 5.0}}}


def test_clean_imputes_the_median_and_keeps_the_snapshot_as_it_was(workspace: Workspace, blobs: Any) -> None:
    table, truth = _pets(blobs)
    result = clean(table, label="kind", workspace=workspace, seed=0)
    observed = _observed(table, "x0")
    expected = {"strategy": "median", "filled": {"x0": {"missing": 29, "value": float(np.median(observed))}}}
    assert result.snapshot.manifest["clean"]["impute"] == expected
    assert result.report["impute"] == expected
    assert json.loads(result.json_path.read_text())["impute"]["filled"]["x0"]["missing"] == 29
    assert "Missing feature values, filled with the median of their column" in result.html_path.read_text()
    assert "<td>x0 29 (median, for the checkers only)</td>" in result._repr_html_()
    out = result.snapshot.to_arrow()
    assert out.column("x0").null_count == table.column("x0").null_count == 18  # the snapshot keeps them missing
    assert (np.array(out.column("kind").to_pylist()) == truth).mean() >= 0.95
    # the checkers saw the median: cleaning the table with the median written in gives the same labels
    x0 = np.array([NAN if v is None else v for v in table.column("x0").to_pylist()])
    x0[~np.isfinite(x0)] = np.median(observed)
    filled = clean(table.set_column(1, "x0", pa.array(x0)), label="kind", out="filled", workspace=workspace, seed=0)
    assert filled.snapshot.manifest["clean"]["impute"] == {"strategy": "median", "filled": {}}
    assert filled.snapshot.to_arrow().column("kind").to_pylist() == out.column("kind").to_pylist()


def test_impute_mean_and_most_frequent_record_their_values(workspace: Workspace, blobs: Any) -> None:
    table, _ = _pets(blobs)
    observed = _observed(table, "x0")
    mean = clean(table, label="kind", impute="mean", method="split", workspace=workspace)
    assert mean.report["impute"]["filled"]["x0"]["value"] == pytest.approx(observed.mean(), rel=1e-12)
    table = table.set_column(2, "x1", pa.array([None if i < 3 else float(i % 3) for i in range(table.num_rows)]))
    frequent = clean(table, label="kind", impute="most_frequent", method="split", workspace=workspace)
    assert frequent.report["impute"]["filled"]["x1"] == {"missing": 3, "value": 0.0}  # 0, 1, 2: 99 each


def test_impute_none_keeps_refusing_missing_values(workspace: Workspace, blobs: Any) -> None:
    table, _ = _pets(blobs)
    message = (
        "feature column 'x0' has 18 missing values; impute them (impute='median', --impute median) or drop them "
        "before cleaning"
    )
    with pytest.raises(InvalidInput, match="^" + re.escape(message) + "$"):
        clean(table, label="kind", impute=None, workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^X has 11 NaN and 0 infinite values \(rows 4, 32, 59, 86, 114, \.\.\.\)"):
        clean(table.filter(table.column("x0").is_valid()), label="kind", impute=None, workspace=workspace)
    with pytest.raises(
        InvalidInput,
        match=r"^unknown impute 'zero'; use one of: median, mean, most_frequent, or None to refuse missing values$",
    ):
        clean(table, label="kind", impute="zero", workspace=workspace)
    assert workspace.list_snapshots() == []


def test_a_column_without_a_value_is_skipped_by_default_and_refused_by_name(workspace: Workspace, blobs: Any) -> None:
    table, _ = _pets(blobs)
    table = table.append_column("empty", pa.array([None] * table.num_rows, pa.float64()))
    result = clean(table, label="kind", method="split", workspace=workspace)
    assert result.report["features"] == ["x0", "x1"]
    message = "feature column 'empty' has no value to impute from: all 300 rows are missing; leave it out of features"
    with pytest.raises(InvalidInput, match="^" + re.escape(message) + "$"):
        clean(table, label="kind", features=["x1", "empty"], workspace=workspace)


def test_a_vector_column_is_spread_into_its_positions(workspace: Workspace, blobs: Any) -> None:
    table, _ = _pets(blobs)
    X = np.column_stack([blobs[0], blobs[0][:, 0] - blobs[0][:, 1]])
    vectors: list[Any] = X.tolist()
    vectors[7], vectors[8][2] = None, None  # a missing vector and a missing value inside one
    both = pa.table({"v": pa.array(vectors, pa.list_(pa.float32(), 3)), "kind": table.column("kind")})
    result = clean(both, label="kind", method="split", workspace=workspace)
    assert result.report["features"] == ["v"]
    filled = result.report["impute"]["filled"]["v"]
    assert filled["missing"] == 4 and sorted(filled["values"]) == [0, 1, 2]
    ragged = pa.table({"v": pa.array([[1.0, 2.0], [3.0]] * 150), "kind": table.column("kind")})
    message = (
        "feature column 'v' of table holds vectors of different lengths (1 and 2); checkers need one length: name the "
        "columns to use with features=[...]"
    )
    with pytest.raises(InvalidInput, match="^" + re.escape(message) + "$"):
        clean(ragged, label="kind", workspace=workspace)


def _commit(workspace: Workspace, table: pa.Table, name: str, tmp_path: Any) -> Any:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    return dump(path, name=name, workspace=workspace)


def test_the_cli_cleans_a_snapshot_with_missing_values(workspace: Workspace, blobs: Any, tmp_path: Any) -> None:
    table, _ = _pets(blobs)
    _commit(workspace, table, "pets", tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["clean", "pets", "--label", "kind", "--method", "split", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    report = json.loads(Path(summary["json"]).read_text(encoding="utf-8"))
    assert summary["output"] == "pets_clean@v1" and report["impute"]["filled"]["x0"]["missing"] == 29
    assert Path(summary["json"]).name == "stats.json"  # every report's JSON has the documented name
    assert summary["impute"]["filled"]["x0"]["missing"] == 29
    result = runner.invoke(app, ["clean", "pets", "-l", "kind", "--method", "split", "--impute", "mean"])
    assert result.exit_code == 0, result.output
    assert workspace.get_snapshot("pets_clean@v2").manifest["clean"]["impute"]["strategy"] == "mean"
    assert ("Missing feature values filled with the mean for the checkers (the snapshot keeps them missing): x0 29"
            in result.stdout.splitlines())
    result = runner.invoke(app, ["clean", "pets", "-l", "kind", "--impute", "none"])
    assert result.exit_code == 1 and result.stderr == (
        "Error: feature column 'x0' has 18 missing values; impute them (impute='median', --impute median) or drop "
        "them before cleaning\n"
    )
    result = runner.invoke(app, ["clean", "pets", "-l", "kind", "--impute", "zero"])
    assert result.exit_code == 2 and "'zero' is not one of" in result.stderr
    assert [s.ref for s in workspace.list_snapshots()] == ["pets@v1", "pets_clean@v1", "pets_clean@v2"]


def test_clean_takes_a_batch_feature_snapshot(workspace: Workspace, blobs: Any, tmp_path: Any) -> None:
    table, truth = _pets(blobs)
    _commit(workspace, table, "pets", tmp_path)
    spec = {
        "input": "pets",
        "output": "pets_features",
        "id": "id",
        "label": "kind",
        "features": [
            {"numeric": {"column": "x0", "impute": "median", "scale": "standardize"}},
            {"numeric": {"column": "x1", "scale": "standardize"}},
        ],
    }
    feats = batch(spec, workspace=workspace)
    # the spec's label name works too: a feature snapshot stores it in the column 'label'
    for label in ("label", "kind"):
        result = clean(feats.ref, label=label, method="split", workspace=workspace)
        assert result.report["label"] == "label" and result.report["features"] == ["features"]
    result = CliRunner().invoke(app, ["clean", feats.ref, "--label", "kind", "--json"])
    assert result.exit_code == 0, result.output
    cleaned = workspace.get_snapshot(json.loads(result.stdout)["output"])
    assert cleaned.columns == ["id", "split", "label", "features", "label_given"]
    rows = {r["id"]: r["label"] for r in cleaned.to_arrow().to_pylist()}
    assert np.mean([rows[i] == truth[i] for i in range(len(truth))]) >= 0.95
    # the vector is read as its columns: the same matrix as a table of columns gives the same labels
    X, y = feats.to_numpy()
    flat = pa.table({**{f"f{j}": X[:, j] for j in range(X.shape[1])}, "label": y})
    same = clean(flat, label="label", out="flat", workspace=workspace)
    assert same.snapshot.to_arrow().column("label").to_pylist() == cleaned.to_arrow().column("label").to_pylist()
