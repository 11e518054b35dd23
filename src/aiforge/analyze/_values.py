"""How ANALYZE sees values: normalised Arrow types, nested values as canonical text, and values cut for showing.

Arrow hashes, counts and compares plain types only, and a report must not grow with the data: :func:`normalise`
unwraps extension, run-end, dictionary and view types, :func:`hashable` turns lists, structs, maps and unions into
their JSON text, and :func:`short_values` cuts long strings and bytes before they become Python objects.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MAX_VALUE_CHARS", "canonical_text", "hashable", "jsonable", "normalise", "short_values"]

#: Longest string or bytes value the report shows; longer ones are cut and marked with their length.
MAX_VALUE_CHARS = 200


def normalise(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Unwrap extension types, decode run-end encoding and dictionaries, turn decimals into float64 and string and
    binary views into plain strings and binary, so that one code path serves each kind."""
    if isinstance(column.type, pa.BaseExtensionType):
        column = column.cast(column.type.storage_type)
    if pa.types.is_run_end_encoded(column.type):
        column = pc.run_end_decode(column)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_decimal(column.type):  # through its text: a direct cast makes 99.71 into 99.71000000000001
        column = column.cast(pa.string()).cast(pa.float64())
    if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
        column = column.cast(pa.string())
    if pa.types.is_binary_view(column.type):
        column = column.cast(pa.binary())
    return column


def hashable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column normalised into values Arrow can count, group and encode.

    Lists, structs, maps and unions have no hash kernels in Arrow, so they become their canonical JSON text (``[1,2]``,
    ``{"x":1}``): equal values give equal text, and the report can show them. Nulls stay null.

    Examples
    --------
    >>> hashable(pa.chunked_array([[[1, 2], None, []]])).to_pylist()
    ['[1,2]', None, '[]']
    """
    column = normalise(column)
    return column if _arrow_hashes(column.type) else canonical_text(column)


@functools.lru_cache(maxsize=64)
def _arrow_hashes(dtype: pa.DataType) -> bool:
    if pa.types.is_nested(dtype):
        return False
    try:
        empty = pa.array([], dtype)
        pc.value_counts(empty)
        empty.dictionary_encode()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def canonical_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each value as compact JSON text (null stays null): DuckDB's ``to_json``, or Python's json where DuckDB cannot
    read the type."""
    import duckdb

    from aiforge.engines.local import connect_duckdb

    try:
        result = connect_duckdb().from_arrow(pa.table({"v": column})).select("to_json(v)::VARCHAR AS v").arrow()
        text = (result.read_all() if isinstance(result, pa.RecordBatchReader) else result).column("v")
        if len(text) == len(column):
            return text
    except (duckdb.Error, pa.ArrowException):
        pass
    values = [
        None if value is None else json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
        for value in column.to_pylist()
    ]
    return pa.chunked_array([pa.array(values, pa.string())])


def short_values(values: pa.Array | pa.ChunkedArray, limit: int = MAX_VALUE_CHARS) -> list[Any]:
    """The values as JSON-ready Python objects, strings and bytes longer than ``limit`` cut and marked.

    Arrow cuts them before they become Python objects, so a 50 MB value costs the report ``limit`` characters and
    no 50 MB copy. Other values go through as :func:`jsonable` makes them.

    Examples
    --------
    >>> short_values(pa.array(["ok", "x" * 1000, None]), limit=3)
    ['ok', 'xxx… (1,000 characters)', None]
    """
    dtype = values.type
    if pa.types.is_dictionary(dtype):
        values, dtype = values.cast(dtype.value_type), dtype.value_type
    if _is_text(dtype):
        lengths, cut, unit = pc.utf8_length(values), pc.utf8_slice_codeunits(values, 0, limit), "characters"
    elif _is_bytes(dtype):
        lengths, cut, unit = pc.binary_length(values), pc.binary_slice(values, 0, limit), "bytes"
    elif pa.types.is_integer(dtype) or pa.types.is_boolean(dtype) or pa.types.is_null(dtype):
        return values.to_pylist()  # Python ints, bools and None are JSON-ready as they come
    else:
        return [jsonable(v) for v in values.to_pylist()]
    if unit == "characters" and (pc.max(lengths).as_py() or 0) <= limit:
        return values.to_pylist()  # no text to cut: str and None are JSON-ready as they come
    return [
        jsonable(value) if size is None or size <= limit else f"{jsonable(value)}… ({size:,} {unit})"
        for value, size in zip(cut.to_pylist(), lengths.to_pylist(), strict=True)
    ]


def _is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _is_bytes(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_fixed_size_binary(dtype)
        or pa.types.is_binary_view(dtype)
    )


def jsonable(value: Any) -> Any:
    """A Python value as strict JSON holds it: ISO times, bytes decoded, numpy scalars unwrapped, NaN as null."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
