"""What both BATCH engines share: the SQL of the drop rules and of the statistics, and the per-batch Python work.

The engines differ only in who runs the SQL (DuckDB or Spark SQL) and who feeds the batches (a DuckDB Arrow
reader or Spark's ``mapInArrow``); the split, the prepared values and the output rows come from the same Python
functions below, so both engines give the same rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aiforge.batch import _encoders as enc
from aiforge.batch._feature_ops import DEFAULT_TOP_K, Tokenizer, TransformLike
from aiforge.batch.spec import BatchSpec, DropRule
from aiforge.errors import InvalidInput

__all__ = [
    "Runner",
    "Scan",
    "check_predicates",
    "collect_statistics",
    "count_query",
    "drop_conditions",
    "duckdb_statistics",
    "kept_query",
    "output_batch",
    "output_schema",
    "predicate_error",
    "prepare_train",
    "text_compared_with_numbers",
]

Run = Callable[[str], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Scan:
    """What an engine learns in its first passes: input rows, rows dropped by each rule, the train statistics."""

    rows_in: int
    dropped: list[int]
    stats: dict[str, Any]

    @property
    def kept(self) -> int:
        return self.rows_in - sum(self.dropped)


class Runner(Protocol):
    """One BATCH job on one engine: :meth:`scan` counts the drops and fits the statistics, then, once the
    transform is fitted, :meth:`write` transforms the kept rows into part files; :meth:`close` always runs."""

    def scan(self, show: bool = False) -> Scan: ...

    def write(self, schema: pa.Schema, staged: Path, show: bool) -> dict[str, int]: ...

    def close(self) -> None: ...


def check_predicates(
    run: Run, spec: BatchSpec, conditions: list[str | None], source: str, types: Mapping[str, str] | None = None
) -> None:
    """Evaluate each ``where`` rule on no rows, so a bad one is reported with its position in ``drop``.

    ``types`` (column -> Arrow type name) lets the error name a text column the rule compares, and the cast.
    """
    for i, (rule, condition) in enumerate(zip(spec.drop, conditions, strict=True)):
        if rule.where is None or condition is None:
            continue
        try:
            run(f"SELECT COUNT(*) FROM (SELECT * FROM {source} LIMIT 0) x WHERE {condition}")
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise predicate_error(i, rule.where, message, types or {}) from exc


_TEXT_TYPES = ("string", "large_string", "string_view", "utf8", "large_utf8")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARE = r"(?:<=|>=|<>|!=|=|<|>)"


def text_compared_with_numbers(where: str, types: Mapping[str, str]) -> list[str]:
    """The text (string) columns that a SQL predicate compares with a number literal (``amount < 0``,
    ``0 > "amount"``, ``amount BETWEEN 1 AND 5``), in the order of ``types``.

    Examples
    --------
    >>> types = {"amount": "string", "country": "string", "n": "int64"}
    >>> text_compared_with_numbers("amount < 0 AND country = 'KR' AND n > 1", types)
    ['amount']
    """
    bare = re.sub(r"'(?:[^']|'')*'", "''", where)  # a name inside a string literal is no column
    found = []
    for name, kind in types.items():
        if kind not in _TEXT_TYPES:
            continue
        ref = rf'(?:(?<![\w."`]){re.escape(name)}(?![\w"`])|"{re.escape(name)}"|`{re.escape(name)}`)'
        if re.search(
            rf"{ref}\s*(?:{_COMPARE}\s*{_NUMBER}|(?:NOT\s+)?BETWEEN\s+{_NUMBER})|{_NUMBER}\s*{_COMPARE}\s*{ref}",
            bare,
            re.I,
        ):
            found.append(name)
    return found


def predicate_error(index: int, where: str, message: str, types: Mapping[str, str]) -> InvalidInput:
    """Why ``drop[index].where`` cannot run, and the fix. A text column compared with a number (numbers stored as
    text, as a PostgreSQL ``numeric`` dumped before DUMP kept it a number) is named with a cast that works on both
    engines; otherwise the message lists the snapshot's columns and types, never the failing rule as an example."""
    texts = text_compared_with_numbers(where, types)
    if texts:
        cast = re.sub(r"'(?:[^']|'')*'|[\w\"`]+", lambda m: _cast_name(m[0], texts), where)
        names = ", ".join(repr(n) for n in texts)
        return InvalidInput(
            f"drop[{index}].where: cannot evaluate {where!r} on the snapshot: {message}; column {names} "
            f"{'holds' if len(texts) == 1 else 'hold'} text (type string), not numbers: cast it in the rule, for "
            f"example {cast!r}, or dump it again as a number"
        )
    columns = ", ".join(f"{name} ({kind})" for name, kind in types.items()) or "see 'aiforge snapshots show'"
    return InvalidInput(
        f"drop[{index}].where: cannot evaluate {where!r} on the snapshot: {message}; write a SQL predicate over the "
        f"snapshot's columns: {columns}"
    )


def _cast_name(token: str, names: list[str]) -> str:
    bare = token.strip('"`')
    return f"CAST({token} AS DOUBLE)" if not token.startswith("'") and bare in names else token


def quote(name: str, engine: str) -> str:
    """A column name as a quoted SQL identifier for ``engine``'s SQL ('local': DuckDB, or 'spark')."""
    if engine == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _is_float(kind: str) -> bool:
    return kind in ("double", "float", "halffloat", "float64", "float32", "float16")


def _invalid(rule: DropRule, spec: BatchSpec, types: Mapping[str, str], engine: str) -> str:
    columns = rule.columns or spec.used_columns()
    parts = []
    for column in columns:
        q = quote(column, engine)
        test = f"{q} IS NULL"
        if _is_float(types.get(column, "")):
            test += f" OR isnan({q}) OR {q} = CAST('Infinity' AS DOUBLE) OR {q} = CAST('-Infinity' AS DOUBLE)"
        parts.append(test)
    return "(" + " OR ".join(parts) + ")"


def drop_conditions(spec: BatchSpec, types: Mapping[str, str], engine: str) -> list[str | None]:
    """A boolean SQL condition per drop rule (true: drop the row); None for ``duplicate_rows``."""
    out: list[str | None] = []
    for rule in spec.drop:
        if rule.where is not None:
            out.append(f"COALESCE(({rule.where}), FALSE)")
        elif rule.issue == "invalid_values":
            out.append(f"COALESCE({_invalid(rule, spec, types, engine)}, FALSE)")
        else:
            out.append(None)
    return out


def _stages(conditions: Sequence[str | None], source: str) -> list[str]:
    """CTE definitions s0 .. sN: the rows left after each rule in turn."""
    ctes = [f"s0 AS (SELECT * FROM {source})"]
    for i, condition in enumerate(conditions, start=1):
        body = (
            f"SELECT DISTINCT * FROM s{i - 1}"
            if condition is None
            else (f"SELECT * FROM s{i - 1} WHERE NOT {condition}")
        )
        ctes.append(f"s{i} AS ({body})")
    return ctes


def count_query(conditions: Sequence[str | None], source: str) -> str:
    """One row: rows in the input, then rows dropped by each rule in turn."""
    if all(c is not None for c in conditions):  # one pass: rule i drops what no earlier rule dropped
        sums, earlier = [], "FALSE"
        for condition in conditions:
            sums.append(f"SUM(CASE WHEN NOT ({earlier}) AND {condition} THEN 1 ELSE 0 END)")
            earlier = f"{earlier} OR {condition}"
        return f"SELECT COUNT(*){''.join(', ' + s for s in sums)} FROM {source}"
    ctes = _stages(conditions, source)
    counts = ", ".join(f"(SELECT COUNT(*) FROM s{i})" for i in range(len(conditions) + 1))
    return f"WITH {', '.join(ctes)} SELECT {counts}"


def dropped_per_rule(row: Sequence[Any], conditions: Sequence[str | None]) -> tuple[int, list[int]]:
    """Turn :func:`count_query`'s row into (input rows, dropped per rule)."""
    values = [int(v or 0) for v in row]
    if all(c is not None for c in conditions):
        return values[0], values[1:]
    return values[0], [values[i] - values[i + 1] for i in range(len(conditions))]


def kept_query(spec: BatchSpec, conditions: Sequence[str | None], source: str, engine: str) -> str:
    """The rows left after every drop rule, with only the columns the spec uses."""
    columns = ", ".join(quote(c, engine) for c in spec.used_columns())
    if not conditions:
        return f"SELECT {columns} FROM {source}"
    query = f"WITH {', '.join(_stages(conditions, source))} SELECT {columns} FROM s{len(conditions)}"
    if engine == "local" and any(c is None for c in conditions):
        # DISTINCT loses the file order; sort so that the local engine writes the same files on every run
        query += " ORDER BY ALL"
    return query


# -- statistics ----------------------------------------------------------------------------------------------


def prepare_train(
    batch: pa.RecordBatch, transform: TransformLike, tokenizer: Tokenizer, spec: BatchSpec
) -> pa.RecordBatch:
    """The train rows of ``batch`` as :meth:`Transform.prepare` columns, plus ``__label`` as text."""
    codes = _codes(batch, spec)
    train = batch.filter(pa.array(codes == 0))
    prepared = transform.prepare(train, tokenizer)
    if spec.label is not None:
        label = enc.category_keys(train.column(spec.label))
        prepared = prepared.append_column("__label", label)
    return prepared


def _codes(batch: pa.RecordBatch, spec: BatchSpec) -> np.ndarray:
    split = spec.split
    return enc.split_codes(batch.column(spec.id), train=split.train, valid=split.valid, seed=split.seed)


def _quantiles(column: str, bins: int, engine: str) -> str:
    probabilities = ", ".join(repr(j / bins) for j in range(1, bins))
    if engine == "spark":
        return f"percentile({column}, array({probabilities}))"
    return f"quantile_cont({column}, [{probabilities}])"


Quantiles = Callable[[str, list[float], int], list[float]]


def interpolate(sorted_values: Mapping[int, float], probabilities: Sequence[float], count: int) -> list[float]:
    """Exact quantiles by linear interpolation at position ``p * (count - 1)`` (DuckDB's ``quantile_cont``),
    from the values at the ranks around each position (``sorted_values[rank]``, ranks from 0)."""
    out = []
    for p in probabilities:
        position = p * (count - 1)
        low = math.floor(position)
        high = math.ceil(position)
        lo, hi = sorted_values[low], sorted_values[high]
        out.append(lo if high == low else lo + (hi - lo) * (position - low))
    return out


def ranks_needed(probabilities: Sequence[float], count: int) -> set[int]:
    """The 0-based ranks :func:`interpolate` reads."""
    return {r for p in probabilities for r in (math.floor(p * (count - 1)), math.ceil(p * (count - 1)))}


def collect_statistics(
    run: Run, transform: TransformLike, table: str, engine: str, label: bool, quantiles: Quantiles | None = None
) -> dict[str, Any]:
    """Run the statistics queries over the prepared table and gather what :meth:`Transform.fit_statistics` needs.

    Also returns ``label_classes`` and ``label_example`` (distinct labels in the train split) when ``label``.
    ``quantiles(column, probabilities, count)``, when given, computes bucket edges instead of the SQL
    aggregate (Spark's exact ``percentile`` keeps every distinct value in memory, which does not scale).
    """
    items = transform.feature_items()
    selects = ["COUNT(*)"] + (["COUNT(DISTINCT __label)", "MIN(__label)"] if label else [])
    numeric_slots: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.numeric is None:
            continue
        c = f"n{i}"
        numeric_slots[str(i)] = len(selects)
        selects += [f"COUNT({c})", f"AVG({c})", f"STDDEV_POP({c})", f"MIN({c})", f"MAX({c})"]
        bucketize = item.numeric.bucketize
        in_sql = bucketize is not None and bucketize.bins is not None and quantiles is None
        selects.append(_quantiles(c, bucketize.bins, engine) if in_sql and bucketize and bucketize.bins else "NULL")
    row = run(f"SELECT {', '.join(selects)} FROM {table}")[0]
    stats: dict[str, Any] = {"rows": int(row[0]), "numeric": {}, "counts": {}, "df": {}}
    if label:
        stats["label_classes"], stats["label_example"] = int(row[1]), row[2]
    for key, at in numeric_slots.items():
        count, mean, std, low, high, edges = row[at : at + 6]
        bucketize = items[int(key)].numeric.bucketize  # type: ignore[union-attr]
        if quantiles is not None and bucketize is not None and bucketize.bins and count:
            probabilities = [j / bucketize.bins for j in range(1, bucketize.bins)]
            edges = quantiles(f"n{key}", probabilities, int(count))
        stats["numeric"][key] = {
            "count": int(count),
            "mean": _float(mean),
            "std": _float(std),
            "min": _float(low),
            "max": _float(high),
            "quantiles": [float(q) for q in edges] if edges is not None else None,
        }
    explode = "explode" if engine == "spark" else "unnest"
    for i, item in enumerate(items):
        if item.categorical is not None and item.categorical.encoding != "hash":
            c, k = f"c{i}", item.categorical.top_k or (DEFAULT_TOP_K if item.categorical.encoding == "onehot" else None)
            limit = f" LIMIT {k}" if k else ""
            sql = (
                f"SELECT {c}, COUNT(*) AS n FROM {table} WHERE {c} IS NOT NULL GROUP BY {c} ORDER BY n DESC, {c}{limit}"
            )
            stats["counts"][str(i)] = [[str(k_), int(n)] for k_, n in run(sql)]
        elif item.text is not None and item.text.encoding == "tfidf":
            text = item.text
            sql = (
                f"SELECT tok, COUNT(*) AS n FROM (SELECT {explode}(t{i}) AS tok FROM {table}) x GROUP BY tok "
                f"HAVING COUNT(*) >= {text.min_df} ORDER BY n DESC, tok LIMIT {text.max_features}"
            )
            stats["df"][str(i)] = [[str(t), int(n)] for t, n in run(sql)]
    stats["impute"] = impute_statistics(run, items, table, engine, quantiles)
    return stats


def _fill_statistic(run: Run, column: str, strategy: str, table: str, engine: str, quantiles: Quantiles | None) -> Any:
    """The train split's ``mean``, exact ``median`` or ``most_frequent`` (smallest on ties) value of a prepared
    column, ignoring nulls; None when it holds no value."""
    if strategy == "most_frequent":
        rows = run(
            f"SELECT {column}, COUNT(*) AS n FROM {table} WHERE {column} IS NOT NULL "
            f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT 1"
        )
        return rows[0][0] if rows else None
    if strategy == "mean":
        return _float(run(f"SELECT AVG({column}) FROM {table}")[0][0])
    if quantiles is None:
        median = "percentile" if engine == "spark" else "quantile_cont"
        return _float(run(f"SELECT {median}({column}, 0.5) FROM {table}")[0][0])
    count = int(run(f"SELECT COUNT({column}) FROM {table}")[0][0] or 0)
    return float(quantiles(column, [0.5], count)[0]) if count else None


def impute_statistics(
    run: Run, items: Sequence[Any], table: str, engine: str, quantiles: Quantiles | None = None
) -> dict[str, Any]:
    """The fill value of every feature with ``impute`` by a statistic, by feature position: a float for numeric
    features (over the raw values ``r{i}``), a category's text for categorical ones (over ``c{i}``)."""
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        body = item.body
        strategy = getattr(body, "impute", None)
        if strategy is None or strategy == "constant":
            continue
        column = f"r{i}" if item.numeric is not None else f"c{i}"
        value = _fill_statistic(run, column, strategy, table, engine, quantiles)
        out[str(i)] = None if value is None else (float(value) if item.numeric is not None else str(value))
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def duckdb_statistics(
    transform: TransformLike, prepared: Iterable[pa.RecordBatch] | pa.RecordBatchReader, label: bool | None
) -> dict[str, Any]:
    """:func:`collect_statistics` with DuckDB over prepared batches (an in-memory table, spilling if needed)."""
    from aiforge.engines.local import connect_duckdb

    if isinstance(prepared, pa.RecordBatchReader):
        source: Any = prepared
    else:
        batches = list(prepared)
        source = pa.Table.from_batches(batches) if batches else pa.table({})
    con = connect_duckdb()
    try:
        con.register("prep_source", source)
        con.execute("CREATE TABLE prep AS SELECT * FROM prep_source")
        con.unregister("prep_source")
        return collect_statistics(lambda sql: con.execute(sql).fetchall(), transform, "prep", "local", bool(label))
    finally:
        con.close()


# -- output --------------------------------------------------------------------------------------------------


def output_schema(types: Mapping[str, pa.DataType], spec: BatchSpec, width: int, fixed: bool = True) -> pa.Schema:
    """id, split, label (when the spec has one) and features: list<float32> of ``width`` (fixed-size)."""
    features = pa.list_(pa.float32(), width) if fixed else pa.list_(pa.float32())
    fields = [pa.field("id", types[spec.id]), pa.field("split", pa.string())]
    if spec.label is not None:
        fields.append(pa.field("label", types[spec.label]))
    fields.append(pa.field("features", features))
    return pa.schema(fields)


def output_batch(
    batch: pa.RecordBatch, transform: TransformLike, tokenizer: Tokenizer, spec: BatchSpec, schema: pa.Schema
) -> pa.RecordBatch:
    """The feature rows of ``batch`` in ``schema`` (from :func:`output_schema`)."""
    features = transform.transform(batch, tokenizer)
    flat = pa.array(features.reshape(-1), pa.float32())
    feature_type = schema.field("features").type
    if pa.types.is_fixed_size_list(feature_type):
        vectors: pa.Array = pa.FixedSizeListArray.from_arrays(flat, features.shape[1])
    else:
        offsets = pa.array(np.arange(batch.num_rows + 1, dtype=np.int32) * features.shape[1])
        vectors = pa.ListArray.from_arrays(offsets, flat)
    split = pa.array(np.asarray(enc.SPLITS, dtype=object)[_codes(batch, spec)], pa.string())
    arrays = [pc.cast(batch.column(spec.id), schema.field("id").type), split]
    if spec.label is not None:
        arrays.append(pc.cast(batch.column(spec.label), schema.field("label").type))
    arrays.append(vectors)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
