"""The Spark BATCH engine: Spark SQL runs the drop rules and the statistics, ``mapInArrow`` runs the transform.

The Python that runs in each partition (the split, the prepared values, the feature rows, the NLP API calls)
is the same as the local engine's (:mod:`aiforge.batch._plan`), so both engines give the same rows.
Spark writes the feature rows as Parquet; the driver then rewrites them into ``part-NNNNN.parquet`` files with
the snapshot's exact schema (features as a fixed-size list), one streaming pass with bounded memory.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aiforge.batch import _plan as plan
from aiforge.batch.spec import BatchSpec
from aiforge.batch.transform import Transform
from aiforge.errors import AiforgeError, ColumnNotFound, InvalidInput, ServiceError, SourceError
from aiforge.workspace.writer import PartWriter

__all__ = ["SparkRunner"]

_ERRORS: list[tuple[str, type[AiforgeError]]] = [
    ("ServiceError", ServiceError),
    ("ColumnNotFound", ColumnNotFound),
    ("InvalidInput", InvalidInput),
]


def _session(master: str | None, home: Path) -> Any:
    from aiforge.engines.spark import get_session

    spark = get_session(master, home=home)
    context = spark.sparkContext
    # Workers must run the interpreter that has aiforge; on a cluster PYSPARK_PYTHON says which one.
    if not os.environ.get("PYSPARK_PYTHON") and str(context.master).startswith("local"):
        context.pythonExec = sys.executable
    return spark


def _failure(exc: BaseException, what: str) -> AiforgeError:
    """The aiforge error raised inside a Python worker, or a SourceError with Spark's first line."""
    text = str(exc)
    for name, kind in _ERRORS:
        match = re.search(rf"(?:aiforge\.errors\.)?{name}: (.+)", text)
        if match:
            return kind(match[1].strip())
    from aiforge.engines.spark import failure_text

    return SourceError(f"Spark failed while {what}: {failure_text(exc)}")


def _drop_failure(exc: BaseException, spec: BatchSpec, types: dict[str, str]) -> AiforgeError:
    """A failure while counting the drops. Spark casts a text column compared with a number (``amount < 0``) row by
    row, so where DuckDB refuses the rule before it runs, Spark fails on the first value that is not an integer:
    that is the rule's error, with the same advice as on the local engine."""
    text = str(exc)
    if re.search(r"CAST_INVALID_INPUT|NumberFormatException", text):
        rules = [(i, rule.where) for i, rule in enumerate(spec.drop) if rule.where is not None]
        # the rule Spark quotes in its SQL fragment, else the first one that compares a text column with a number
        rules.sort(key=lambda item: item[1] not in text)
        for i, where in rules:
            if plan.text_compared_with_numbers(where, types):
                from aiforge.engines.spark import failure_text, first_line, log_path

                failure_text(exc)  # the full error goes to the log
                message = re.split(r"(?<=\.)\s", first_line(exc), maxsplit=1)[0].rstrip(".")
                if log_path() is not None:
                    message += f" (Spark's full error is in {log_path()})"
                return plan.predicate_error(i, where, message, types)
    return _failure(exc, "counting the rows each drop rule removes")


def _prepare_partition(
    batches: Iterator[pa.RecordBatch], transform: Transform, spec: BatchSpec, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    tokenizer = transform.tokenizer()  # one NLP client per partition, its cache shared by the partition's batches
    try:
        for batch in batches:
            yield plan.prepare_train(batch, transform, tokenizer, spec).cast(schema)
    finally:
        transform.close()


def _apply_partition(
    batches: Iterator[pa.RecordBatch], transform: Transform, spec: BatchSpec, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    tokenizer = transform.tokenizer()
    try:
        for batch in batches:
            yield plan.output_batch(batch, transform, tokenizer, spec, schema)
    finally:
        transform.close()


def _exact_quantiles(frame: Any, column: str, probabilities: list[float], count: int) -> list[float]:
    """Exact quantiles of a column by a distributed sort (spills to disk) and the ranks around each position."""
    wanted = plan.ranks_needed(probabilities, count)
    values = (
        frame.where(frame[column].isNotNull())
        .select(column)
        .orderBy(column)
        .rdd.zipWithIndex()
        .filter(lambda pair: pair[1] in wanted)
        .map(lambda pair: (pair[1], pair[0][0]))
        .collect()
    )
    return plan.interpolate(dict(values), probabilities, count)


class SparkRunner:
    """A BATCH job on Spark (a :class:`~aiforge.batch._plan.Runner`): Spark SQL for the drops and statistics,
    ``mapInArrow`` for the rows."""

    def __init__(
        self,
        spec: BatchSpec,
        transform: Transform,
        files: list[Path],
        types: dict[str, pa.DataType],
        *,
        master: str,
        home: Path,
    ) -> None:
        self.spec, self.transform, self.types = spec, transform, types
        self.spark = _session(master, home)
        self.view = f"aiforge_batch_{uuid.uuid4().hex[:12]}"
        self.kept: Any = None
        try:
            self.spark.read.parquet(*[str(f) for f in files]).createOrReplaceTempView(self.view)
        except Exception as exc:
            from aiforge.engines.spark import failure_text

            raise SourceError(f"Spark cannot read the snapshot files: {failure_text(exc)}") from exc

    def scan(self, show: bool = False) -> plan.Scan:
        """Count the drops and fit the statistics with Spark SQL."""
        from pyspark.sql.pandas.types import from_arrow_schema

        spec, transform, types, spark, view = self.spec, self.transform, self.types, self.spark, self.view
        type_names = {name: str(kind) for name, kind in types.items()}
        conditions = plan.drop_conditions(spec, type_names, "spark")
        plan.check_predicates(lambda sql: spark.sql(sql).collect(), spec, conditions, view, type_names)
        try:
            row = spark.sql(plan.count_query(conditions, view)).collect()[0]
        except Exception as exc:
            raise _drop_failure(exc, spec, type_names) from exc
        try:
            rows_in, dropped = plan.dropped_per_rule(tuple(row), conditions)
            self.kept = spark.sql(plan.kept_query(spec, conditions, view, "spark"))
            empty = pa.RecordBatch.from_pylist([], schema=pa.schema([(n, types[n]) for n in spec.used_columns()]))
            prep_schema = plan.prepare_train(empty, transform, transform.tokenizer(), spec).schema
            prepare = functools.partial(_prepare_partition, transform=transform, spec=spec, schema=prep_schema)
            prepared = self.kept.mapInArrow(prepare, from_arrow_schema(prep_schema)).persist()
            prep_view = f"{view}_prep"
            prepared.createOrReplaceTempView(prep_view)
            try:
                stats = plan.collect_statistics(
                    lambda sql: [tuple(r) for r in spark.sql(sql).collect()],
                    transform,
                    prep_view,
                    "spark",
                    spec.label is not None,
                    quantiles=functools.partial(_exact_quantiles, prepared),
                )
            finally:
                prepared.unpersist()
                spark.catalog.dropTempView(prep_view)
        except AiforgeError:
            raise
        except Exception as exc:
            raise _failure(exc, "fitting the statistics") from exc
        return plan.Scan(rows_in, dropped, stats)

    def write(self, schema: pa.Schema, staged: Path, show: bool = False) -> dict[str, int]:
        """Transform the kept rows in Spark and rewrite Spark's files as the snapshot's part files."""
        from pyspark.sql.pandas.types import from_arrow_schema

        spec = self.spec
        key_types = {spec.id: schema.field("id").type}
        if spec.label is not None:
            key_types[spec.label] = schema.field("label").type
        width = schema.field("features").type.list_size
        spark_schema = plan.output_schema(key_types, spec, width, fixed=False)
        apply = functools.partial(_apply_partition, transform=self.transform, spec=spec, schema=spark_schema)
        out = staged / "spark-out"
        try:
            self.kept.mapInArrow(apply, from_arrow_schema(spark_schema)).write.mode("error").parquet(
                str(out), compression="zstd"
            )
        except Exception as exc:
            raise _failure(exc, "transforming the rows") from exc
        try:
            return _rewrite_parts(out, schema, staged)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def close(self) -> None:
        self.spark.catalog.dropTempView(self.view)


def _rewrite_parts(out: Path, schema: pa.Schema, staged: Path) -> dict[str, int]:
    """Spark's Parquet files as the snapshot's part files (features as a fixed-size list); rows per split."""
    width = schema.field("features").type.list_size
    splits = dict.fromkeys(("train", "valid", "test"), 0)
    writer = PartWriter(staged, schema)
    try:
        for part in sorted(out.glob("part-*.parquet")):
            for batch in pq.ParquetFile(part).iter_batches(batch_size=131_072):
                features = batch.column("features")
                flat = features.flatten() if len(features) else pa.array([], pa.float32())
                arrays = [batch.column(name).cast(schema.field(name).type) for name in schema.names[:-1]]
                arrays.append(pa.FixedSizeListArray.from_arrays(flat.cast(pa.float32()), width))
                fixed = pa.RecordBatch.from_arrays(arrays, schema=schema)
                counts = fixed.column(1).value_counts()
                for name, count in zip(
                    counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
                ):
                    splits[name] += count
                writer.write(fixed)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return splits
