"""More of the bad-input corpus (see tests/test_bad_inputs.py): APS handler payloads, and odd CSV and Parquet files
through DUMP and ANALYZE. Each answers with a result or an AiforgeError that says what is wrong, never another
exception and never a hang; a DUMP that fails writes no snapshot.

Example counts are pinned (HANDLER_EXAMPLES, FILE_EXAMPLES) and sizes are small so the file runs in well under a
minute.
"""

from __future__ import annotations

import csv
import io
import string
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiforge
from _corpus import answers_cleanly
from aiforge.batch import Transform
from aiforge.errors import AiforgeError
from aiforge.serve.aps.handler import Context, Handler, TransformHandler
from aiforge.serve.protocol import InferRequest
from aiforge.workspace import Workspace

HANDLER_EXAMPLES = 300
FILE_EXAMPLES = 60




# -- APS handler payloads -------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True), st.text(max_size=8),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 1e308, -1e308, "", "1", "nan", "x"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
odd_keys = st.one_of(st.text(max_size=6), st.sampled_from(["", " ", "x", "c", "inputs", "instances", "\x00", "가"]))
rows = st.lists(st.lists(scalars | st.lists(scalars, max_size=2), max_size=4), min_size=1, max_size=4)
records = st.dictionaries(st.sampled_from(["x", "c", "n", "y"]) | odd_keys, values, max_size=4)
payloads = st.one_of(
    values,
    st.binary(max_size=30),  # a body that was never JSON
    st.fixed_dictionaries({}, optional={"instances": rows | values, "inputs": rows | values, "id": values}),
    st.fixed_dictionaries({"inputs": st.dictionaries(odd_keys, rows | values, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"inputs": st.lists(st.dictionaries(
        st.sampled_from(["name", "shape", "datatype", "data", "parameters"]) | odd_keys,
        values | st.sampled_from(["FP32", "INT64", "BYTES", "BOOL", [1, 2], [-1]]), max_size=5), min_size=1,
        max_size=2)}),
    records,
    st.lists(records, min_size=1, max_size=4),
    st.dictionaries(odd_keys, values, max_size=4),
)
METADATA = {"name": "m", "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]}
HANDLER_SETTINGS = settings(max_examples=HANDLER_EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _is_request(result: Any) -> bool:
    if isinstance(result, InferRequest):
        return True
    return isinstance(result, dict) and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in result.items())


@HANDLER_SETTINGS
@given(payloads, st.booleans())
def test_default_handler_payloads(payload: Any, bound: bool) -> None:
    handler = Handler()
    if bound:
        handler.bind(METADATA)
    result = answers_cleanly(handler.preprocess, payload, Context("r", "m"))
    assert isinstance(result, AiforgeError) or _is_request(result), result


_TRANSFORM = Transform(features=[
    {"numeric": {"column": "x", "scale": "standardize"}},
    {"numeric": {"column": "x", "name": "xb", "bucketize": {"bins": 3}}},
    {"categorical": {"column": "c", "top_k": 2}},
    {"categorical": {"column": "n", "encoding": "hash", "buckets": 4}},
]).fit(pa.table({"x": [1.5, None, 3.0, -2.0], "c": ["a", "b", None, "a"], "n": [1, 2, None, 4]}))


@HANDLER_SETTINGS
@given(payloads | st.fixed_dictionaries({"x": scalars, "c": scalars, "n": scalars})
       | st.lists(st.fixed_dictionaries({"x": scalars, "c": scalars, "n": scalars}), min_size=1, max_size=4))
def test_transform_handler_payloads(payload: Any) -> None:
    handler = TransformHandler(_TRANSFORM, input_name="X")
    handler.load()
    result = answers_cleanly(handler.preprocess, payload, Context("r", "m"))
    if not isinstance(result, AiforgeError):
        assert result["X"].dtype == np.float32 and result["X"].ndim == 2, result


# -- CSV and Parquet files through DUMP and ANALYZE -----------------------------------------------------------------


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


_GOOD_PARQUET = _parquet_bytes(pa.table({"a": list(range(50)), "b": [str(i) for i in range(50)]}))

ODD_FILES: dict[str, tuple[str, bytes]] = {
    "empty_csv": ("csv", b""),
    "empty_parquet": ("parquet", b""),
    "header_only": ("csv", b"a,b,c\n"),
    "header_only_no_newline": ("csv", b"a,b,c"),
    "bom": ("csv", b"\xef\xbb\xbfa,b\n1,2\n"),
    "bom_only": ("csv", b"\xef\xbb\xbf"),
    "crlf": ("csv", b"a,b\r\n1,2\r\n3,4\r\n"),
    "quoted_newlines": ("csv", b'a,b\n"line1\nline2",2\n"x\r\ny",3\n'),
    "unclosed_quote": ("csv", b'a,b\n"never closed,2\n3,4\n'),
    "mixed_types": ("csv", b"a,b\n1,x\ntrue,2\n2.5,\n,3\nabc,4\n"),
    "long_line": ("csv", b"a,b\n" + b"x" * 200_000 + b",1\n"),
    "many_columns": ("csv", (",".join(f"c{i}" for i in range(2000)) + "\n" + ",".join("1" * 2000) + "\n").encode()),
    "non_utf8": ("csv", b"a,b\n\xff\xfe\x80,1\n\xc3\x28,2\n"),
    "latin1_header": ("csv", b"caf\xe9,b\n1,2\n"),
    "nul_bytes": ("csv", b"a,b\n\x00,1\n2,\x00\x00\n"),
    "duplicate_columns": ("csv", b"a,a,b\n1,2,3\n"),
    "empty_column_name": ("csv", b",b\n1,2\n"),
    "all_empty_names": ("csv", b",,\n1,2,3\n"),
    "odd_names": ("csv", '" a b ","q""uote",가나,"x.y","$1"\n1,2,3,4,5\n'.encode()),
    "ragged_rows": ("csv", b"a,b\n1\n1,2,3\n"),
    "empty_column_csv": ("csv", b"a,b\n,1\n,2\n"),
    "case_duplicate_columns": ("csv", b"A,a\n1,2\n"),
    "whitespace_only": ("csv", b"   \n \t \n"),
    "huge_integers": ("csv", b"a,b\n1" + b"0" * 400 + b",1e999\n-9223372036854775809,18446744073709551616\n"),
    "constant_above_2_52": ("csv", b"a\n4503599627370498\n"),
    "range_overflows_float": ("csv", b"a\n-1e308\n1e308\n"),
    "only_newlines": ("csv", b"\n\n\n"),
    "tsv_in_csv": ("csv", b"a\tb\n1\t2\n"),
    "semicolons": ("csv", b"a;b\n1;2\n"),
    "not_parquet": ("parquet", b"a,b\n1,2\n"),
    "parquet_magic_only": ("parquet", b"PAR1PAR1"),
    "truncated_parquet": ("parquet", _GOOD_PARQUET[: len(_GOOD_PARQUET) // 2]),
    "parquet_without_head": ("parquet", _GOOD_PARQUET[8:]),
    "zero_row_parquet": ("parquet", _parquet_bytes(pa.table({"a": pa.array([], pa.int64()),
                                                             "b": pa.array([], pa.string())}))),
    "zero_column_parquet": ("parquet", _parquet_bytes(pa.table({}))),
    "all_null_parquet": ("parquet", _parquet_bytes(pa.table({"b": pa.array([None] * 5, pa.float64()),
                                                             "c": pa.array([None] * 5, pa.string())}))),
    "null_typed_parquet": ("parquet", _parquet_bytes(pa.table({"a": pa.nulls(5), "b": [1, 2, 3, 4, 5]}))),
    "nested_parquet": ("parquet", _parquet_bytes(pa.table({
        "l": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
        "s": pa.array([{"x": 1, "y": "a"}, None, {"x": None, "y": None}]),
        "m": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
    }))),
    "odd_names_parquet": ("parquet", _parquet_bytes(pa.table({"": [1], " sp ace ": [2], 'q"uote': [3], "가": [4],
                                                              "a.b": [5]}))),
    "duplicate_names_parquet": ("parquet", _parquet_bytes(pa.Table.from_arrays([pa.array([1]), pa.array([2])],
                                                                              names=["a", "a"]))),
    "binary_parquet": ("parquet", _parquet_bytes(pa.table({"b": pa.array([b"\xff\x00", None], pa.binary()),
                                                           "d": pa.array([1, None], pa.decimal128(38, 2))}))),
}


def _check_dump_and_analyze(path: Path, home: Path) -> None:
    workspace = Workspace(home)
    result = answers_cleanly(aiforge.dump, str(path), name="x", workspace=workspace)
    if isinstance(result, AiforgeError):
        assert workspace.list_snapshots() == [], f"a failed DUMP wrote a snapshot: {result}"
        left = [p for p in workspace.snapshots_dir.rglob("*") if p.is_file()]  # rglob of a missing folder: none
        assert left == [], f"a failed DUMP left files behind: {left}"
    answers_cleanly(aiforge.analyze, str(path), workspace=workspace)


# Known defects whose fix is in a file outside this change (strict: an xfail that passes says the fix landed):
# - a column of Arrow type null (pandas writes one for an all-None object column) reaches
#   aiforge.workspace.writer.dictionary_columns, whose pa.compute.count_distinct has no kernel for it: DUMP raises
#   pyarrow's ArrowNotImplementedError (fix: skip null-typed columns there);
# - ANALYZE's histogram (aiforge.analyze._stats._histogram) passes numpy a range it cannot split: a constant above
#   2**52, where low - 0.5 == low, or a range wider than the largest float (-1e308..1e308): numpy's ValueError
#   "Too many bins for data range" escapes.
KNOWN_DEFECTS: dict[str, tuple[type[Exception], str]] = {}  # none left: each one found was fixed


@pytest.mark.timeout(60)  # never a hang: each odd file answers in seconds
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(raises=KNOWN_DEFECTS[name][0], strict=True,
                                               reason=KNOWN_DEFECTS[name][1]))
    if name in KNOWN_DEFECTS else name
    for name in ODD_FILES
])
def test_odd_files_through_dump_and_analyze(tmp_path: Path, name: str) -> None:
    suffix, data = ODD_FILES[name]
    path = tmp_path / f"{name}.{suffix}"
    path.write_bytes(data)
    _check_dump_and_analyze(path, tmp_path / "ws")


cells = st.one_of(
    st.text(alphabet=string.printable + "가é\u00a0\ufeff", max_size=10),
    # magnitudes stay below 2**50 while the histogram defect (KNOWN_DEFECTS) stands; huge_integers covers beyond
    st.integers(-(2**50), 2**50).map(str),
    st.floats(-(2.0**50), 2.0**50).map(repr),
    st.sampled_from(["", "NA", "null", "true", "nan", "inf", "1e400", "2026-01-01", '"', "\r\n"]),
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(0, 4))
    header = draw(st.lists(cells, min_size=width, max_size=width))
    body = draw(st.lists(st.lists(cells, min_size=max(width - 1, 0), max_size=width + 1), max_size=6))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    for row in ([header] if draw(st.booleans()) else []) + body:
        writer.writerow(row)
    text = out.getvalue()
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])), errors="replace")
    if draw(st.booleans()):  # damage a few bytes
        for position, byte in draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3)):
            if data:
                data = data[: position % len(data)] + bytes([byte]) + data[position % len(data) + 1:]
    return data


FILE_SETTINGS = settings(max_examples=FILE_EXAMPLES, deadline=5000,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FILE_SETTINGS
@given(csv_files())
def test_generated_csv_files(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_bytes(data)
        _check_dump_and_analyze(path, Path(tmp) / "ws")


parquet_columns = st.sampled_from([
    # pa.nulls(3), a null-typed column, is left out while it is a KNOWN_DEFECT
    pa.array([1, None, 3]), pa.array([None, None, None], pa.float64()), pa.array(["a", None, "가"]),
    pa.array([[1], None, []]), pa.array([{"x": 1}, None, {"x": None}]), pa.array([True, False, None]),
    pa.array([b"\xff", None, b""]), pa.array([1.5, float("nan"), float("inf")]), pa.array([2**40, None, -(2**40)]),
])


@st.composite
def parquet_files(draw: st.DrawFn) -> bytes:
    names = draw(st.lists(st.text(max_size=5) | st.sampled_from(["", " ", "a", 'q"']), max_size=4))
    arrays = [draw(parquet_columns) for _ in names]
    rows = draw(st.integers(0, 3))
    table = pa.Table.from_arrays([a.slice(0, rows) for a in arrays], names=names)
    data = _parquet_bytes(table)
    cut = draw(st.one_of(st.just(len(data)), st.integers(0, len(data))))
    return data[:cut]


@FILE_SETTINGS
@given(parquet_files())
def test_generated_parquet_files(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        path.write_bytes(data)
        _check_dump_and_analyze(path, Path(tmp) / "ws")

