"""Column selectors in a BATCH spec: `columns: "pixel_*"` is one feature per matching column (issue 12)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforge import dump
from aiforge.batch import batch, expand_columns, load_spec
from aiforge.batch.transform import Transform
from aiforge.errors import InvalidInput

TYPES = {"id": pa.int64(), "pixel_0": pa.float64(), "label": pa.int64(), "pixel_1": pa.int32(),
         "pixel_name": pa.string(), "pixel_2": pa.decimal128(5, 2), "city": pa.string(), "vip": pa.bool_(),
         "zip": pa.int64(), "note": pa.large_string()}


def spec(*features: dict[str, Any]) -> Any:
    return load_spec({"input": "t", "output": "f", "id": "id", "label": "label", "features": list(features)})


def names(features: list[Any]) -> list[tuple[str, str]]:
    return [(f.kind, f.name) for f in features]


def test_a_pattern_takes_the_matching_columns_of_its_type_in_table_order_with_the_same_options() -> None:
    out = expand_columns(spec({"numeric": {"columns": "pixel_*", "scale": "minmax", "impute": "median"}}), TYPES)
    assert names(out.features) == [("numeric", "pixel_0"), ("numeric", "pixel_1"), ("numeric", "pixel_2")]
    assert {f.numeric.scale for f in out.features} == {"minmax"}  # type: ignore[union-attr]
    assert {f.numeric.impute for f in out.features} == {"median"}  # type: ignore[union-attr]
    assert all(f.selector is None for f in out.features)


def test_selectors_skip_the_id_the_label_named_columns_and_what_an_earlier_selector_took() -> None:
    out = expand_columns(spec(
        {"numeric": {"column": "pixel_1", "log1p": True}},
        {"numeric": {"columns": ["pixel_?", "zip", "label", "id"]}},
        {"numeric": {"columns": "*", "scale": "standardize"}},
        {"text": {"columns": "no*"}},
        {"categorical": {"columns": "*"}},
    ), TYPES)
    assert names(out.features) == [
        ("numeric", "pixel_1"), ("numeric", "pixel_0"), ("numeric", "pixel_2"), ("numeric", "zip"),
        ("numeric", "vip"),  # booleans are numbers to a numeric feature; '*' found it after the earlier selector
        ("text", "note"), ("categorical", "pixel_name"), ("categorical", "city"),  # note: the text selector's
    ]


def test_a_categorical_selector_leaves_integer_columns_alone() -> None:
    out = expand_columns(spec({"categorical": {"columns": "*", "top_k": 3}}), TYPES)
    assert names(out.features) == [("categorical", c) for c in ("pixel_name", "city", "vip", "note")]


def test_a_selector_that_matches_nothing_usable_names_its_pattern_and_the_columns() -> None:
    message = (r"^features\[0\]\.text\.columns 'pixel_\?' matches no column a text feature can use that no other "
               r"feature takes; columns of t@v1: id \(int64\)")
    with pytest.raises(InvalidInput, match=message):
        expand_columns(spec({"text": {"columns": "pixel_?"}}), TYPES, source=" of t@v1")


@pytest.mark.parametrize(("body", "message"), [
    ({"column": "a", "columns": "b*"}, "needs exactly one of 'column' (a name) or 'columns'"),
    ({"scale": "minmax"}, "needs exactly one of 'column' (a name) or 'columns'"),
    ({"columns": []}, "'columns' must be a non-empty name pattern or a non-empty list of them"),
    ({"columns": " "}, "'columns' must be a non-empty name pattern or a non-empty list of them"),
    ({"columns": "p*", "name": "p"}, "'name' names one feature; with 'columns' each feature is named after its"),
])
def test_bad_selectors_are_spec_errors_naming_the_feature(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=r"\n  features\[0\]: (a numeric feature )?" + re.escape(message)):
        spec({"numeric": body})


def test_a_transform_refuses_a_selector_nobody_expanded() -> None:
    transform = Transform(features=[{"numeric": {"columns": "x*"}}])
    with pytest.raises(InvalidInput, match=r"feature selector columns='x\*' is not expanded"):
        transform.fit(pa.table({"x1": [1.0, 2.0]}))


def test_batch_with_a_selector_writes_what_the_explicit_spec_writes(workspace: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"id": np.arange(200), **{f"pixel_{i}": rng.integers(0, 16, 200) for i in range(8)},
                      "digit": rng.integers(0, 10, 200)})
    pq.write_table(table, tmp_path / "digits.parquet")
    dump(tmp_path / "digits.parquet", name="digits", workspace=workspace)
    base = {"input": "digits", "id": "id", "label": "digit"}
    selected = batch({**base, "output": "sel", "features": [{"numeric": {"columns": "pixel_*", "scale": "minmax"}}]},
                     workspace=workspace)
    explicit = batch({**base, "output": "exp", "features": [
        {"numeric": {"column": f"pixel_{i}", "scale": "minmax"}} for i in range(8)]}, workspace=workspace)
    assert selected.feature_names == explicit.feature_names == [f"pixel_{i}" for i in range(8)]
    for split in ("train", "test"):
        np.testing.assert_array_equal(selected.to_numpy(split)[0], explicit.to_numpy(split)[0])
    recorded = selected.manifest["spec"]["features"]  # the manifest records the features that ran
    assert recorded == [{"numeric": {"column": f"pixel_{i}", "scale": "minmax", "log1p": False}} for i in range(8)]
    artifact = json.loads((selected.path / "transform.json").read_text())
    assert [f["numeric"]["column"] for f in artifact["features"]] == [f"pixel_{i}" for i in range(8)]
