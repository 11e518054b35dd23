"""BATCH on the local engine: drop counts, fit on train only, the split, the artifact, loaders, bad input."""

from __future__ import annotations

import datetime
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge import dump
from aiforge.batch import FeatureSnapshot, batch
from aiforge.batch._encoders import SPLITS, split_codes
from aiforge.batch.transform import Transform
from aiforge.errors import ColumnNotFound, EmptyResult, InvalidInput, ServiceError

N = 400


def source_table() -> pa.Table:
    """400 rows plus 5 exact copies of ids 10-14; 8 rows with amount < 0, 15 with invalid used values."""
    ids = list(range(N))
    x = [float("nan") if i % 40 == 3 else (float("inf") if i == 21 else i / 10) for i in ids]
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array(x, pa.float64()),
            "amount": pa.array([-1.0 if i % 50 == 7 else float(i % 13) for i in ids]),
            "country": pa.array([None if i % 100 == 99 else ("kr", "us", "us", "jp", "fr")[i % 5] for i in ids]),
            "review": pa.array([("good item", "bad item", "Good, good value", "")[i % 4] for i in ids]),
            "unused": pa.array([None] * N, pa.string()),
            "y": pa.array([int(i % 3 == 0) for i in ids], pa.int64()),
        }
    )
    return pa.concat_tables([table, table.slice(10, 5)])


SPEC: dict[str, Any] = {
    "input": "events",
    "output": "events_features",
    "id": "id",
    "label": "y",
    "drop": [{"where": "amount < 0"}, {"issue": "duplicate_rows"}, {"issue": "invalid_values"}],
    "features": [
        {"numeric": {"column": "x", "scale": "standardize"}},
        {"numeric": {"column": "amount", "name": "amount_b", "log1p": True, "bucketize": {"bins": 3}}},
        {"categorical": {"column": "country", "top_k": 2}},
        {"categorical": {"column": "country", "name": "country_h", "encoding": "hash", "buckets": 4}},
        {"text": {"column": "review", "encoding": "tfidf"}},
    ],
}


@pytest.fixture
def events(workspace, tmp_path: Path):
    path = tmp_path / "events.parquet"
    pq.write_table(source_table(), path)
    return dump(path, name="events", workspace=workspace)


def assert_nothing_written(workspace, only: list[str]) -> None:
    assert [s.ref for s in workspace.list_snapshots()] == only
    assert not (workspace.snapshots_dir / "events_features").exists()
    assert not workspace.tmp_dir.exists() or list(workspace.tmp_dir.iterdir()) == []


def test_drop_counts_splits_and_manifest(workspace, events) -> None:
    feats = batch(SPEC, workspace=workspace)
    assert isinstance(feats, FeatureSnapshot) and feats.ref == "events_features@v1"
    manifest = feats.manifest
    assert manifest["drops"] == [
        {"rule": "where: amount < 0", "rows": 8},
        {"rule": "issue: duplicate_rows", "rows": 5},
        {"rule": "issue: invalid_values", "rows": 15},
    ]
    assert (manifest["rows_in"], manifest["rows"], manifest["source"]) == (405, 377, "events@v1")
    assert [c["name"] for c in manifest["schema"]] == ["id", "split", "label", "features"]
    assert manifest["schema"][3]["type"] == "fixed_size_list<item: float>[15]"
    train_ids = {r["id"] for r in feats.to_arrow().to_pylist() if r["split"] == "train"}
    counts = Counter(r["country"] for r in source_table().slice(0, N).to_pylist() if r["id"] in train_ids)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    assert top[0][0] == "us"
    assert feats.feature_names[:7] == [
        "x",
        "amount_b#b0",
        "amount_b#b1",
        "amount_b#b2",
        "country=us",
        f"country={top[1][0]}",
        "country=__other__",
    ]
    assert feats.feature_names[7:11] == ["country_h#h0", "country_h#h1", "country_h#h2", "country_h#h3"]
    assert sorted(feats.feature_names[11:]) == ["review:bad", "review:good", "review:item", "review:value"]
    assert manifest["n_features"] == len(feats.feature_names) == 15
    table = feats.to_arrow()
    ids = table.column("id").to_numpy()
    assert sorted(ids.tolist()) == [i for i in range(N) if i % 50 != 7 and i % 40 != 3 and i != 21 and i % 100 != 99]
    expected_split = np.asarray(SPLITS)[split_codes(table.column("id"), train=0.8, valid=0.1, seed=0)]
    assert table.column("split").to_pylist() == expected_split.tolist()
    assert manifest["splits"] == {s: int((expected_split == s).sum()) for s in SPLITS}
    assert (feats.path / "transform.json").is_file() and manifest["transform"]["path"] == "transform.json"


def test_transform_record_equals_every_batch_row(workspace, events) -> None:
    feats = batch(SPEC, workspace=workspace)
    transform = Transform.load(feats)
    records = {row["id"]: row for row in source_table().to_pylist()}
    for row in feats.to_arrow().to_pylist():
        record = json.loads(json.dumps(records[row["id"]]))
        got = transform.transform_record(record)
        assert np.array_equal(got, np.asarray(row["features"], dtype=np.float32)), row["id"]


def test_statistics_come_from_the_train_split_only(workspace, tmp_path: Path) -> None:
    table = source_table().slice(0, N)
    codes = split_codes(table.column("id"), train=0.8, valid=0.1, seed=0)
    held_out = int(np.flatnonzero(codes == 2)[0])
    spec = {
        **SPEC,
        "drop": [{"issue": "invalid_values", "columns": ["x"]}],
        "features": [SPEC["features"][0], {"categorical": {"column": "country", "encoding": "ordinal"}}],
    }
    states = []
    for version, (value, country) in enumerate([(1e9, "zz"), (-5.0, "yy")], start=1):
        x = table.column("x").to_pylist()
        c = table.column("country").to_pylist()
        x[held_out], c[held_out] = value, country
        changed = table.set_column(1, "x", pa.array(x)).set_column(3, "country", pa.array(c))
        pq.write_table(changed, tmp_path / f"v{version}.parquet")
        dump(tmp_path / f"v{version}.parquet", name="events", workspace=workspace)
        feats = batch({**spec, "input": f"events@v{version}"}, workspace=workspace)
        states.append(json.loads((feats.path / "transform.json").read_text())["state"])
    assert states[0] == states[1]
    train_x = np.array(
        [v for v, s in zip(table.column("x").to_pylist(), codes, strict=True) if s == 0 and np.isfinite(v)]
    )
    assert states[0][0]["mean"] == pytest.approx(train_x.mean(), rel=1e-12)
    assert states[0][0]["std"] == pytest.approx(train_x.std(), rel=1e-12)
    assert "zz" not in states[0][1]["vocabulary"] and "yy" not in states[0][1]["vocabulary"]


def test_same_output_across_runs_and_sample(workspace, events) -> None:
    first, second = batch(SPEC, workspace=workspace), batch(SPEC, workspace=workspace)
    assert second.ref == "events_features@v2"
    assert first.manifest["content_hash"] == second.manifest["content_hash"]
    small = batch(SPEC, workspace=workspace, sample=100, progress=True)
    assert small.manifest["rows_in"] == 100 and small.manifest["sample"] == 100
    assert small.manifest["drops"][0]["rows"] == 2  # ids 7 and 57


def test_to_numpy_and_torch(workspace, events, monkeypatch: pytest.MonkeyPatch) -> None:
    feats = batch(SPEC, workspace=workspace)
    X, y = feats.to_numpy()
    assert X.shape == (377, 15) and X.dtype == np.float32 and y is not None and y.shape == (377,)
    Xt, yt = feats.to_numpy("train")
    assert Xt.shape[0] == feats.manifest["splits"]["train"] and yt is not None
    table = feats.to_arrow()
    assert np.array_equal(X, np.asarray(table.column("features").to_pylist(), dtype=np.float32))
    with pytest.raises(InvalidInput, match=r"^unknown split 'dev'; expected one of: train, valid, test"):
        feats.to_numpy("dev")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InvalidInput, match=r"^to_torch\(\) needs PyTorch, which is not installed"):
        feats.to_torch()


def test_to_torch_dataset(workspace, events) -> None:
    torch = pytest.importorskip("torch")
    feats = batch(SPEC, workspace=workspace)
    data = feats.to_torch("valid")
    x, _y = data[0]
    assert x.dtype == torch.float32 and x.shape == (15,) and len(data) == feats.manifest["splits"]["valid"]


def with_(**changes: Any) -> dict[str, Any]:
    return {**SPEC, **changes}


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (
            with_(label="target"),
            ColumnNotFound,
            "column 'target' (label) not found in snapshot events@v1; available columns: id, x, amount, "
            "country, review, unused, y",
        ),
        (
            with_(features=[{"numeric": {"column": "x"}}, {"text": {"column": "body"}}]),
            ColumnNotFound,
            "column 'body' (features[1].text.column) not found in snapshot events@v1; available columns: id, x, "
            "amount, country, review, unused, y",
        ),
        (
            with_(drop=[{"where": "amount < 0"}, {"where": "amout > 3"}]),
            InvalidInput,
            "drop[1].where: cannot evaluate 'amout > 3' on the snapshot: ",
        ),
        (
            with_(label="unused", drop=[]),
            InvalidInput,
            "label 'unused' has no non-null value in the train split of events@v1 after the drop rules",
        ),
        (
            with_(drop=[{"where": "y = 1"}]),
            InvalidInput,
            "label 'y' has only one class ('0') in the train split of events@v1 after the drop rules; a model "
            "needs at least two distinct labels: check the label column and the drop rules",
        ),
        (
            with_(drop=[{"where": "id >= 0"}]),
            EmptyResult,
            "the drop rules removed all 405 rows of events@v1; nothing was written",
        ),
        (
            with_(id="x"),
            InvalidInput,
            "id column 'x' has type double; the split hashes integer or string ids",
        ),
        (with_(input="nothing"), Exception, "snapshot 'nothing' not found in workspace"),
        (with_(output="bad name"), InvalidInput, "invalid snapshot name 'bad name'"),
    ],
)
def test_bad_input_writes_nothing(workspace, events, spec, error, message) -> None:
    with pytest.raises(error, match="^" + re.escape(message)):
        batch(spec, workspace=workspace)
    assert_nothing_written(workspace, ["events@v1"])


def test_bad_options(workspace, events) -> None:
    with pytest.raises(InvalidInput, match=r"^unknown engine 'dask'; expected one of: local, spark$"):
        batch(SPEC, workspace=workspace, engine="dask")
    with pytest.raises(InvalidInput, match=r"^--master 'local\[2\]' only applies to --engine spark"):
        batch(SPEC, workspace=workspace, master="local[2]")
    with pytest.raises(InvalidInput, match=r"^sample must be a positive integer or None; got 0$"):
        batch(SPEC, workspace=workspace, sample=0)
    with pytest.raises(InvalidInput, match=r"^invalid batch spec \(mapping\): 1 error\n  features\[0\]\.numeric"):
        batch(with_(features=[{"numeric": {"column": "x", "clip": [1, 0]}}]), workspace=workspace)
    assert_nothing_written(workspace, ["events@v1"])


@pytest.fixture(scope="module")
def failing_nlp() -> Iterator[str]:
    """A real HTTP server on loopback that answers 503 to every tokenize request."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from aiforge.nlp import NlpServer

    app = FastAPI()

    @app.get("/health/ready")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/tokenize")
    def broken() -> JSONResponse:
        return JSONResponse({"error": "analyzer crashed"}, status_code=503)

    with NlpServer(app) as server:
        yield server.url


def closed_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["down", "5xx"])
def test_nlp_failure_is_clear_and_writes_nothing(workspace, events, failing_nlp, kind) -> None:
    url = closed_port() if kind == "down" else failing_nlp
    spec = with_(nlp={"url": url, "retries": 2, "backoff": 0.01})
    last = "ConnectError" if kind == "down" else "status 503"
    with pytest.raises(
        ServiceError,
        match=rf"^NLP API at {re.escape(url)}/v1/tokenize failed after 3 attempts; "
        rf"last {last}",
    ):
        batch(spec, workspace=workspace)
    assert_nothing_written(workspace, ["events@v1"])


def test_nlp_api_gives_the_in_process_tokens(workspace, events) -> None:
    from aiforge.nlp import NlpServer, create_nlp_app

    with NlpServer(create_nlp_app()) as server:
        remote = batch(with_(nlp={"url": server.url}), workspace=workspace)
    local = batch(SPEC, workspace=workspace)
    assert remote.feature_names == local.feature_names
    assert remote.manifest["content_hash"] == local.manifest["content_hash"]


def typed_table() -> pa.Table:
    """One column of each Arrow type family a snapshot can hold, 40 rows, two classes in ``y``."""
    n = 40
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "word": pa.array([("red", "blue", "green")[i % 3] for i in range(n)]),
            "digits": pa.array([str(i) for i in range(n)]),
            "price": pa.array([i / 4 for i in range(n)]),
            "count": pa.array([i % 5 for i in range(n)], pa.int32()),
            "flag": pa.array([i % 2 == 0 for i in range(n)]),
            "day": pa.array([datetime.date(2026, 1, 1 + i % 28) for i in range(n)], pa.date32()),
            "blob": pa.array([bytes([i, 255]) for i in range(n)], pa.binary()),
            "pair": pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int64())),
            "y": pa.array([i % 2 for i in range(n)], pa.int64()),
        }
    )


@pytest.fixture
def typed(workspace, tmp_path: Path):
    path = tmp_path / "typed.parquet"
    pq.write_table(typed_table(), path)
    return dump(path, name="typed", workspace=workspace)


def _typed_spec(features: list[dict[str, Any]], label: str | None = "y") -> dict[str, Any]:
    return {"input": "typed", "output": "typed_features", "id": "id", "label": label, "features": features}


TYPE_ERRORS = [
    (
        [{"numeric": {"column": "price"}}, {"numeric": {"column": "word", "scale": "standardize"}}],
        "y",
        "features[1].numeric.column: column 'word' of snapshot typed@v1 has type string; a numeric feature needs "
        "numbers (integer, floating point, decimal or boolean): cast it to a number in the dump query, or use a "
        "categorical feature",
    ),
    (  # digits in a string column are still a string: the type decides, before any row is read
        [{"numeric": {"column": "digits"}}],
        "y",
        "features[0].numeric.column: column 'digits' of snapshot typed@v1 has type string; a numeric feature",
    ),
    (
        [{"numeric": {"column": "day", "bucketize": {"bins": 3}}}],
        "y",
        "features[0].numeric.column: column 'day' of snapshot typed@v1 has type date32[day]; a numeric feature",
    ),
    (
        [{"categorical": {"column": "pair"}}],
        "y",
        "features[0].categorical.column: column 'pair' of snapshot typed@v1 has type list<element: int64>; a "
        "categorical feature needs one value per row (a string, number, boolean or date): pick another column, or "
        "turn the list into a value in the dump query",
    ),
    (
        [{"categorical": {"column": "blob", "encoding": "hash"}}],
        "y",
        "features[0].categorical.column: column 'blob' of snapshot typed@v1 has type binary; a categorical feature "
        "needs one value per row (a string, number, boolean or date): decode the bytes to text in the dump query",
    ),
    (
        [{"text": {"column": "count"}}],
        "y",
        "features[0].text.column: column 'count' of snapshot typed@v1 has type int32; a text feature needs a string "
        "column: use a numeric or categorical feature, or cast it to text in the dump query",
    ),
    (
        [{"numeric": {"column": "price"}}],
        "pair",
        "label: column 'pair' of snapshot typed@v1 has type list<element: int64>; a label needs one value per row "
        "(a string, number, boolean or date): pick another column, or turn the list into a value in the dump query",
    ),
]


@pytest.mark.parametrize(("features", "label", "message"), TYPE_ERRORS)
def test_a_feature_over_a_column_of_the_wrong_type_fails_before_any_work(
    workspace, typed, monkeypatch: pytest.MonkeyPatch, features, label, message
) -> None:
    import aiforge.batch._batch as batch_module

    def no_work(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an engine was started")

    monkeypatch.setattr(batch_module, "_runner", no_work)
    with pytest.raises(InvalidInput, match="^" + re.escape(message)):
        batch(_typed_spec(features, label), workspace=workspace)
    assert [s.ref for s in workspace.list_snapshots()] == ["typed@v1"]


def test_categories_of_numbers_booleans_and_dates_are_their_text(workspace, typed) -> None:
    features = [
        {"categorical": {"column": "price", "top_k": 2}},
        {"categorical": {"column": "flag", "encoding": "ordinal"}},
        {"categorical": {"column": "day", "encoding": "hash", "buckets": 3}},
        {"numeric": {"column": "flag", "name": "flag_n"}},
        {"numeric": {"column": "count", "scale": "minmax"}},
        {"text": {"column": "word", "encoding": "hash", "buckets": 4}},
    ]
    feats = batch(_typed_spec(features, label="flag"), workspace=workspace)
    # every price is seen once, so the top 2 are the first texts of the train split's prices (id 0 is not in train)
    assert feats.feature_names == [
        "price=0.25", "price=0.5", "price=__other__", "flag", "day#h0", "day#h1", "day#h2", "flag_n", "count",
        "word#h0", "word#h1", "word#h2", "word#h3",
    ]
    X, _ = feats.to_numpy()
    assert X.shape == (40, 13) and np.isfinite(X).all()


def test_transform_fit_checks_the_column_types_too() -> None:
    table = pa.table({"word": ["a", "b"], "x": [1.0, 2.0]})
    with pytest.raises(InvalidInput, match=r"^features\[1\]\.numeric\.column: column 'word' has type string; a "
                                           r"numeric feature needs numbers"):
        Transform(features=[{"numeric": {"column": "x"}}, {"numeric": {"column": "word"}}]).fit(table)
