"""What is wrong with the data: issue checks, the label's balance and bias across slices.

Each issue says how many rows it affects and whether that number is exact (every row was looked at) or
estimated
(scaled from the sample).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aiforge.analyze._stats import CATEGORICAL_MAX_DISTINCT, NUMBER_PATTERN, numeric_values
from aiforge.analyze._values import canonical_text, hashable, short_values

__all__ = [
    "add_examples",
    "bias_slices",
    "duplicate_positions",
    "duplicate_rows",
    "encode",
    "find_issues",
    "has_key_column",
    "imbalance_issues",
    "label_summary",
    "top_biased",
]

MOSTLY_MISSING = 0.5
EXAMPLE_ROWS = 5
OUTLIER_IQR = 3.0
MIN_SLICE_ROWS = 5
IMBALANCED_SHARE = 0.1
MAX_SLICES = 30
_SEVERITY = {"error": 0, "warning": 1, "info": 2}


def _issue(
    kind: str, column: str | None, rows: int, exact: bool, severity: str, message: str
) -> dict[str, Any]:
    return {
        "type": kind,
        "column": column,
        "rows": int(rows),
        "exact": exact,
        "severity": severity,
        "message": message,
    }


def duplicate_rows(table: pa.Table) -> int:
    """Rows that repeat an earlier row exactly (all columns equal; nulls equal nulls).

    Examples
    --------
    >>> duplicate_rows(pa.table({"a": [1, 1, 2], "b": ["x", "x", "y"]}))
    1
    """
    return int(duplicate_positions(table).size)


def duplicate_positions(table: pa.Table) -> np.ndarray:
    """The positions (in ``table``) of the rows that repeat an earlier row exactly, in order.

    Examples
    --------
    >>> duplicate_positions(pa.table({"a": [1, 2, 1, 1], "b": ["x", "y", "x", "x"]})).tolist()
    [2, 3]
    """
    if table.num_rows < 2:
        return np.zeros(0, dtype=np.int64)
    # nested values compare by their canonical text: lists that differ make rows that differ
    columns = {f"c{i}": hashable(table.column(name)) for i, name in enumerate(table.column_names)}
    row = pa.array(np.arange(table.num_rows, dtype=np.int64))
    try:
        groups = pa.table({**columns, "_row": row}).group_by(list(columns), use_threads=False).aggregate(
            [("_row", "min")])
    except pa.ArrowNotImplementedError:  # a type Arrow cannot group by: compare every column as text
        columns = {key: canonical_text(column) for key, column in columns.items()}
        groups = pa.table({**columns, "_row": row}).group_by(list(columns), use_threads=False).aggregate(
            [("_row", "min")])
    repeats = np.ones(table.num_rows, dtype=bool)
    repeats[np.asarray(groups.column("_row_min").to_numpy(), dtype=np.int64)] = False
    return np.flatnonzero(repeats)


def has_key_column(columns: list[dict[str, Any]], table: pa.Table) -> bool:
    """Whether some column of an exactly analyzed ``table`` holds a different value on every row (null counting as
    one value), so that no row can repeat another and :func:`duplicate_positions` has nothing to find.

    ``columns`` are the exact statistics of ``table``'s rows (``distinct`` counted as Arrow's ``count_distinct``
    counts the column's :func:`~aiforge.analyze._values.hashable` values, which is how rows are compared). Float
    columns never count: ``count_distinct`` tells ``-0.0`` from ``0.0`` where a reader might not.
    """
    for stats in columns:
        if stats["name"] not in table.column_names or pa.types.is_floating(table.column(stats["name"]).type):
            continue
        if not (stats["distinct"]["exact"] and stats["missing"]["exact"]):
            continue
        nulls = int(stats["missing"]["value"] > 0)
        if stats["distinct"]["value"] + nulls == table.num_rows:
            return True
    return False


def add_examples(issues: list[dict[str, Any]], table: pa.Table, positions: np.ndarray,
                 duplicates: np.ndarray | None = None) -> None:
    """Give each issue about some of the rows the row numbers of up to :data:`EXAMPLE_ROWS` of them
    (``examples``: 0-based row numbers in the data, files in order, from the rows analyzed).

    Issues about every row (an empty or constant column, numbers stored as text, a leaking column) get none.
    """
    for issue in issues:
        mask: np.ndarray | None = None
        if issue["type"] == "duplicate_rows":
            mask = np.zeros(table.num_rows, dtype=bool)
            if duplicates is not None:
                mask[duplicates] = True
        elif issue["column"] is not None and issue["column"] in table.column_names:
            mask = _affected(issue, table.column(issue["column"]))
        if mask is None:
            continue
        picked = positions[mask][:EXAMPLE_ROWS]
        if picked.size:
            issue["examples"] = [int(p) for p in picked]


def _affected(issue: dict[str, Any], column: pa.ChunkedArray) -> np.ndarray | None:
    """Which rows of the sample an issue is about, or None when it is about every row."""
    kind = issue["type"]

    def mask(array: Any) -> np.ndarray:
        return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)

    if kind == "mostly_missing":
        return mask(pc.is_null(column))
    if kind in ("nan_values", "infinite_values") and pa.types.is_floating(column.type):
        return mask(pc.is_nan(column) if kind == "nan_values" else pc.is_inf(column))
    is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if kind == "empty_strings" and is_text:
        return mask(pc.equal(pc.utf8_trim_whitespace(column), ""))
    if kind == "mixed_types" and is_text:
        blank = pc.equal(pc.utf8_trim_whitespace(column), "")
        number = pc.match_substring_regex(column, NUMBER_PATTERN)
        return mask(pc.and_not(pc.invert(number), blank))
    if kind == "outliers" and "fences" in issue:
        low, high = issue["fences"]
        valid = mask(pc.is_valid(column))
        out = np.zeros(len(column), dtype=bool)
        values = numeric_values(column)
        out[np.flatnonzero(valid)] = (values < low) | (values > high)
        return out
    return None


def find_issues(
    columns: list[dict[str, Any]],
    table: pa.Table,
    *,
    total_rows: int,
    exact: bool,
    duplicates: int,
    leaks: dict[str, dict[str, Any]],
    label: str | None,
) -> list[dict[str, Any]]:
    """Issues found in the column statistics and the sample, most severe and largest first."""
    issues: list[dict[str, Any]] = []
    scale = 1.0 if exact else total_rows / max(table.num_rows, 1)
    if duplicates:
        issues.append(
            _issue(
                "duplicate_rows",
                None,
                duplicates,
                exact,
                "warning",
                f"{duplicates:,} rows repeat an earlier row exactly"
                + (
                    ""
                    if exact
                    else f" among the {table.num_rows:,} sampled rows; run with exact=True for the full count"
                ),
            )
        )
    for stats in columns:
        name, count, missing = stats["name"], stats["count"]["value"], stats["missing"]["value"]
        if count == 0:
            issues.append(
                _issue(
                    "empty_column",
                    name,
                    total_rows,
                    stats["missing"]["exact"],
                    "error",
                    "every value is missing",
                )
            )
            continue
        if missing / total_rows >= MOSTLY_MISSING:
            issues.append(
                _issue(
                    "mostly_missing",
                    name,
                    missing,
                    stats["missing"]["exact"],
                    "warning",
                    f"{missing / total_rows:.0%} of the values are missing",
                )
            )
        if stats["distinct"]["value"] == 1:
            value = stats["top_values"]["value"][0]["value"] if stats.get("top_values") else None
            issues.append(
                _issue(
                    "constant",
                    name,
                    total_rows,
                    stats["distinct"]["exact"],
                    "warning",
                    f"every value is {value!r}",
                )
            )
        issues += _value_issues(stats, table.column(name), scale, exact)
        if name in leaks and leaks[name]["leak"]:
            score = leaks[name]
            issues.append(
                _issue(
                    "label_leak",
                    name,
                    count,
                    stats["count"]["exact"],
                    "error",
                    f"predicts the label '{label}' alone on held-out rows ({score['metric']} "
                    f"{score['score']:.3f}, "
                    f"baseline {score['baseline']:.3f}); it may be derived from the label",
                )
            )
    issues.sort(key=lambda item: (_SEVERITY[item["severity"]], -item["rows"]))
    return issues


def _value_issues(
    stats: dict[str, Any], column: pa.ChunkedArray, scale: float, exact: bool
) -> list[dict[str, Any]]:
    name, found = stats["name"], []
    for key, kind, what in (("nan", "nan_values", "NaN"), ("inf", "infinite_values", "infinite")):
        if stats.get(key, {}).get("value"):
            found.append(
                _issue(
                    kind,
                    name,
                    stats[key]["value"],
                    exact,
                    "warning",
                    f"{stats[key]['value']:,} {what} values",
                )
            )
    if stats.get("empty_strings", {}).get("value"):
        rows = stats["empty_strings"]["value"]
        found.append(
            _issue("empty_strings", name, rows, exact, "warning", f"{rows:,} empty or blank strings")
        )
    numeric = stats.get("numeric_strings", {}).get("value", 0)
    if stats.get("min", {}).get("order") == "numeric":
        low, high = stats["min"]["value"], stats["max"]["value"]
        found.append(
            _issue(
                "numbers_as_text",
                name,
                stats["count"]["value"],
                exact,
                "warning",
                f"every value is a number stored as text ({low} to {high} in numeric order), so comparisons and "
                f"sorting treat them as text: cast it to a number in the dump query, or in SQL over the snapshot "
                f"(CAST({name} AS DOUBLE))",
            )
        )
    elif numeric:
        present = stats["count"]["value"] - stats.get("empty_strings", {}).get("value", 0)
        other = present - numeric
        if other > 0 and numeric >= 0.5 * present:
            found.append(
                _issue(
                    "mixed_types",
                    name,
                    other,
                    exact,
                    "warning",
                    f"mostly numbers stored as text, but {other:,} values are not numbers",
                )
            )
    if stats["kind"] == "numeric" and "quantiles" in stats:
        q = stats["quantiles"]["value"]
        iqr = q["p75"] - q["p25"]
        if iqr > 0:
            values = numeric_values(column)
            low, high = q["p25"] - OUTLIER_IQR * iqr, q["p75"] + OUTLIER_IQR * iqr
            outside = int(((values < low) | (values > high)).sum())
            if outside:
                rows = outside if exact else round(outside * scale)
                found.append(
                    _issue(
                        "outliers",
                        name,
                        rows,
                        exact,
                        "info",
                        f"{rows:,} values outside [{low:.4g}, {high:.4g}] (quartiles -/+ "
                        f"{OUTLIER_IQR:g} IQR)",
                    )
                    | {"fences": [low, high]}
                )
    return found


# -- label, bias, leaks
# ----------------------------------------------------------------------------------------------


def is_classification(stats: dict[str, Any]) -> bool:
    """A label is a class label unless it is a number with many distinct values."""
    if stats["kind"] != "numeric":
        return True
    limit = 20 if stats["type"].startswith(("float", "double", "halffloat")) else CATEGORICAL_MAX_DISTINCT
    return bool(stats["distinct"]["value"] <= limit)


def encode(column: pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    """Dense integer codes for the values of a column (null is its own code, last), and the values as the report
    shows them (long strings cut, see :func:`~aiforge.analyze._values.short_values`)."""
    encoded = hashable(column).combine_chunks().dictionary_encode(null_encoding="encode")
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, short_values(encoded.dictionary)


def label_summary(
    stats: dict[str, Any], column: pa.ChunkedArray, total_rows: int, exact: bool
) -> dict[str, Any]:
    """The label's distribution: class counts and shares plus imbalance, or the numeric summary for
    regression.
    """
    summary: dict[str, Any] = {
        "name": stats["name"],
        "task": "classification" if is_classification(stats) else "regression",
    }
    if summary["task"] == "regression":
        summary.update({k: stats[k] for k in ("mean", "std", "quantiles", "histogram") if k in stats})
        return summary
    present = column.drop_null()
    codes, values = encode(present)
    counts = np.bincount(codes, minlength=len(values)) if len(values) else np.zeros(0, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    scale = 1.0 if exact else total_rows / max(len(column), 1)
    classes = [
        {
            "value": values[i],
            "count": round(counts[i] * scale),
            "share": float(counts[i] / max(counts.sum(), 1)),
        }
        for i in order
    ]
    summary["classes"] = {"value": classes, "exact": exact}
    if len(classes) >= 2:
        summary["imbalance_ratio"] = {
            "value": classes[0]["count"] / max(classes[-1]["count"], 1),
            "exact": exact,
        }
        summary["minority_share"] = {"value": classes[-1]["share"], "exact": exact}
    return summary


def imbalance_issues(label: dict[str, Any], exact: bool) -> list[dict[str, Any]]:
    """An ``info`` issue when the smallest class holds under 10% of the labelled rows."""
    if label.get("minority_share", {}).get("value", 1) >= IMBALANCED_SHARE:
        return []
    minority = label["classes"]["value"][-1]
    message = f"minority class {minority['value']!r} is {minority['share']:.1%} of rows"
    return [_issue("label_imbalance", label["name"], minority["count"], exact, "info", message)]


def bias_slices(
    table: pa.Table, columns: list[dict[str, Any]], label: dict[str, Any]
) -> list[dict[str, Any]]:
    """Label balance in each slice (value) of each categorical column, and how far it is from the whole.

    Deviation is the total variation distance between the slice's class shares and the overall class shares
    (half
    the sum of absolute differences, 0..1) for classification, and the difference of means in overall standard
    deviations for regression. Slices are the most frequent values (at most 30) of categorical/boolean
    columns.
    """
    y = table.column(label["name"])
    keep = pc.is_valid(y)
    results: list[dict[str, Any]] = []
    if label["task"] == "classification":
        y_codes, y_values = encode(y.filter(keep))
        k = max(len(y_values), 1)
        overall = np.bincount(y_codes, minlength=k) / max(len(y_codes), 1)
    else:
        target = numeric_values(y.filter(keep))
        mean, std = float(target.mean()), float(target.std()) or 1.0
    for stats in columns:
        if stats["name"] == label["name"] or not _sliceable(stats):
            continue
        codes, values = encode(table.column(stats["name"]).filter(keep))
        sizes = np.bincount(codes, minlength=len(values))
        slices = []
        for code in np.argsort(-sizes, kind="stable")[:MAX_SLICES]:
            inside = codes == code
            entry: dict[str, Any] = {"value": values[code], "rows": int(sizes[code])}
            if label["task"] == "classification":
                shares = np.bincount(y_codes[inside], minlength=k) / max(int(sizes[code]), 1)
                entry["label_shares"] = {str(v): float(s) for v, s in zip(y_values, shares, strict=True)}
                entry["deviation"] = float(0.5 * np.abs(shares - overall).sum())
            else:
                slice_mean = float(target[inside].mean()) if inside.any() else mean
                entry["label_mean"] = slice_mean
                entry["deviation"] = abs(slice_mean - mean) / std
            slices.append(entry)
        results.append({"column": stats["name"], "slices": slices})
    return results


def _sliceable(stats: dict[str, Any]) -> bool:
    """Categorical and boolean columns, and numbers with a few distinct values (codes, ratings, counts)."""
    if stats["kind"] in ("categorical", "boolean"):
        return True
    return stats["kind"] == "numeric" and stats["distinct"]["value"] <= MAX_SLICES


def top_biased(bias: list[dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """The slices (with at least 5 rows) whose label distribution deviates most from the whole data."""
    flat = [
        {"column": group["column"], **entry}
        for group in bias
        for entry in group["slices"]
        if entry["rows"] >= MIN_SLICE_ROWS
    ]
    flat.sort(key=lambda item: (-item["deviation"], -item["rows"]))
    return flat[:limit]
