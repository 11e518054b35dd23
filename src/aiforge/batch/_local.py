"""The local BATCH engine: DuckDB runs the drop rules and the statistics, numpy transforms Arrow batches.

Three streaming passes over the snapshot's Parquet files: count what each drop rule removes (one aggregate),
fit the statistics on the train split (prepared batches go into a DuckDB table, which spills to disk when it
does not fit in memory), and transform the kept rows batch by batch into Parquet part files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from aiforge._progress import progress as progress_bar
from aiforge.batch import _plan as plan
from aiforge.batch.spec import BatchSpec
from aiforge.batch.transform import Transform
from aiforge.errors import InvalidInput, QueryError
from aiforge.workspace.writer import PartWriter

__all__ = ["run_local"]

BATCH_ROWS = 131_072


def _connect(spill: Path, files: list[Path]) -> Any:
    from aiforge.engines.local import connect_duckdb

    spill.mkdir(parents=True, exist_ok=True)
    con = connect_duckdb(memory_limit="2GB", temp_dir=spill)
    paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE VIEW source AS SELECT * FROM read_parquet([{paths}])")
    return con


def check_predicates(run_check: Any, spec: BatchSpec, conditions: list[str | None], source: str) -> None:
    """Evaluate each ``where`` rule on no rows, so a bad one is reported with its position in ``drop``."""
    for i, (rule, condition) in enumerate(zip(spec.drop, conditions, strict=True)):
        if rule.where is None or condition is None:
            continue
        try:
            run_check(f"SELECT COUNT(*) FROM (SELECT * FROM {source} LIMIT 0) x WHERE {condition}")
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(
                f"drop[{i}].where: cannot evaluate {rule.where!r} on the snapshot: {message}; write a SQL "
                "predicate over the snapshot's columns, for example 'amount < 0'"
            ) from exc


def run_local(
    spec: BatchSpec,
    transform: Transform,
    files: list[Path],
    types: dict[str, pa.DataType],
    staged: Path,
    *,
    show: bool = False,
) -> dict[str, Any]:
    """Run the whole BATCH job on the local engine; write the part files under ``staged/data``.

    Returns
    -------
    dict
        ``rows_in``, ``dropped`` (per rule), ``stats`` (the fitted statistics), ``splits`` (rows per split) and
        ``rows`` (rows written).
    """
    import duckdb

    con = _connect(staged / "spill", files)
    try:
        type_names = {name: str(kind) for name, kind in types.items()}
        conditions = plan.drop_conditions(spec, type_names, "duckdb")
        check_predicates(lambda sql: con.execute(sql).fetchall(), spec, conditions, "source")
        try:
            row = con.execute(plan.count_query(conditions, "source")).fetchall()[0]
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0], plan.count_query(conditions, "source")) from exc
        rows_in, dropped = plan.dropped_per_rule(row or (0,), conditions)
        kept_sql = plan.kept_query(spec, conditions, "source", "duckdb")
        tokenizer = transform.tokenizer()

        with progress_bar("batch: fit on train", total=rows_in, enabled=show, unit="rows") as bar:
            failures: list[BaseException] = []

            def prepared() -> Iterator[pa.RecordBatch]:
                try:
                    for batch in con.sql(kept_sql).to_arrow_reader(BATCH_ROWS):
                        bar.advance(batch.num_rows)
                        yield plan.prepare_train(batch, transform, tokenizer, spec)
                except BaseException as exc:  # DuckDB wraps it in its own error; keep ours to raise it as is
                    failures.append(exc)
                    raise

            kept_schema = pa.schema([(name, types[name]) for name in spec.used_columns()])
            empty = pa.RecordBatch.from_pylist([], schema=kept_schema)
            prep_schema = plan.prepare_train(empty, transform, tokenizer, spec).schema
            reader = pa.RecordBatchReader.from_batches(prep_schema, prepared())
            try:
                stats = plan.duckdb_statistics(transform, reader, spec.label is not None)
            except duckdb.Error:
                if failures:
                    raise failures[0] from None
                raise
        kept = rows_in - sum(dropped)
        return {"rows_in": rows_in, "dropped": dropped, "kept": kept, "stats": stats, "kept_sql": kept_sql, "con": con}
    except BaseException:
        con.close()
        raise


def write_local(
    job: dict[str, Any], spec: BatchSpec, transform: Transform, schema: pa.Schema, staged: Path, show: bool
) -> dict[str, int]:
    """Second half of the local job, after the transform is fitted: transform and write the kept rows."""
    con = job["con"]
    splits = dict.fromkeys(("train", "valid", "test"), 0)
    tokenizer = transform.tokenizer()
    writer = PartWriter(staged, schema)
    try:
        with progress_bar("batch: transform", total=job["kept"], enabled=show, unit="rows") as bar:
            for batch in con.sql(job["kept_sql"]).to_arrow_reader(BATCH_ROWS):
                out = plan.output_batch(batch, transform, tokenizer, spec, schema)
                for name, count in zip(*_value_counts(out.column(1)), strict=True):
                    splits[name] += count
                writer.write(out)
                bar.advance(batch.num_rows)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        con.close()
    return splits


def _value_counts(column: pa.Array) -> tuple[list[str], list[int]]:
    counts = column.value_counts()
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
