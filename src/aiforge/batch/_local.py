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

from aiforge.batch import _plan as plan
from aiforge.batch.spec import BatchSpec
from aiforge.batch.transform import Transform
from aiforge.errors import QueryError
from aiforge.progress import progress as progress_bar
from aiforge.workspace.writer import PartWriter

__all__ = ["LocalRunner"]

BATCH_ROWS = 131_072


def _connect(spill: Path, files: list[Path]) -> Any:
    from aiforge.engines.local import connect_duckdb

    spill.mkdir(parents=True, exist_ok=True)
    con = connect_duckdb(memory_limit="2GB", temp_dir=spill)
    paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE VIEW source AS SELECT * FROM read_parquet([{paths}])")
    return con


class LocalRunner:
    """A BATCH job on the local engine (a :class:`~aiforge.batch._plan.Runner`); DuckDB spills under
    ``staged/spill``."""

    def __init__(
        self, spec: BatchSpec, transform: Transform, files: list[Path], types: dict[str, pa.DataType], staged: Path
    ) -> None:
        self.spec, self.transform, self.types = spec, transform, types
        self.con = _connect(staged / "spill", files)
        self.kept_sql = ""
        self.kept = 0

    def scan(self, show: bool = False) -> plan.Scan:
        """Count what each drop rule removes, then fit the statistics on the kept train rows."""
        import duckdb

        spec, transform, types, con = self.spec, self.transform, self.types, self.con
        type_names = {name: str(kind) for name, kind in types.items()}
        conditions = plan.drop_conditions(spec, type_names, "local")
        plan.check_predicates(lambda sql: con.execute(sql).fetchall(), spec, conditions, "source", type_names)
        try:
            row = con.execute(plan.count_query(conditions, "source")).fetchall()[0]
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0], plan.count_query(conditions, "source")) from exc
        rows_in, dropped = plan.dropped_per_rule(row or (0,), conditions)
        self.kept_sql = plan.kept_query(spec, conditions, "source", "local")
        tokenizer = transform.tokenizer()

        with progress_bar("batch: fit on train", total=rows_in, enabled=show, unit="rows") as bar:
            failures: list[BaseException] = []

            def prepared() -> Iterator[pa.RecordBatch]:
                try:
                    for batch in con.sql(self.kept_sql).to_arrow_reader(BATCH_ROWS):
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
        scan = plan.Scan(rows_in, dropped, stats)
        self.kept = scan.kept
        return scan

    def write(self, schema: pa.Schema, staged: Path, show: bool = False) -> dict[str, int]:
        """Transform the kept rows with the fitted transform and write them as part files under ``staged``."""
        splits = dict.fromkeys(("train", "valid", "test"), 0)
        tokenizer = self.transform.tokenizer()
        writer = PartWriter(staged, schema)
        try:
            with progress_bar("batch: transform", total=self.kept, enabled=show, unit="rows") as bar:
                for batch in self.con.sql(self.kept_sql).to_arrow_reader(BATCH_ROWS):
                    out = plan.output_batch(batch, self.transform, tokenizer, self.spec, schema)
                    for name, count in zip(*_value_counts(out.column(1)), strict=True):
                        splits[name] += count
                    writer.write(out)
                    bar.advance(batch.num_rows)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        return splits

    def close(self) -> None:
        self.con.close()


def _value_counts(column: pa.Array) -> tuple[list[str], list[int]]:
    counts = column.value_counts()
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
