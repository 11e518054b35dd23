"""A corpus of generated malformed inputs for every parser a user reaches: each answers with a result or an
AiforgeError that says what is wrong, never another exception and never a hang.

The numbers of examples are pinned so that a run reports what was tried (hypothesis' statistics with
``--hypothesis-show-statistics``); the parsers are pure, so each example takes microseconds to milliseconds.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _corpus import answers_cleanly
from aiforge import stages
from aiforge.batch.spec import load_spec
from aiforge.engines.sources import expand_user, parse_source
from aiforge.errors import AiforgeError
from aiforge.evaluate.ocr import parse_line, read_boxes
from aiforge.serve.protocol import request_from_json, response_from_json
from aiforge.workspace import parse_ref

EXAMPLES = 300
SETTINGS = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# JSON-like values: what a YAML or JSON document can hold
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)




# -- source URLs and snapshot references --------------------------------------------------------------------------

url_like = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, rest: f"{scheme}://{rest}",
        st.sampled_from(["postgresql", "postgres", "mysql", "mariadb", "sqlite", "duckdb", "http", "file", "x", ""]),
        st.text(alphabet=string.printable, max_size=40),
    ),
)


@SETTINGS
@given(url_like)
def test_source_urls(source: str) -> None:
    # an existing folder is a valid SOURCE that is read recursively: '/' or '~' would scan the whole disk
    assume(not expand_user(source.strip()).is_dir())
    answers_cleanly(parse_source, source)


@SETTINGS
@given(st.text(max_size=30))
def test_snapshot_references(ref: str) -> None:
    answers_cleanly(parse_ref, ref)


# -- YAML specs and stage specs -------------------------------------------------------------------------------------


@SETTINGS
@given(json_values)
def test_batch_specs_as_mappings(document: Any) -> None:
    if isinstance(document, dict):
        answers_cleanly(load_spec, document)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=string.printable + "가나다", max_size=200))
def test_batch_spec_files_with_any_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    answers_cleanly(load_spec, path)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_batch_spec_files_with_any_yaml_document(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    answers_cleanly(load_spec, path)


@pytest.mark.parametrize("name", stages.names())
@settings(max_examples=100, deadline=2000)
@given(document=st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_stage_specs(name: str, document: dict[str, Any]) -> None:
    stage = stages.get(name)
    fields = list(stage.spec.model_fields)
    # half the keys are the stage's own, so values reach the field validators, not only the unknown-key check
    document = {fields[i % len(fields)] if i % 2 else key: value for i, (key, value) in enumerate(document.items())}
    answers_cleanly(stage.parse, document)


# -- OCR files --------------------------------------------------------------------------------------------------------

coordinate = st.one_of(st.integers(-5, 2000).map(str), st.floats().map(repr), st.sampled_from(["nan", "inf", "", "x"]))
ocr_line = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda coords, text, sep: sep.join([*coords, text]),
        st.lists(coordinate, min_size=0, max_size=10),
        st.text(max_size=12),
        st.sampled_from([",", " ", "\t", ", "]),
    ),
)


@SETTINGS
@given(ocr_line, st.sampled_from(["auto", "reference", "ic13", "ic15", "polygon"]))
def test_ocr_lines(line: str, fmt: str) -> None:
    box = answers_cleanly(parse_line, line, fmt=fmt)  # type: ignore[arg-type]
    if box is not None and not isinstance(box, AiforgeError):
        assert all(np.isfinite(v) for point in box.points for v in point), (line, box)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_ocr_files_with_any_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "img_1.txt"
    path.write_bytes(data)
    answers_cleanly(read_boxes, path)


# -- Open Inference Protocol bodies -------------------------------------------------------------------------------

tensor = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "shape": st.one_of(st.lists(st.integers(-3, 6), max_size=4), json_values),
        "datatype": st.one_of(st.sampled_from(["FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES", "UINT8", "X"]),
                              json_values),
        "data": json_values,
        "parameters": json_values,
    },
)
oip_body = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"id": json_values, "inputs": st.lists(tensor, max_size=3) | json_values,
                                        "outputs": json_values, "parameters": json_values}),
)


@SETTINGS
@given(oip_body)
def test_inference_request_bodies(body: Any) -> None:
    answers_cleanly(request_from_json, json.dumps(body).encode())


@SETTINGS
@given(st.binary(max_size=200))
def test_inference_request_bytes(body: bytes) -> None:
    answers_cleanly(request_from_json, body)


@SETTINGS
@given(oip_body)
def test_inference_response_bodies(body: Any) -> None:
    answers_cleanly(response_from_json, json.dumps(body).encode())
