"""What CLEAN's checkers read: the feature columns, vectors spread into their values, missing values imputed.

A feature column is a number (integer, float, decimal), a boolean, or a vector of numbers (a list column such as the
``features`` of a BATCH feature snapshot, spread into one matrix column per position). Missing values (null, NaN,
+/-inf) are filled per matrix column with a statistic of the rows being cleaned, for the checkers only: the snapshot
CLEAN writes keeps every feature value as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aiforge.errors import ColumnNotFound, InvalidInput

__all__ = ["IMPUTE", "feature_columns", "feature_matrix", "impute_missing", "is_number", "is_vector"]

IMPUTE = ("median", "mean", "most_frequent")
GIVEN_COLUMN = "label_given"


def is_number(kind: pa.DataType) -> bool:
    """Integers, floats, decimals (PostgreSQL numeric, MySQL DECIMAL) and booleans: what a checker reads as numbers."""
    checks = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean)
    return any(check(kind) for check in checks)


def is_vector(kind: pa.DataType) -> bool:
    """A list of numbers (fixed-size or not), e.g. the ``features`` column of a BATCH feature snapshot."""
    is_list = pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)
    return is_list and is_number(kind.value_type)


def _is_identifier(column: pa.ChunkedArray) -> bool:
    """An integer column with a different value in every row names rows; as a feature it would only add noise."""
    return (
        pa.types.is_integer(column.type)
        and len(column) > 1
        and column.null_count == 0
        and pc.count_distinct(column).as_py() == len(column)
    )


def feature_columns(table: pa.Table, label: str, features: list[str] | None, subject: str) -> list[str]:
    """The feature columns: ``features`` checked against ``table``, or every numeric, boolean or vector column
    except the label, ``label_given``, integer identifiers and columns without a single value."""
    if features is not None:
        missing = [c for c in features if c not in table.column_names]
        if missing:
            raise ColumnNotFound(
                f"feature column(s) {', '.join(map(repr, missing))} not found in {subject}; "
                f"available columns: {', '.join(table.column_names)}"
            )
        if label in features:
            raise InvalidInput(f"the label column {label!r} cannot also be a feature; remove it from features")
        if not features:
            raise InvalidInput("features is empty; name at least one feature column or leave it out")
        return list(features)
    chosen = [
        f.name
        for f in table.schema
        if f.name not in (label, GIVEN_COLUMN)
        and (is_number(f.type) or is_vector(f.type))
        and not _is_identifier(table.column(f.name))
        and table.column(f.name).null_count < table.num_rows
    ]
    if not chosen:
        raise InvalidInput(
            f"{subject} has no numeric feature columns besides the label {label!r}; name them with features=[...] "
            "(one string column is treated as text for checker='text')"
        )
    return chosen


def _vector_block(column: pa.ChunkedArray, name: str, subject: str) -> np.ndarray:
    """An (N, width) float64 block of a list column; NaN where a list or one of its values is missing."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    present = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)[present].astype(np.int64)
    widths = np.unique(lengths)
    if len(widths) > 1:
        raise InvalidInput(
            f"feature column {name!r} of {subject} holds vectors of different lengths ({widths[0]} and "
            f"{widths[-1]}); checkers need one length: name the columns to use with features=[...]"
        )
    width = int(widths[0]) if len(widths) else 0
    out = np.full((len(array), width), np.nan)
    if width:  # flatten() leaves out the null vectors
        out[present] = pc.cast(array.flatten(), pa.float64()).to_numpy(zero_copy_only=False).reshape(-1, width)
    return out


def _block(column: pa.ChunkedArray, name: str, subject: str) -> np.ndarray:
    if is_vector(column.type):
        return _vector_block(column, name, subject)
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False).reshape(-1, 1)


def _nulls(column: pa.ChunkedArray) -> int:
    """Missing values of a column: null rows, plus null values inside the vectors of a list column."""
    if is_vector(column.type):
        return column.null_count + sum(chunk.flatten().null_count for chunk in column.chunks)
    return column.null_count


def feature_matrix(
    table: pa.Table, columns: list[str], subject: str, impute: str | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The (N, D) float64 features of ``columns`` (a vector column gives one matrix column per position) and what
    :func:`impute_missing` filled (``{}`` when nothing was missing).

    Raises
    ------
    InvalidInput
        ``impute`` is None and a column has missing (null) values; a list column holds vectors of different lengths;
        a column has no value to impute from.
    """
    blocks, owners = [], []
    for name in columns:
        column = table.column(name)
        if impute is None and _nulls(column):
            raise InvalidInput(
                f"feature column {name!r} has {_nulls(column)} missing values; impute them (impute='median', "
                "--impute median) or drop them before cleaning"
            )
        block = _block(column, name, subject)
        blocks.append(block)
        owners += [(name, j if is_vector(column.type) else None) for j in range(block.shape[1])]
    matrix = np.hstack(blocks) if blocks else np.empty((table.num_rows, 0))
    if impute is None:
        return matrix, {}
    return impute_missing(matrix, owners, impute, table.num_rows)


def _statistic(values: np.ndarray, strategy: str) -> float:
    if strategy == "median":
        return float(np.median(values))
    if strategy == "mean":
        return float(values.mean())
    found, counts = np.unique(values, return_counts=True)
    return float(found[np.argmax(counts)])  # the smallest of the most frequent values


def impute_missing(
    matrix: np.ndarray, owners: list[tuple[str, int | None]], strategy: str, rows: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fill the missing (null, NaN, +/-inf) values of each matrix column with its ``strategy`` statistic over its
    finite values (``median``, ``mean`` or ``most_frequent``, the smallest on ties).

    ``owners[j]`` is the (column, position in its vector or None) of matrix column ``j``. Returns the filled matrix
    and, per column that had missing values, ``{"missing": count, "value": fill}`` (a scalar column) or
    ``{"missing": count, "values": {position: fill}}`` (a vector column).

    Examples
    --------
    >>> filled, info = impute_missing(np.array([[1.0], [np.nan], [5.0]]), [("age", None)], "median", 3)
    >>> filled.ravel().tolist(), info
    ([1.0, 3.0, 5.0], {'age': {'missing': 1, 'value': 3.0}})
    """
    if strategy not in IMPUTE:
        raise InvalidInput(f"unknown impute {strategy!r}; use one of: {', '.join(IMPUTE)}, or None")
    filled: dict[str, Any] = {}
    missing = ~np.isfinite(matrix)
    for j in np.flatnonzero(missing.any(axis=0)):
        name, position = owners[j]
        holes = missing[:, j]
        known = matrix[~holes, j]
        if not len(known):
            where = name if position is None else f"{name}[{position}]"
            raise InvalidInput(
                f"feature column {where!r} has no value to impute from: all {rows} rows are missing; leave it out "
                "of features"
            )
        value = _statistic(known, strategy)
        matrix[holes, j] = value
        entry = filled.setdefault(name, {"missing": 0})
        entry["missing"] += int(holes.sum())
        if position is None:
            entry["value"] = value
        else:
            entry.setdefault("values", {})[position] = value
    return matrix, filled
