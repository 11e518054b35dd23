"""The BATCH spec: valid specs load, and every error names the key, what it got and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from aiforge.batch.spec import BatchSpec, load_spec
from aiforge.errors import InvalidInput

BASE: dict[str, Any] = {"input": "t", "output": "o", "id": "id", "features": [{"numeric": {"column": "x"}}]}


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_defaults_and_used_columns() -> None:
    spec = load_spec(
        with_(
            label="y",
            features=[
                {"numeric": {"column": "x", "scale": "standardize"}},
                {"categorical": {"column": "c", "encoding": "hash", "buckets": 8}},
                {"text": {"column": "t"}},
                {"numeric": {"column": "x", "name": "x_log", "log1p": True}},
            ],
        )
    )
    assert isinstance(spec, BatchSpec)
    assert (spec.split.train, spec.split.valid, spec.split.test, spec.split.seed) == (0.8, 0.1, 0.1, 0)
    assert [f.kind for f in spec.features] == ["numeric", "categorical", "text", "numeric"]
    assert [f.name for f in spec.features] == ["x", "c", "t", "x_log"]
    assert spec.used_columns() == ["id", "y", "x", "c", "t"]
    assert spec.features[2].text is not None and spec.features[2].text.encoding == "tfidf"
    assert load_spec(spec) is spec


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "input: orders@v1\noutput: feats\nid: order_id\nlabel: returned\n"
        "drop:\n  - where: amount < 0\n  - issue: duplicate_rows\n"
        "features:\n  - numeric: {column: amount, clip: [0, 100], log1p: true, scale: standardize}\n"
        "  - categorical: {column: country, top_k: 3}\n",
        encoding="utf-8",
    )
    spec = load_spec(path)
    assert spec.input == "orders@v1"
    assert [rule.label for rule in spec.drop] == ["where: amount < 0", "issue: duplicate_rows"]
    assert spec.features[0].numeric is not None and spec.features[0].numeric.clip == (0.0, 100.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            with_(
                features=[
                    {"numeric": {"column": "x"}},
                    {"numeric": {"column": "y"}},
                    {"numeric": {"column": "z", "clip": [5, 1]}},
                ]
            ),
            "  features[2].numeric.clip: clip must be [low, high] with low < high (got [5, 1])",
        ),
        (
            with_(features=[{"numeric": {"column": "x", "scale": "zscore"}}]),
            "  features[0].numeric.scale: Input should be 'standardize', 'minmax' or 'none' (got 'zscore')",
        ),
        (
            with_(features=[{"numerc": {"column": "x"}}]),
            "  features[0]: unknown key 'numerc'; allowed keys: numeric, categorical, text",
        ),
        (
            with_(features=[{}]),
            "  features[0]: each feature needs exactly one of 'numeric', 'categorical' or 'text'; got none",
        ),
        (
            with_(features=[{"categorical": {"column": "c", "top_k": 0}}]),
            "  features[0].categorical.top_k: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            with_(features=[{"categorical": {"column": "c", "encoding": "target"}}]),
            "  features[0].categorical.encoding: Input should be 'onehot', 'ordinal' or 'hash' (got 'target')",
        ),
        (
            with_(features=[{"text": {"column": "t", "encoding": "bow"}}]),
            "  features[0].text.encoding: Input should be 'hash' or 'tfidf' (got 'bow')",
        ),
        (
            with_(drop=[{"where": "a < 0", "issue": "duplicate_rows"}]),
            "  drop[0]: each drop rule needs exactly one of 'where' (a SQL predicate) or 'issue'",
        ),
        (
            with_(drop=[{"issue": "bad_rows"}]),
            "  drop[0].issue: Input should be 'duplicate_rows' or 'invalid_values' (got 'bad_rows')",
        ),
        (
            with_(split={"train": 0.5, "valid": 0.1, "test": 0.1}),
            "  split: train + valid + test must be 1; got 0.7",
        ),
        ({k: v for k, v in BASE.items() if k != "id"}, "  id: required key missing"),
        (
            with_(nlp={"url": "localhost:80"}),
            "  nlp.url: expected an http:// or https:// URL, e.g. http://127.0.0.1:8080 (got 'localhost:80')",
        ),
        (
            with_(features=[{"numeric": {"column": "x"}}, {"numeric": {"column": "x"}}]),
            "  features: two features are named 'x'; give one of them a distinct 'name'",
        ),
        (
            with_(features=[{"numeric": {"column": "x", "scale": "minmax", "bucketize": {"bins": 3}}}]),
            "  features[0].numeric: choose scale ('minmax') or bucketize, not both",
        ),
        (
            with_(features=[{"numeric": {"column": "x", "bucketize": {"bins": 3, "edges": [1.0]}}}]),
            "  features[0].numeric.bucketize: give either 'bins' (quantile buckets fitted on train) or "
            "'edges', not both",
        ),
        (
            with_(colour="red"),
            "  (top level): unknown key 'colour'; allowed keys: input, output, id, label, split, nlp, drop, features",
        ),
    ],
)
def test_spec_errors_name_the_key(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_spec(spec)
    assert str(info.value) == "invalid batch spec (mapping): 1 error\n" + message


def test_several_errors_are_all_listed() -> None:
    spec = with_(features=[{"numeric": {"column": "x", "scale": "zscore", "log1p": "maybe"}}])
    with pytest.raises(InvalidInput, match=r"^invalid batch spec \(mapping\): 2 errors\n") as info:
        load_spec(spec)
    assert "features[0].numeric.log1p: Input should be a valid boolean" in str(info.value)
    assert "features[0].numeric.scale:" in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=re.escape(f"cannot read batch spec {tmp_path / 'nope.yaml'}")):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=re.escape(f"batch spec {bad} is not valid YAML")):
        load_spec(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"must be a mapping with keys input, output, id, features; got list$"):
        load_spec(listed)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("input: t\noutput: o\nid: id\nfeatures:\n  - numeric: {column: x, clip: [3, 2]}\n")
    with pytest.raises(InvalidInput, match=re.escape(f"invalid batch spec {wrong}: 1 error")):
        load_spec(wrong)
