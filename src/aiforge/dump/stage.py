"""DUMP as a stage: its spec, and the run that turns one into a snapshot."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from aiforge.stages import Cli, EngineChoice, SparkMaster, Stage, StageSpec, calls

__all__ = ["STAGE", "DumpSpec"]


class DumpSpec(StageSpec):
    """What to dump and where it goes (see :func:`aiforge.dump.dump` for every field's meaning)."""

    source: Annotated[
        str,
        Field(
            description="postgresql://, mysql://, sqlite:///, duckdb:/// URL; a Parquet/CSV path or glob; or 'spark' "
            "(the Spark/Hive catalog, with --engine spark)."
        ),
        Cli(argument=True),
    ]
    name: Annotated[str, Field(description="Snapshot name; each dump adds version NAME@vN."), Cli(("--name", "-n"))]
    query: Annotated[
        str | None,
        Field(description="SQL to run. For files the data is the table 'source' (default: all rows)."),
        Cli(("--query", "-q")),
    ] = None
    sample_fraction: Annotated[
        float | None, Field(description="Keep this fraction of rows (0-1]."), Cli(min=0.0, max=1.0)
    ] = None
    seed: Annotated[int, Field(description="Seed for --sample-fraction.")] = 0
    ragged_csv: Annotated[
        Literal["error", "pad", "skip"],
        Field(
            description="CSV only: a line whose field count differs from the header is an error naming the file "
            "and line (error); or missing fields become NULL and extra ones are dropped (pad); or the line is left "
            "out (skip)."
        ),
    ] = "error"
    engine: Annotated[EngineChoice, Field(description="Where the query runs.")] = "local"
    master: SparkMaster = None


STAGE = Stage(
    name="dump",
    spec=DumpSpec,
    run=calls("aiforge.dump._dump:dump"),
    summary="Dump a query result into a new immutable snapshot version NAME@vN.",
    example='aiforge dump sqlite:///shop.db -q "SELECT * FROM orders" -n orders',
    command="dump",
)
