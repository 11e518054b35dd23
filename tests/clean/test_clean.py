"""The CLEAN stage: a new snapshot with corrected labels and label_given, catalog rows, a report."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from aiforge.clean import clean
from aiforge.errors import ColumnNotFound, InvalidInput, SnapshotNotFound
from aiforge.workspace import Workspace


def _table(blobs) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    names = np.array(["cat", "dog", "eel"])
    table = pa.table({"id": np.arange(len(y)), "x0": X[:, 0], "x1": X[:, 1], "kind": names[noisy]})
    return table, names[y], names[noisy]


def _commit(ws: Workspace, table: pa.Table, name: str):
    import pyarrow.parquet as pq

    with ws.staging("test") as staged:
        (staged / "data").mkdir()
        pq.write_table(table, staged / "data" / "part-00000.parquet")
        size = (staged / "data" / "part-00000.parquet").stat().st_size
        manifest = {
            "rows": table.num_rows,
            "bytes": size,
            "created": "2026-01-01T00:00:00Z",
            "schema": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "files": [{"path": "data/part-00000.parquet", "rows": table.num_rows, "bytes": size}],
        }
        return ws.commit_snapshot(name, staged, manifest)


def test_clean_writes_a_snapshot_with_corrected_labels_and_a_report(workspace, blobs):
    table, truth, noisy = _table(blobs)
    source = _commit(workspace, table, "pets")
    result = clean("pets", label="kind", workspace=workspace, seed=0)
    snap = result.snapshot
    assert snap.ref == "pets_clean@v1"
    assert snap.columns == ["id", "x0", "x1", "kind", "label_given"]
    out = snap.to_arrow()
    assert out.column("label_given").to_pylist() == noisy.tolist()
    assert out.column("id").to_pylist() == list(range(300))
    corrected = np.array(out.column("kind").to_pylist())
    assert (corrected == truth).mean() >= 0.98
    assert result.changed == int((corrected != noisy).sum()) == result.report["changed"]
    assert snap.manifest["source"] == f"snapshot:{source.ref}"
    assert snap.manifest["clean"]["method"] == "pico"
    manifest = snap.manifest
    assert (manifest["engine"], manifest["master"], manifest["clean"]["engine"]) == ("local", None, "local")
    assert snap.manifest["clean"]["features"] == ["x0", "x1"]  # 'id' has a different value in every row
    assert [s.ref for s in workspace.list_snapshots()] == ["pets@v1", "pets_clean@v1"]
    reports = workspace.list_reports()
    assert len(reports) == 1 and reports[0]["subject"] == "pets_clean@v1"
    stored = json.loads(result.json_path.read_text())
    assert stored["changed"] == result.changed and stored["distribution"]["before"]["cat"] == int(
        (noisy == "cat").sum()
    )
    assert sum(c["count"] for c in stored["top_confusions"]) == result.changed
    page = result.html_path.read_text()
    assert "<svg" in page and "http" not in page.replace("http-equiv", "")
    assert f"<b>{result.changed:,}</b> of 300 labels changed" in page


def test_clean_table_with_named_features_and_vote(workspace, blobs):
    table, truth, _ = _table(blobs)
    result = clean(table, label="kind", features=["x0", "x1"], method="vote", out="pets2", workspace=workspace)
    assert result.snapshot.ref == "pets2@v1"
    corrected = np.array(result.snapshot.to_arrow().column("kind").to_pylist())
    assert (corrected == truth).mean() >= 0.98
    again = clean(table, label="kind", features=["x0", "x1"], method="vote", out="pets2", workspace=workspace)
    assert again.snapshot.ref == "pets2@v2"
    assert again.snapshot.manifest["content_hash"] == result.snapshot.manifest["content_hash"]


def test_clean_split_method(workspace, blobs):
    table, _, _ = _table(blobs)
    result = clean(table, label="kind", features=["x0", "x1"], method="split", workspace=workspace)
    assert result.report["method"] == "split" and result.snapshot.ref == "clean@v1"


def test_clean_errors(workspace, blobs):
    table, _, _ = _table(blobs)
    with pytest.raises(ColumnNotFound, match=r"^label column 'label' not found in table; available columns: id, x0"):
        clean(table, label="label", workspace=workspace)
    with pytest.raises(ColumnNotFound, match=r"^feature column\(s\) 'x9' not found in table"):
        clean(table, label="kind", features=["x9"], workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^unknown method 'magic'; use one of: pico, vote, split$"):
        clean(table, label="kind", method="magic", workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^unknown checker 'svm'"):
        clean(table, label="kind", checker="svm", workspace=workspace)
    with pytest.raises(SnapshotNotFound):
        clean("nope", label="kind", workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^unknown engine 'ray'; expected one of: local, spark$"):
        clean(table, label="kind", engine="ray", workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^engine='spark' trains PICO's checkers on Spark; method 'vote' runs"):
        clean(table, label="kind", method="vote", engine="spark", workspace=workspace)
    with pytest.raises(
        InvalidInput,
        match=r"^--master 'spark://h:7077' only applies to --engine spark; drop it or add --engine spark$",
    ):
        clean(table, label="kind", master="spark://h:7077", workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^seed must be an integer >= 0; got -1$"):
        clean(table, label="kind", seed=-1, workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^feature column\(s\) 'kind2' \(string\) of table are not numeric; "
                                           r"encode them first \(aiforge batch\) or pass one text column alone with "
                                           r"checker='text'$"):
        clean(
            table.append_column("kind2", table.column("kind")),
            label="kind",
            features=["x0", "kind2"],
            workspace=workspace,
        )
    assert workspace.list_snapshots() == []


@pytest.mark.spark
def test_clean_on_spark_equals_clean_on_local_processes(workspace, blobs, spark):
    table, _, _ = _table(blobs)
    local = clean(table, label="kind", out="local", workspace=workspace, seed=3)
    on_spark = clean(table, label="kind", out="spark", engine="spark", workspace=workspace, seed=3)
    assert on_spark.snapshot.manifest["clean"]["engine"] == "spark"
    # the manifest records the engine that really ran, as every stage does (Engine.describe)
    assert (on_spark.snapshot.manifest["engine"], on_spark.snapshot.manifest["master"]) == ("spark", "local[*]")
    assert (local.snapshot.manifest["engine"], local.snapshot.manifest["master"]) == ("local", None)
    corrected = on_spark.snapshot.to_arrow().column("kind").to_pylist()
    assert corrected == local.snapshot.to_arrow().column("kind").to_pylist()


def _with_words(blobs) -> pa.Table:
    table, _, _ = _table(blobs)
    words = np.array(["a b", "c", ""])  # no word of two letters: nothing for TF-IDF to learn from
    return table.append_column("note", pa.array(words[np.arange(table.num_rows) % 3]))


def test_a_string_feature_column_is_refused_with_its_type(workspace, blobs):
    table = _with_words(blobs)
    for checker in (None, "forest"):
        name = checker or "knn"
        with pytest.raises(InvalidInput, match=rf"^feature column 'note' of table has type string; checker '{name}' "
                                               r"needs numeric features: add checker='text' to judge the labels from "
                                               r"this text, or encode it first \(aiforge batch\)$"):
            clean(table, label="kind", features=["note"], checker=checker, workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^checker 'text' judges one string feature column; features 'x0' "
                                           r"\(double\), 'x1' \(double\) of table are not text: name one string "
                                           r"column with features=\[...\], or use another checker$"):
        clean(table, label="kind", checker="text", workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^checker 'text' found no word in any of the 300 texts"):
        clean(table, label="kind", features=["note"], checker="text", workspace=workspace)
    assert workspace.list_snapshots() == []


def test_the_cli_names_the_string_column_and_its_type(workspace, blobs):
    from typer.testing import CliRunner

    from aiforge.cli import app

    _commit(workspace, _with_words(blobs), "notes")
    result = CliRunner().invoke(app, ["clean", "notes", "-l", "kind", "-f", "note", "--method", "split"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "Error: feature column 'note' of notes@v1 has type string; checker 'knn' needs numeric features: add "
        "checker='text' to judge the labels from this text, or encode it first (aiforge batch)\n"
    )
    result = CliRunner().invoke(app, ["clean", "notes", "-l", "kind", "-f", "note", "--checker", "text"])
    assert result.exit_code == 1 and result.stderr.startswith("Error: checker 'text' found no word in any of the 300 ")
