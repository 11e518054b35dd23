"""The one place that opens DuckDB, so every part of aiforge gets a connection set up the same way."""

from __future__ import annotations

from typing import Any

__all__ = ["connect_duckdb", "sql_string"]


def connect_duckdb(
    path: str = ":memory:", *, read_only: bool = False, memory_limit: str | None = None, temp_dir: Any = None
) -> Any:
    """A DuckDB connection set up the way every part of aiforge needs it: the one place that calls duckdb.connect.

    Parquet statistics do not record NaN, and DuckDB 2.0 folds ``isnan(x)`` (and filters on it) to false from
    them, silently losing rows; with ``filter_pushdown`` and ``statistics_propagation`` off it reads the values.
    Row-group skipping on selective filters is the price.

    Parameters
    ----------
    path : str, default ':memory:'
        A DuckDB database file, or in-memory.
    read_only : bool, default False
    memory_limit : str, optional
        DuckDB's ``memory_limit`` (for example ``'512MB'``); beyond it DuckDB spills to ``temp_dir``.
    temp_dir : path, optional
        Where DuckDB spills.

    Examples
    --------
    >>> connect_duckdb().execute("SELECT isnan('nan'::DOUBLE)").fetchone()
    (True,)
    """
    import duckdb

    con = duckdb.connect(path, read_only=read_only)
    con.execute("SET disabled_optimizers = 'filter_pushdown,statistics_propagation'")
    if memory_limit is not None:
        con.execute(f"SET memory_limit = '{sql_string(memory_limit)}'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{sql_string(str(temp_dir))}'")
    return con


def sql_string(text: str) -> str:
    """``text`` for a single-quoted SQL literal."""
    return text.replace("'", "''")
