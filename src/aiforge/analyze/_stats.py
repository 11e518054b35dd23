"""Per-column statistics of ANALYZE, computed on Arrow arrays with pyarrow.compute and numpy.

Every figure is ``{"value": ..., "exact": bool}``: exact when it was computed on every row (or read from exact
metadata), estimated when it comes from the sample. Counts estimated from a sample are scaled to the whole
data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aiforge.analyze._values import hashable, jsonable, normalise, short_values

__all__ = ["column_stats", "figure", "kind_of", "numeric_values", "sort_values"]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 20
TOP_VALUES = 10
CATEGORICAL_MAX_DISTINCT = 50
NUMBER_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def figure(value: Any, exact: bool, **extra: Any) -> dict[str, Any]:
    """A figure as the JSON report stores it: its value and whether it is exact."""
    return {"value": value, "exact": exact, **extra}


def kind_of(dtype: pa.DataType, distinct: int | None = None, count: int | None = None) -> str:
    """``numeric``, ``boolean``, ``datetime``, ``categorical``, ``text``, ``nested`` (lists, structs, maps, unions)
    or ``other`` for an Arrow type.

    Strings are categorical when they have at most 50 distinct values or repeat a lot (distinct <= 5% of
    values).

    Examples
    --------
    >>> kind_of(pa.int64()), kind_of(pa.string(), distinct=3, count=100)
    ('numeric', 'categorical')
    """
    if isinstance(dtype, pa.BaseExtensionType):
        return kind_of(dtype.storage_type, distinct, count)
    if pa.types.is_run_end_encoded(dtype):
        return kind_of(dtype.value_type, distinct, count)
    if pa.types.is_dictionary(dtype):
        return "categorical"
    if pa.types.is_nested(dtype):
        return "nested"
    if pa.types.is_interval(dtype):
        return "other"
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_temporal(dtype) and not pa.types.is_time(dtype) and not pa.types.is_duration(dtype):
        return "datetime"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        if distinct is not None and count:
            return (
                "categorical" if distinct <= CATEGORICAL_MAX_DISTINCT or distinct <= 0.05 * count else "text"
            )
        return "categorical"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype):
        return "text"
    return "other"


def numeric_values(column: pa.ChunkedArray) -> np.ndarray:
    """The non-null values as float64 (datetimes as their integer ticks)."""
    column = normalise(column).drop_null()
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    elif pa.types.is_date(column.type):
        column = column.cast(pa.int32())
    elif pa.types.is_temporal(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _ticks_to_iso(values: np.ndarray, dtype: pa.DataType) -> list[str]:
    unit: Any = "D" if pa.types.is_date(dtype) else getattr(dtype, "unit", "s")
    return [str(np.datetime64(round(v), unit)) for v in values]


def column_stats(
    column: pa.ChunkedArray,
    *,
    total_rows: int,
    exact: bool,
    figures: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Statistics of one column of the sample.

    Parameters
    ----------
    column : pyarrow.ChunkedArray, shape (n,)
        The column's values in the sample (all rows when ``exact``).
    total_rows : int
        Rows in the whole data, to scale sample counts.
    exact : bool
        Whether ``column`` holds every row.
    figures : dict, optional
        Exact ``missing``/``min``/``max`` from metadata or one cheap pass; they override the sample's.

    Returns
    -------
    dict
        ``type``, ``kind``, ``count``, ``missing``, ``distinct`` and, by kind, ``min``, ``max``, ``mean``,
        ``std``,
        ``quantiles``, ``zeros``, ``nan``, ``inf``, ``histogram``, ``top_values``, ``lengths``,
        ``empty_strings``,
        ``numeric_strings``; each a :func:`figure`.

    Examples
    --------
    >>> s = column_stats(pa.chunked_array([[1, 2, None]]), total_rows=3, exact=True)
    >>> s["mean"]["value"], s["missing"]["value"]
    (1.5, 1)
    """
    figures = figures or {}
    dtype = column.type
    values = normalise(column)
    column = hashable(values)  # nested values as their JSON text, to count, compare and show
    n = len(column)
    scale = 1.0 if exact else total_rows / max(n, 1)

    def scaled(count: int) -> dict[str, Any]:
        return figure(int(count) if exact else round(count * scale), exact)

    missing_exact = exact or "missing" in figures
    missing = int(figures["missing"]) if "missing" in figures and not exact else column.null_count * scale
    missing = round(missing)
    present = column.drop_null()
    raw = _raw_numbers(present)
    ordered = None
    if raw is not None:  # one sort gives the distinct count here, and the quantiles and histogram below
        ordered = sort_values(raw)
        distinct_sample = _sorted_distinct(raw, ordered)
    words = _encoded_words(present)
    if words is not None:  # strings: one hash pass gives the distinct values, their counts, and each row's value
        distinct_sample = len(words[0])
    elif raw is None:
        distinct_sample = pc.count_distinct(present).as_py() if len(present) else 0
    out: dict[str, Any] = {
        "type": str(dtype),
        "kind": kind_of(dtype, distinct_sample, len(present)),
        "count": figure(total_rows - missing, missing_exact),
        "missing": figure(missing, missing_exact),
        "distinct": _distinct(present, distinct_sample, total_rows - missing, exact),
    }
    kind = out["kind"]
    if kind in ("numeric", "boolean", "datetime"):
        out.update(_numeric_stats(present, _plain_type(dtype), kind, exact, figures, scaled, raw, ordered))
    elif kind == "nested":
        out.update(_nested_stats(values, exact))
    elif kind in ("categorical", "text") and (
        pa.types.is_string(column.type) or pa.types.is_binary(column.type)
    ):
        out.update(_string_stats(present, exact, scaled, words))
    if len(present) and (
        kind in ("categorical", "text", "boolean") or distinct_sample <= CATEGORICAL_MAX_DISTINCT
    ):
        out["top_values"] = _top_values(present, exact, scale, words)
    return out


def sort_values(values: np.ndarray) -> np.ndarray:
    """``values`` sorted: themselves when they already are (row ids, times in order), one check instead of a sort.

    Examples
    --------
    >>> sort_values(np.array([3, 1, 2])).tolist(), sort_values(np.array([1.0, np.nan])).tolist()
    ([1, 2, 3], [1.0, nan])
    """
    if values.size < 2 or bool((values[1:] >= values[:-1]).all()):  # False at any NaN: those get sorted
        return values
    return np.sort(values)


def _encoded_words(present: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray] | None:
    """A string or binary column as its distinct values (in order of first appearance, as ``value_counts`` gives
    them), how often each occurs, and each row's index into them; None for other types or no values.

    The per-value checks (regex, trimming, lengths) then run once per distinct value instead of once per row.
    """
    if not len(present) or not (pa.types.is_string(present.type) or pa.types.is_binary(present.type)):
        return None
    encoded = present.combine_chunks().dictionary_encode()
    indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return encoded.dictionary, np.bincount(indices, minlength=len(encoded.dictionary)), indices


def _raw_numbers(present: pa.ChunkedArray) -> np.ndarray | None:
    """The non-null values of an integer, float32/64, date or timestamp column as one numpy array in their own
    type (dates and timestamps as their integer ticks), or None for other types.

    Integers stay integers so that distinct values above 2**53 stay distinct; see :func:`_sorted_distinct`.
    """
    dtype = present.type
    if pa.types.is_date32(dtype):
        present = present.cast(pa.int32())
    elif pa.types.is_date64(dtype) or pa.types.is_timestamp(dtype):
        present = present.cast(pa.int64())
    elif not (pa.types.is_integer(dtype) or pa.types.is_float32(dtype) or pa.types.is_float64(dtype)):
        return None
    return np.asarray(present.to_numpy()) if len(present) else np.zeros(0, present.type.to_pandas_dtype())


def _sorted_distinct(raw: np.ndarray, ordered: np.ndarray) -> int:
    """Distinct values as Arrow's ``count_distinct`` counts them, from the values and the same sorted: floats by
    their bits, so ``-0.0`` and ``0.0`` are two values, and so are NaNs with different bits (sign or payload).

    NaN bits and zero signs come from ``raw``: ``np.sort`` may write NaNs back as one standard NaN, and zeros with
    either sign.

    Examples
    --------
    >>> raw = np.array([0.0, -0.0, np.nan, np.nan, 1.0, 1.0])
    >>> _sorted_distinct(raw, np.sort(raw))
    4
    """
    if not ordered.size:
        return 0
    extra = 0
    if ordered.dtype.kind == "f":
        if np.isnan(ordered[-1]):  # np.sort puts NaNs last
            nans = raw[np.isnan(raw)]
            extra += int(np.unique(nans.view(np.dtype(f"u{nans.dtype.itemsize}"))).size)
            ordered = ordered[: ordered.size - nans.size]
        signs = np.signbit(raw[raw == 0])  # from raw too: a SIMD sort may swap -0.0 and 0.0, which compare equal
        extra += int(bool(signs.any()) and not bool(signs.all()))  # -0.0 and 0.0: == merges them, Arrow does not
    if not ordered.size:
        return extra
    return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1])) + extra


def _plain_type(dtype: pa.DataType) -> pa.DataType:
    """The type of the values behind an extension or run-end encoding."""
    if isinstance(dtype, pa.BaseExtensionType):
        return _plain_type(dtype.storage_type)
    if pa.types.is_run_end_encoded(dtype):
        return _plain_type(dtype.value_type)
    return dtype


def _nested_stats(values: pa.ChunkedArray, exact: bool) -> dict[str, Any]:
    """Element counts of list and map values (min/mean/max and a histogram); structs and unions have none."""
    if pa.types.is_map(values.type):
        entry = pa.struct([values.type.key_field, values.type.item_field])
        values = values.cast(pa.list_(entry))
    try:
        lengths = pc.list_value_length(values).drop_null()
    except pa.ArrowNotImplementedError:
        return {}
    return {"lengths": _lengths(np.asarray(lengths.to_numpy(), dtype=np.float64), exact)} if len(lengths) else {}


def _lengths(lengths: np.ndarray, exact: bool) -> dict[str, Any]:
    counts, edges = np.histogram(lengths, bins=min(HISTOGRAM_BINS, int(lengths.max() - lengths.min()) + 1))
    return figure(
        {
            "min": int(lengths.min()),
            "mean": float(lengths.mean()),
            "max": int(lengths.max()),
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        },
        exact,
    )


def _distinct(present: pa.ChunkedArray, in_sample: int, population: int, exact: bool) -> dict[str, Any]:
    if exact or not len(present):
        return figure(in_sample, True)
    # Chao1 with the bias correction: unseen values are inferred from how many were seen once (f1) and twice
    # (f2).
    counts = pc.value_counts(present).field("counts").to_numpy()
    f1, f2 = int((counts == 1).sum()), int((counts == 2).sum())
    estimate = in_sample + f1 * (f1 - 1) / (2 * (f2 + 1))
    return figure(
        int(min(max(estimate, in_sample), population)), False, method="Chao1 estimate from the sample"
    )


def _numeric_stats(
    present: pa.ChunkedArray, dtype: pa.DataType, kind: str, exact: bool, figures: dict[str, Any], scaled: Any,
    raw: np.ndarray | None = None, ordered: np.ndarray | None = None,
) -> dict[str, Any]:
    # ``raw``/``ordered``: the values (see _raw_numbers) and the same sorted. The mean and std add up the values in
    # their own order (a sum's rounding depends on it); quantiles and histograms depend on the values only, so they
    # use the sorted copy, where np.quantile's partitions cost next to nothing. (Only a zero's sign may differ: of
    # -0.0 and 0.0, which compare equal, a selection returns either.)
    values = numeric_values(present) if raw is None else np.asarray(raw, dtype=np.float64)
    out: dict[str, Any] = {}
    finite = values[np.isfinite(values)]
    if ordered is None:  # booleans: np.quantile partitions the values as they come
        finite_sorted = finite
    else:
        ordered = np.asarray(ordered, dtype=np.float64)  # a monotone cast: still sorted, NaNs last
        finite_sorted = ordered[np.isfinite(ordered)]
    if kind == "numeric" and pa.types.is_floating(dtype):
        out["nan"] = scaled(int(np.isnan(values).sum()))
        out["inf"] = scaled(int(np.isinf(values).sum()))
    if kind == "numeric":
        out["zeros"] = scaled(int((values == 0).sum()))
    not_nan = values[~np.isnan(values)]
    if "min" in figures and not exact:
        low, high, bounds_exact = figures.get("min"), figures.get("max"), True
    elif not_nan.size:
        (low, high), bounds_exact = _min_max(present), exact
    else:
        low, high, bounds_exact = None, None, exact
    out["min"], out["max"] = figure(jsonable(low), bounds_exact), figure(jsonable(high), bounds_exact)
    if not finite.size:
        return out
    quantiles = np.quantile(finite_sorted, QUANTILES)
    mean = float(finite.mean())
    std = float(finite.std(ddof=1)) if finite.size > 1 else None
    if kind == "datetime":
        out["mean"] = figure(_ticks_to_iso(np.array([mean]), dtype)[0], exact)
        out["quantiles"] = figure(dict(zip(_qnames(), _ticks_to_iso(quantiles, dtype), strict=True)), exact)
    else:
        out["mean"] = figure(mean, exact)
        out["std"] = figure(std, exact)
        out["quantiles"] = figure({k: float(v) for k, v in zip(_qnames(), quantiles, strict=True)}, exact)
    if kind != "boolean":
        out["histogram"] = _histogram(finite_sorted, dtype if kind == "datetime" else None, exact)
    return out


def _min_max(present: pa.ChunkedArray) -> tuple[Any, Any]:
    if pa.types.is_floating(present.type):
        present = pc.if_else(pc.is_nan(present), pa.scalar(None, present.type), present)
    result = pc.min_max(present)
    return result["min"].as_py(), result["max"].as_py()


def _qnames() -> list[str]:
    return [f"p{round(q * 100)}" for q in QUANTILES]


def robust_range(finite: np.ndarray) -> tuple[float, float]:
    """The span a histogram's bins cover: the smallest and largest values inside Tukey's far fences (quartiles -/+
    3 IQR; the 0.5th and 99.5th percentiles when the quartiles are equal). Values outside are counted apart
    (``below``/``above``), so one 1e9 among ages keeps 20 bins of ages instead of one bar.

    Examples
    --------
    >>> robust_range(np.array([1.0, 2.0, 3.0, 4.0]))
    (1.0, 4.0)
    >>> low, high = robust_range(np.r_[np.arange(1000.0), 1e9])
    >>> (low, high < 1e9)
    (0.0, True)
    """
    low, high = float(finite.min()), float(finite.max())
    if low == high or finite.size < 20 or not np.isfinite(high - low):
        return low, high
    q1, q3 = np.quantile(finite, (0.25, 0.75))
    fences = (q1 - 3 * (q3 - q1), q3 + 3 * (q3 - q1)) if q3 > q1 else np.quantile(finite, (0.005, 0.995))
    inside = finite[(finite >= fences[0]) & (finite <= fences[1])]
    if not inside.size or not inside.min() < inside.max():
        return low, high
    return float(inside.min()), float(inside.max())


def _histogram(finite: np.ndarray, datetime_type: pa.DataType | None, exact: bool) -> dict[str, Any]:
    low, high = robust_range(finite) if datetime_type is None else (float(finite.min()), float(finite.max()))
    below, above = int((finite < low).sum()), int((finite > high).sum())
    if below or above:
        finite = finite[(finite >= low) & (finite <= high)]
    bins = 1 if low == high else HISTOGRAM_BINS
    scale = 1.0 if np.isfinite(high - low) else 2.0  # -1e308..1e308: a range wider than the largest float
    try:
        counts, edges = np.histogram(
            finite / scale, bins=bins,
            range=(low / scale, high / scale) if low < high else (low - 0.5, high + 0.5),
        )
        edges = edges * scale
    except ValueError:  # values so large that the bins cannot be told apart (a constant above 2**52, say)
        counts, edges = np.array([finite.size]), np.array([low, high])
    labels: list[Any] = _ticks_to_iso(edges, datetime_type) if datetime_type is not None else edges.tolist()
    value: dict[str, Any] = {"edges": labels, "counts": counts.tolist()}
    value.update({side: n for side, n in (("below", below), ("above", above)) if n})  # outliers (robust_range)
    return figure(value, exact, basis="all rows" if exact else "sample")


def _string_stats(
    present: pa.ChunkedArray, exact: bool, scaled: Any,
    words: tuple[pa.Array, np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Lengths, alphabetical bounds, blank and numeric strings. With ``words`` (see :func:`_encoded_words`) each
    check runs on the distinct values and is weighted by their counts: the same figures, since a row's figures are
    its value's."""
    out: dict[str, Any] = {}
    is_text = pa.types.is_string(present.type)
    if words is not None:
        distinct, counts, indices = words
    else:
        distinct, counts, indices = present, None, None
    lengths = pc.utf8_length(distinct) if is_text else pc.binary_length(distinct)
    lengths_np = np.asarray(lengths.to_numpy(), dtype=np.float64) if len(distinct) else np.zeros(0)
    if indices is not None:
        lengths_np = lengths_np[indices]  # every row's length, in row order
    if lengths_np.size:
        out["lengths"] = _lengths(lengths_np, exact)
        bounds = pc.min_max(distinct)
        low, high = short_values(pa.array([bounds["min"], bounds["max"]], present.type))
        out["min"], out["max"] = figure(low, exact, order="alphabetical"), figure(high, exact, order="alphabetical")
    if is_text:

        def rows(flags: Any) -> int:
            if counts is None:
                return int(pc.sum(flags).as_py() or 0)
            return int(counts[np.asarray(flags.to_numpy(zero_copy_only=False), dtype=bool)].sum())

        blanks = rows(pc.equal(pc.utf8_trim_whitespace(distinct), ""))
        out["empty_strings"] = scaled(blanks)
        numeric = pc.match_substring_regex(distinct, NUMBER_PATTERN)
        numbers = rows(numeric)
        out["numeric_strings"] = scaled(numbers)
        if numbers and numbers + blanks == len(present):  # numbers stored as text: their order is the numbers'
            # on the distinct values in order of first appearance, a tie on the smallest or largest number still
            # picks the text of the first row that holds it
            bounds = _numeric_bounds(distinct.filter(numeric) if counts is not None else present.filter(numeric))
            if bounds is not None:
                out["min"], out["max"] = (figure(v, exact, order="numeric") for v in bounds)
    return out


def _numeric_bounds(numbers: pa.Array | pa.ChunkedArray) -> tuple[Any, Any] | None:
    """The texts of the smallest and largest numbers (``-5.00`` and ``99.94``, where text order gives ``-5.00`` and
    ``99.94`` only by chance, and ``10`` before ``9``); None if one does not fit a float."""
    try:
        values = np.asarray(pc.cast(pc.utf8_trim_whitespace(numbers), pa.float64()).to_numpy(), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not values.size or not np.isfinite(values).all():
        return None
    texts = numbers
    if isinstance(numbers, pa.ChunkedArray):
        texts = pa.chunked_array(numbers.chunks, numbers.type).combine_chunks()
    low, high = short_values(texts.take(pa.array([int(values.argmin()), int(values.argmax())])))
    return low, high


def _top_values(
    present: pa.ChunkedArray, exact: bool, scale: float,
    words: tuple[pa.Array, np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    if words is not None:  # the distinct values in order of first appearance, as value_counts gives them
        values, freq = words[0], words[1]
    else:
        counts = pc.value_counts(present)
        values, freq = counts.field("values"), counts.field("counts").to_numpy()
    order = np.argsort(-freq, kind="stable")[:TOP_VALUES]
    shown = short_values(values.take(pa.array(order, pa.int64())))
    items = [{"value": value, "count": round(int(freq[i]) * scale)} for value, i in zip(shown, order, strict=True)]
    return figure(items, exact)
