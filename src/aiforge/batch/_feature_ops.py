"""Learning and applying one feature: the statistics it keeps and the columns it outputs.

:func:`learn` turns aggregated statistics into a feature's fitted state and output names; :func:`apply` turns
an Arrow column into that feature's float64 block of shape ``(N, width)``. :class:`~aiforge.batch.transform.
Transform` calls both for each feature of a spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aiforge.batch import _encoders as enc
from aiforge.batch.spec import BatchSpec, FeatureItem, TextFeature
from aiforge.errors import InvalidInput

__all__ = ["DEFAULT_TOP_K", "apply", "check_types", "learn"]

DEFAULT_TOP_K = 10
Tokenizer = Callable[[list[str]], list[list[str]]]


class TransformLike(Protocol):
    """What the BATCH plan needs of a :class:`~aiforge.batch.transform.Transform`. A Protocol, so the plan does not
    import the Transform that calls it to fit itself (no import cycle)."""

    def feature_items(self) -> list[FeatureItem]: ...

    def prepare(self, batch: pa.RecordBatch | pa.Table, tokenizer: Tokenizer | None = None) -> pa.RecordBatch: ...

    def transform(self, data: Any, tokenizer: Tokenizer | None = None) -> np.ndarray: ...


def _sorted_keys(pairs: Iterable[Sequence[Any]]) -> list[tuple[str, int]]:
    return sorted(((str(k), int(n)) for k, n in pairs), key=lambda kn: (-kn[1], kn[0]))


_ONE_VALUE = "one value per row (a string, number, boolean or date)"


def _numeric_type(kind: pa.DataType) -> bool:
    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
            or pa.types.is_boolean(kind) or pa.types.is_null(kind))


def _string_type(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind) or (
        getattr(pa.types, "is_string_view", lambda _: False)(kind))


def _binary_type(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind) or (
        getattr(pa.types, "is_binary_view", lambda _: False)(kind))


def _not_one_value(kind: pa.DataType) -> str | None:
    """Why a column of this type cannot be a category or a label (None when it can): Arrow cannot make it text."""
    if pa.types.is_nested(kind):
        return "pick another column, or turn the list into a value in the dump query"
    if _binary_type(kind):
        return "decode the bytes to text in the dump query"
    return None


def _problem(kind_name: str, arrow_type: pa.DataType) -> str | None:
    """What is wrong with a column of ``arrow_type`` for a feature (or label) of ``kind_name``; None when fine."""
    kind = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if kind_name == "numeric":
        if _numeric_type(kind):
            return None
        return ("a numeric feature needs numbers (integer, floating point, decimal or boolean): cast it to a number "
                "in the dump query, or use a categorical feature")
    if kind_name == "text":
        if _string_type(kind):
            return None
        return "a text feature needs a string column: use a numeric or categorical feature, or cast it to text in " \
               "the dump query"
    fix = _not_one_value(kind)
    what = "a label" if kind_name == "label" else "a categorical feature"
    return None if fix is None else f"{what} needs {_ONE_VALUE}: {fix}"


def _selectable(kind_name: str, arrow_type: pa.DataType) -> bool:
    """Whether a selector (``columns: "pixel_*"``) of a ``kind_name`` feature takes a column of this type: numbers
    for numeric, text or booleans for categorical (integer categories are better named), text for text."""
    kind = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_null(kind):
        return False  # no value at all: nothing to learn
    if kind_name == "categorical":
        return _string_type(kind) or pa.types.is_boolean(kind)
    return _problem(kind_name, kind) is None


def expand_columns(spec: BatchSpec, types: Mapping[str, pa.DataType], *, source: str = "") -> BatchSpec:
    """The spec with every column selector (``columns: "pixel_*"``) replaced by one feature per matching column.

    A selector takes, in table order, the columns whose name matches one of its patterns (shell-style, case
    sensitive) and whose type the feature can use, except the id, the label, columns another feature names and
    columns an earlier selector took; each feature keeps the selector's options and is named after its column.

    Parameters
    ----------
    spec : BatchSpec
    types : mapping of str to pyarrow.DataType
        The input's columns, in table order.
    source : str, optional
        Added after "columns" in errors, e.g. ``" of snapshot t@v1"``.

    Raises
    ------
    InvalidInput
        A selector matches no column it can use; the message names its patterns and the columns there are.

    Examples
    --------
    >>> from aiforge.batch.spec import load_spec
    >>> spec = load_spec({"input": "t", "output": "f", "id": "id", "features": [
    ...     {"numeric": {"columns": "px_*", "scale": "minmax"}}, {"numeric": {"column": "px_2"}}]})
    >>> types = {"id": pa.int64(), "px_0": pa.float64(), "px_1": pa.float64(), "px_2": pa.float64()}
    >>> [f.name for f in expand_columns(spec, types).features]
    ['px_0', 'px_1', 'px_2']
    """
    import fnmatch

    if all(item.selector is None for item in spec.features):
        return spec
    taken = {spec.id, *([spec.label] if spec.label else []),
             *(item.column for item in spec.features if item.selector is None)}
    features: list[dict[str, Any]] = []
    for i, item in enumerate(spec.features):
        patterns = item.selector
        if patterns is None:
            features.append(item.model_dump(exclude_none=True))
            continue
        matched = [name for name, kind in types.items()
                   if name not in taken and any(fnmatch.fnmatchcase(name, p) for p in patterns)
                   and _selectable(item.kind, kind)]
        if not matched:
            shown = ", ".join(f"{name} ({kind})" for name, kind in types.items())
            raise InvalidInput(
                f"features[{i}].{item.kind}.columns {item.body.columns!r} matches no column a {item.kind} feature "
                f"can use that no other feature takes; columns{source}: {shown}"
            )
        taken.update(matched)
        options = item.body.model_dump(exclude_none=True, exclude={"columns"})
        features += [{item.kind: {**options, "column": name}} for name in matched]
    return type(spec).model_validate({**spec.model_dump(exclude_none=True), "features": features})


def check_types(items: Sequence[FeatureItem], types: Mapping[str, pa.DataType], *, label: str | None = None,
                source: str = "") -> None:
    """Refuse, before any row is read, a feature or label over a column whose Arrow type it cannot use.

    A numeric feature needs numbers (a string column is refused even when it holds digits: the type decides, so
    the error comes before the first row, on every engine and at serving time alike); a text feature needs strings;
    a categorical feature or a label needs one scalar value per row (numbers, booleans and dates are fine: their
    category is their text form). ``source`` (e.g. ``" of snapshot t@v1"``) is added after the column's name.
    Columns missing from ``types`` are left to the caller's own check.
    """
    wanted = [(f"features[{i}].{item.kind}.column", item.kind, item.column) for i, item in enumerate(items)]
    if label is not None:
        wanted.append(("label", "label", label))
    for where, kind_name, column in wanted:
        if column not in types:
            continue
        problem = _problem(kind_name, types[column])
        if problem is not None:
            raise InvalidInput(f"{where}: column {column!r}{source} has type {types[column]}; {problem}")


def _fill(item: FeatureItem, key: str, stats: Mapping[str, Any]) -> dict[str, Any]:
    """``{"fill": value}`` for a feature with ``impute`` (``{}`` without): the constant, or the train statistic."""
    body = item.body
    strategy = getattr(body, "impute", None)
    if strategy is None:
        return {}
    numeric = item.numeric is not None
    value = getattr(body, "fill_value", None) if strategy == "constant" else stats.get("impute", {}).get(key)
    if value is None:
        raise InvalidInput(
            f"feature {item.name!r}: impute {strategy!r} found no value of column {item.column!r} in the train split "
            "after the drop rules (every value is missing); use impute: constant with a fill_value, or check the "
            "column"
        )
    return {"fill": float(value) if numeric else str(value)}


def learn(item: FeatureItem, i: int, stats: Mapping[str, Any], rows: int) -> tuple[dict[str, Any], list[str]]:
    """The fitted state of feature ``i`` (its ``fill`` first when it imputes) and its output names."""
    key = str(i)
    fill = _fill(item, key, stats)
    learned, outputs = _learn(item, key, stats, rows)
    return {**fill, **learned}, outputs


def _learn(item: FeatureItem, key: str, stats: Mapping[str, Any], rows: int) -> tuple[dict[str, Any], list[str]]:
    name = item.name
    if item.numeric is not None:
        spec = item.numeric
        numeric = stats["numeric"][key]
        if not numeric["count"]:
            raise InvalidInput(
                f"feature {name!r}: column {spec.column!r} has no finite value in the train split after the drop "
                "rules (after clip/log1p); check the column or the drop rules"
            )
        std = float(numeric["std"] or 0.0)
        learned: dict[str, Any] = {
            "mean": float(numeric["mean"]),
            "std": std if std > 0 else 1.0,
            "min": float(numeric["min"]),
            "max": float(numeric["max"]),
        }
        if spec.bucketize is not None:
            edges = spec.bucketize.edges or sorted({float(q) for q in numeric["quantiles"]})
            learned["edges"] = edges
            return learned, [f"{name}#b{j}" for j in range(len(edges) + 1)]
        return learned, [name]
    if item.categorical is not None:
        spec_c = item.categorical
        if spec_c.encoding == "hash":
            return {}, [f"{name}#h{j}" for j in range(spec_c.buckets)]
        counts = _sorted_keys(stats["counts"][key])
        limit = spec_c.top_k or (DEFAULT_TOP_K if spec_c.encoding == "onehot" else None)
        vocabulary = [k for k, _ in counts[:limit]]
        if spec_c.encoding == "ordinal":
            return {"vocabulary": vocabulary}, [name]
        return {"vocabulary": vocabulary}, [f"{name}={v}" for v in vocabulary] + [f"{name}=__other__"]
    text = item.text
    if not isinstance(text, TextFeature):  # pragma: no cover - FeatureItem guarantees one kind
        raise InvalidInput(f"feature {name!r} has no kind")
    if text.encoding == "hash":
        return {}, [f"{name}#h{j}" for j in range(text.buckets)]
    frequencies = [(t, n) for t, n in _sorted_keys(stats["df"][key]) if n >= text.min_df][: text.max_features]
    vocabulary = [t for t, _ in frequencies]
    idf = [math.log((1 + rows) / (1 + n)) + 1.0 for _, n in frequencies]
    return {"vocabulary": vocabulary, "idf": idf}, [f"{name}:{t}" for t in vocabulary]


def apply(item: FeatureItem, learned: Mapping[str, Any], column: Any, n: int, tokenizer: Tokenizer) -> np.ndarray:
    if item.numeric is not None:
        spec = item.numeric
        values = enc.numeric_values(column, spec.clip, spec.log1p, learned.get("fill") if spec.impute else None)
        values = np.where(np.isnan(values), learned["mean"], values)
        if spec.bucketize is not None:
            edges = np.asarray(learned["edges"], dtype=np.float64)
            out = np.zeros((n, len(edges) + 1), dtype=np.float64)
            out[np.arange(n), np.searchsorted(edges, values, side="right")] = 1.0
            return out
        if spec.scale == "standardize":
            values = (values - learned["mean"]) / learned["std"]
        elif spec.scale == "minmax":
            span = learned["max"] - learned["min"]
            values = (values - learned["min"]) / (span if span > 0 else 1.0)
        return values.reshape(n, 1)
    if item.categorical is not None:
        spec_c = item.categorical
        keys = enc.category_keys(column)
        if spec_c.impute is not None and keys.null_count:
            keys = pc.fill_null(keys, pa.scalar(learned["fill"], keys.type))
        if spec_c.encoding == "hash":
            index = enc.hashed_indices(keys, spec_c.buckets)
            out = np.zeros((n, spec_c.buckets), dtype=np.float64)
            rows = np.flatnonzero(index >= 0)
            out[rows, index[rows]] = 1.0
            return out
        vocabulary = learned["vocabulary"]
        index = enc.vocabulary_indices(keys, vocabulary)
        if spec_c.encoding == "ordinal":
            return index.astype(np.float64).reshape(n, 1)
        out = np.zeros((n, len(vocabulary) + 1), dtype=np.float64)
        out[np.arange(n), np.where(index < 0, len(vocabulary), index)] = 1.0
        return out
    text = item.text
    if not isinstance(text, TextFeature):  # pragma: no cover
        raise InvalidInput("feature without a kind")
    tokens = enc.tokens_of(column, tokenizer, text.lowercase)
    if text.encoding == "hash":
        return enc.term_counts(tokens, None, text.buckets)
    counts = enc.term_counts(tokens, learned["vocabulary"], len(learned["vocabulary"]))
    counts *= np.asarray(learned["idf"], dtype=np.float64)
    norms = np.linalg.norm(counts, axis=1, keepdims=True)
    return counts / np.where(norms > 0, norms, 1.0)
