"""Where ANALYZE gets its rows: resolve the input, read exact figures cheaply, and draw a reproducible sample.

Exact figures (row count, missing, min/max) come from Parquet row-group statistics when the files carry them,
from
one DuckDB pass over the affected columns when they do not, and from one vectorised pass over in-memory
tables. The
sample is a block sample for Parquet: a seeded choice of row groups, then seeded random rows inside each
chosen group,
so only a few row groups are ever decoded. Block sampling is only as good as the blocks are alike, so
:func:`clustering_warnings` flags columns whose values differ between blocks much more than within them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aiforge.engines.sources import expand_user, parse_files, redact
from aiforge.errors import EmptyResult, InvalidInput, SourceError

__all__ = ["Source", "clustering_warnings", "draw_sample", "exact_figures", "open_source"]

# Roughly how many rows the block sampler may decode: enough blocks to spread the sample, few enough to stay
# fast.
_READ_BUDGET_ROWS = 4_000_000
_MIN_BLOCKS = 8
_STAT_TYPES = (pa.types.is_integer, pa.types.is_floating, pa.types.is_temporal, pa.types.is_boolean)


@dataclass
class Source:
    """The data to analyze: either Parquet files (read lazily) or an in-memory Arrow table."""

    subject: str
    schema: pa.Schema
    rows: int
    files: list[str] = field(default_factory=list)
    table: pa.Table | None = None
    # (file index, row-group index, rows) for every row group, in file order
    blocks: list[tuple[int, int, int]] = field(default_factory=list)


def _looks_like_files(data: str) -> bool:
    """A string names files (not a snapshot) when it exists on disk or has a path separator, glob or file suffix."""
    return (
        expand_user(data).exists()
        or any(ch in data for ch in "/\\*?[")
        or Path(data).suffix.lower() in (".parquet", ".pq", ".parq", ".csv", ".tsv", ".txt", ".gz", ".json")
    )


def open_source(data: Any, workspace: Any = None) -> Source:
    """Resolve what the user passed (snapshot ref, Snapshot, path/glob, Arrow table, DataFrame) to a
    :class:`Source`.
    """
    from aiforge.workspace import Snapshot, Workspace

    if isinstance(data, pa.Table):
        return _from_table(data, "table")
    if type(data).__name__ == "DataFrame" and hasattr(data, "columns"):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"cannot convert the DataFrame to Arrow: {exc}") from exc
        return _from_table(table, "dataframe")
    if isinstance(data, Snapshot):
        return _from_parquet([str(f) for f in data.files], data.ref)
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if not isinstance(data, str):
        raise InvalidInput(
            f"cannot analyze an object of type {type(data).__name__}: pass a snapshot reference (NAME "
            "or NAME@vN), "
            "a Snapshot, a Parquet/CSV path or glob, a pyarrow.Table or a pandas DataFrame"
        )
    if "://" in data:
        raise InvalidInput(
            f"analyze reads snapshots and Parquet/CSV files, not {redact(data)!r}; "
            "dump the query into a snapshot first with `aiforge dump`, then analyze the snapshot"
        )
    if _looks_like_files(data):
        found = parse_files(data, hint=" or a snapshot NAME@vN")  # the same rules and errors as DUMP
        files = list(found.paths)
        subject = Path(data).name if len(files) == 1 else Path(data).name.replace("*", "all")
        return _from_csv(files, subject) if found.format == "csv" else _from_parquet(files, subject)
    snapshot = (workspace or Workspace()).get_snapshot(data)
    return _from_parquet([str(f) for f in snapshot.files], snapshot.ref)


def _from_table(table: pa.Table, subject: str) -> Source:
    if table.num_rows == 0:
        raise EmptyResult(f"the {subject} has no rows; there is nothing to analyze")
    if table.num_columns == 0:
        raise EmptyResult(f"the {subject} has no columns; there is nothing to analyze")
    return Source(subject, table.schema, table.num_rows, table=table)


def _from_csv(files: list[str], subject: str) -> Source:
    from aiforge.engines.csv_reader import read_csv

    # the same reader as DUMP: a line that does not match the header is an error naming the file and the line
    return _from_table(read_csv(files), f"CSV file {subject}")


def _from_parquet(files: list[str], subject: str) -> Source:
    if not files:
        raise EmptyResult(f"{subject} has no data files; there is nothing to analyze")
    schema: pa.Schema | None = None
    blocks: list[tuple[int, int, int]] = []
    for index, path in enumerate(files):
        try:
            meta = pq.ParquetFile(path).metadata
            file_schema = meta.schema.to_arrow_schema()
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read Parquet file {path}: {exc}; is it a valid Parquet file?") from exc
        if schema is None:
            schema = file_schema
        elif file_schema.names != schema.names:
            raise SourceError(f"Parquet file {path} has columns {file_schema.names}, unlike {schema.names}")
        blocks += [(index, rg, meta.row_group(rg).num_rows) for rg in range(meta.num_row_groups)]
    rows = sum(b[2] for b in blocks)
    if rows == 0 or schema is None:
        raise EmptyResult(f"{subject} has no rows; there is nothing to analyze")
    return Source(subject, schema, rows, files=files, blocks=[b for b in blocks if b[2] > 0])


# -- exact figures
# ---------------------------------------------------------------------------------------------------


def exact_figures(source: Source) -> dict[str, dict[str, Any]]:
    """Exact ``missing``/``min``/``max`` per column that one cheap pass gives (min/max for numbers, times,
    booleans).

    Parquet: row-group statistics; columns whose statistics are absent get one DuckDB pass. Tables: pyarrow
    compute.
    """
    if source.table is not None:
        out: dict[str, dict[str, Any]] = {}
        for name in source.schema.names:
            column = source.table.column(name)
            entry: dict[str, Any] = {"missing": column.null_count}
            if _has_stats(column.type):
                entry.update(_min_max(column))
            out[name] = entry
        return out
    return _parquet_figures(source)


def _has_stats(dtype: pa.DataType) -> bool:
    return any(check(dtype) for check in _STAT_TYPES) and not pa.types.is_interval(dtype)


def _min_max(column: pa.ChunkedArray) -> dict[str, Any]:
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    result = pc.min_max(column)
    return {"min": result["min"].as_py(), "max": result["max"].as_py()}


def _parquet_figures(source: Source) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {name: {"missing": 0} for name in source.schema.names}
    lows: dict[str, list[Any]] = {name: [] for name in source.schema.names}
    highs: dict[str, list[Any]] = {name: [] for name in source.schema.names}
    need_pass: set[str] = set()
    for index, path in enumerate(source.files):
        meta = pq.ParquetFile(path).metadata
        positions = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for name in source.schema.names:
                dtype = source.schema.field(name).type
                stats = group.column(positions[name]).statistics if name in positions else None
                if stats is None or not stats.has_null_count:
                    need_pass.add(name)
                    continue
                figures[name]["missing"] += stats.null_count
                if not _has_stats(dtype) or stats.null_count == group.num_rows:
                    continue
                if not stats.has_min_max:
                    need_pass.add(name)
                    continue
                lows[name].append(stats.min)
                highs[name].append(stats.max)
        del index
    for name in source.schema.names:
        if _has_stats(source.schema.field(name).type) and name not in need_pass:
            figures[name]["min"] = min(lows[name]) if lows[name] else None
            figures[name]["max"] = max(highs[name]) if highs[name] else None
        figures[name]["_lows"], figures[name]["_highs"] = lows[name], highs[name]
    if need_pass:  # keep the per-block bounds that exist: they still show clustering
        for name, entry in _duckdb_pass(source, sorted(need_pass)).items():
            figures[name].update(entry)
    return figures


def _duckdb_pass(source: Source, names: list[str]) -> dict[str, dict[str, Any]]:
    import duckdb

    from aiforge.engines.local import connect_duckdb

    parts: list[str] = []
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        dtype = source.schema.field(name).type
        parts.append(f"count(*) - count({quoted})")
        if _has_stats(dtype):
            value = (
                f"CASE WHEN isnan({quoted}) THEN NULL ELSE {quoted} END"
                if pa.types.is_floating(dtype)
                else quoted
            )
            parts += [f"min({value})", f"max({value})"]
    try:
        row = (
            connect_duckdb()
            .execute(f"SELECT {', '.join(parts)} FROM read_parquet(?)", [source.files])
            .fetchone()
        )
    except duckdb.Error as exc:
        raise SourceError(f"cannot scan {source.subject}: {exc}") from exc
    values = list(row or [])
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        entry: dict[str, Any] = {"missing": int(values.pop(0))}
        if _has_stats(source.schema.field(name).type):
            entry["min"], entry["max"] = values.pop(0), values.pop(0)
        out[name] = entry
    return out


# -- sampling
# --------------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """The rows the estimated figures come from; ``block`` says which block each row came from."""

    table: pa.Table
    exact: bool
    method: str
    seed: int
    block: np.ndarray
    blocks_read: int
    blocks_total: int
    row_numbers: np.ndarray | None = None  # each row's 0-based position in the data (files in order); None = 0..n-1

    def positions(self) -> np.ndarray:
        """Each sampled row's 0-based row number in the whole data (its files in order)."""
        if self.row_numbers is None:
            return np.arange(self.table.num_rows, dtype=np.int64)
        return self.row_numbers


def draw_sample(source: Source, sample_rows: int, seed: int, exact: bool) -> Sample:
    """Every row when ``exact`` or when the data has at most ``sample_rows`` rows; else a seeded sample.

    Examples
    --------
    >>> import pyarrow as pa
    >>> s = draw_sample(open_source(pa.table({"x": list(range(10))})), 4, seed=0, exact=False)
    >>> s.table.num_rows, s.exact
    (4, False)
    """
    if sample_rows < 1:
        raise InvalidInput(f"sample_rows must be a positive number of rows, got {sample_rows}")
    rng = np.random.default_rng(seed)
    if exact or source.rows <= sample_rows:
        if source.table is not None:
            table = source.table
        else:
            try:
                table = pq.ParquetDataset(source.files).read(use_threads=True)
            except (OSError, pa.ArrowException) as exc:
                raise SourceError(f"cannot read {source.subject}: {exc}") from exc
        return Sample(table, True, "all rows", seed, np.zeros(table.num_rows, dtype=np.int32), 1, 1)
    if source.table is not None:
        rows = np.sort(rng.choice(source.rows, size=sample_rows, replace=False))
        table = source.table.take(pa.array(rows))
        return Sample(table, False, "uniform random rows", seed, np.zeros(sample_rows, dtype=np.int32), 1, 1,
                      rows.astype(np.int64))
    return _block_sample(source, sample_rows, rng, seed)


def _block_sample(source: Source, sample_rows: int, rng: np.random.Generator, seed: int) -> Sample:
    sizes = np.array([b[2] for b in source.blocks], dtype=np.int64)
    average = float(sizes.mean())
    wanted = max(_MIN_BLOCKS, math.ceil(sample_rows / average), int(_READ_BUDGET_ROWS // average))
    chosen = np.sort(rng.permutation(len(sizes))[: min(len(sizes), wanted)])
    chosen_sizes = sizes[chosen]
    if (
        chosen_sizes.sum() < sample_rows
    ):  # a few huge blocks and many tiny ones; add blocks until there are enough
        order = rng.permutation(len(sizes))
        extra = [i for i in order if i not in set(chosen.tolist())]
        cumulative = np.cumsum(sizes[extra]) + chosen_sizes.sum()
        chosen = np.sort(np.concatenate([chosen, extra[: int(np.searchsorted(cumulative, sample_rows)) + 1]]))
        chosen_sizes = sizes[chosen]
    # rows per block in proportion to block size (largest remainder), never more than the block holds
    quota = chosen_sizes / chosen_sizes.sum() * sample_rows
    take = np.minimum(np.floor(quota).astype(np.int64), chosen_sizes)
    for i in np.argsort(-(quota - take), kind="stable")[: sample_rows - int(take.sum())]:
        take[i] += 1
    pieces: list[pa.Table] = []
    block_ids: list[np.ndarray] = []
    numbers: list[np.ndarray] = []
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # the first row number of every block
    picks = [
        (
            position,
            *source.blocks[block],
            np.sort(rng.choice(source.blocks[block][2], size=count, replace=False)),
        )
        for position, (block, count) in enumerate(zip(chosen.tolist(), take.tolist(), strict=True))
    ]
    for file_index in sorted({p[1] for p in picks}):
        mine = [p for p in picks if p[1] == file_index]
        try:
            data = pq.ParquetFile(source.files[file_index]).read_row_groups(
                [p[2] for p in mine], use_threads=True
            )
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read Parquet file {source.files[file_index]}: {exc}") from exc
        offsets = np.concatenate([[0], np.cumsum([p[3] for p in mine])[:-1]])
        rows = np.concatenate([p[4] + offset for p, offset in zip(mine, offsets, strict=True)])
        pieces.append(data.take(pa.array(rows)))
        block_ids += [np.full(len(p[4]), p[0], dtype=np.int32) for p in mine]
        numbers += [starts[chosen[p[0]]] + p[4] for p in mine]
    table = pa.concat_tables(pieces).combine_chunks()
    return Sample(
        table,
        False,
        "row-group blocks, random rows within",
        seed,
        np.concatenate(block_ids),
        len(chosen),
        len(sizes),
        np.concatenate(numbers).astype(np.int64),
    )


def clustering_warnings(
    source: Source, figures: dict[str, dict[str, Any]], sample: Sample
) -> list[dict[str, Any]]:
    """Columns whose blocks look unlike each other, so block-sampled figures may be off.

    Two signals: per-block min/max ranges from Parquet metadata that are narrow compared with the whole range
    (sorted or clustered data), and between-block variance that dominates within-block variance in the sample
    (eta squared of block membership).
    """
    if sample.exact or sample.blocks_read < 2:
        return []
    warnings: list[dict[str, Any]] = []
    for name in source.schema.names:
        dtype = source.schema.field(name).type
        if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_temporal(dtype)):
            continue
        if pa.types.is_interval(dtype):  # months, days and nanoseconds: no one number to compare
            continue
        reason = _metadata_clustered(figures.get(name, {}))
        if reason is None:
            reason = _sample_clustered(sample.table.column(name), sample.block)
        if reason:
            warnings.append({"column": name, "reason": reason})
    return warnings


def _numeric(values: list[Any]) -> np.ndarray | None:
    try:
        array = pa.array(values)
        if pa.types.is_temporal(array.type):
            array = array.cast(pa.int64()) if not pa.types.is_date(array.type) else array.cast(pa.int32())
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowException, TypeError, ValueError):
        return None


def _metadata_clustered(entry: dict[str, Any]) -> str | None:
    lows, highs = entry.get("_lows") or [], entry.get("_highs") or []
    if len(lows) < 3 or len(lows) != len(highs):
        return None
    low, high = _numeric(lows), _numeric(highs)
    if low is None or high is None:
        return None
    span = float(high.max() - low.min())
    if not np.isfinite(span) or span <= 0:
        return None
    share = float(np.median(high - low)) / span
    if share < 0.5:
        ordered = bool(np.all(np.diff(low) >= 0) and np.all(np.diff(high) >= 0))
        what = "sorted across row groups" if ordered else "clustered by row group"
        return f"{what}: a typical row group spans {share:.1%} of the column's range (Parquet metadata)"
    return None


def _sample_clustered(column: pa.ChunkedArray, block: np.ndarray) -> str | None:
    if pa.types.is_temporal(column.type):
        column = column.cast(pa.int64()) if not pa.types.is_date(column.type) else column.cast(pa.int32())
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    keep = np.isfinite(values)
    values, groups = values[keep], block[keep]
    if values.size < 10:
        return None
    total = float(((values - values.mean()) ** 2).sum())
    if total <= 0:
        return None
    counts = np.bincount(groups)
    sums = np.bincount(groups, weights=values)
    present = counts > 0
    means = sums[present] / counts[present]
    between = float((counts[present] * (means - values.mean()) ** 2).sum())
    eta2 = between / total
    if eta2 > 0.2:
        return f"block means differ: {eta2:.0%} of the variance lies between sampled row groups (sample)"
    return None
