"""DUMP: turn a query over a warehouse into an immutable, versioned snapshot (Parquet files + manifest).

The result streams from the source to Parquet in Arrow record batches (local engine) or is written by Spark
itself (spark engine), so memory stays bounded whatever the size of the result. Everything is written in a
staging folder of the workspace and renamed into place with its catalog row in one transaction: a failed,
interrupted or killed dump leaves no snapshot and an unchanged catalog.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aiforge.engines import Engine, LocalEngine, SparkEngine, resolve_engine
from aiforge.engines.columns import NaNInDecimal
from aiforge.engines.csv_reader import RAGGED, Ragged, check_ragged
from aiforge.engines.sources import Source, parse_source
from aiforge.errors import AiforgeError, EmptyResult, InvalidInput, WorkspaceError
from aiforge.progress import progress as progress_bar
from aiforge.validation import Interval, Options, validate_params
from aiforge.workspace import Snapshot, Workspace, check_name
from aiforge.workspace.writer import PartWriter, bernoulli_sample, data_manifest, prefetch

__all__ = ["dump"]

log = logging.getLogger(__name__)
_CONSTRAINTS: dict[str, list[Any]] = {
    "sample_fraction": [Interval(Real, 0, 1, closed="right"), None],
    "seed": [Interval(Integral, 0, None, closed="left")],
    "ragged_csv": [Options(*RAGGED)],
}


def dump(
    source: str | os.PathLike[str],
    *,
    name: str,
    query: str | None = None,
    sample_fraction: float | None = None,
    seed: int = 0,
    ragged_csv: Ragged = "error",
    engine: str | Engine = "local",
    master: str | None = None,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Snapshot:
    """Run ``query`` against ``source`` and store its result as the next version of snapshot ``name``.

    Parameters
    ----------
    source : str or path
        A database URL (``postgresql://``, ``postgres://``, ``mysql://``, ``sqlite:///``, ``duckdb:///``), a
        Parquet/CSV path, folder or glob, or ``"spark"`` (the Spark/Hive catalog, with ``engine="spark"``).
        Credentials in the URL are used to connect and never stored: the manifest keeps the URL without
        password.
    name : str
        Snapshot name; each dump adds version ``name@vN`` (v1, v2, ...).
    query : str, optional
        SQL in the source's dialect (Spark SQL with ``engine="spark"``). Required for databases and
        ``"spark"``; for files the data is the view ``source`` and the default is ``SELECT * FROM source``.
    sample_fraction : float, optional
        Keep each row with this probability, ``0 < sample_fraction <= 1`` (Bernoulli sampling). The local
        engine draws one number per row from ``numpy.random.Generator(PCG64(seed))`` in result order, so the
        same seed and the same row order (use ``ORDER BY``) keep the same rows. The spark engine uses
        ``DataFrame.sample(fraction, seed)``, reproducible for the same partitioning; the two engines keep
        different rows for the same seed.
    seed : int, default 0
        Seed of the sample (non-negative).
    ragged_csv : {'error', 'pad', 'skip'}, default 'error'
        CSV files only: what to do with a line whose number of fields differs from the header's. ``error``
        names the file and line and writes nothing; ``pad`` fills missing fields with NULL and drops extra ones
        (DuckDB's ``null_padding``, Spark's ``PERMISSIVE``); ``skip`` leaves such lines out and logs how many
        (DuckDB's ``ignore_errors``, Spark's ``DROPMALFORMED``). Both engines read the file with the delimiter
        and quoting DuckDB's sniffer finds on its good lines.
    engine : {'local', 'spark'} or Engine, default 'local'
        ``local``: Arrow-native drivers and DuckDB in this process. ``spark``: Spark SQL, Spark writes the
        files.
    master : str, optional
        Spark master URL for ``engine="spark"`` (default ``local[*]``). On a cluster the workspace must be on
        storage that every executor can write to.
    workspace : Workspace or path, optional
        Default: ``Workspace()`` (``AIFORGE_HOME`` or ``./.aiforge``).
    progress : bool, default False
        Show a progress bar of the rows written (only on a terminal).

    Returns
    -------
    Snapshot
        The new snapshot; ``snapshot.manifest`` holds ``source`` (redacted), ``query``, ``engine``,
        ``master``, ``schema``, ``rows``, ``bytes``, ``files``, ``content_hash``, ``created``,
        ``aiforge_version``, ``sample`` and ``duration_s``. A ``schema`` entry has a ``note`` where a column is
        stored otherwise than its source type says (a PostgreSQL ``numeric`` without a precision as float64).

    Raises
    ------
    InvalidInput
        A bad name, fraction, seed, engine or option (``ragged_csv`` for a source that is not CSV), or a
        missing query; raised before anything runs.
    UnknownSource
        An unsupported URL scheme, or a path or glob that matches no Parquet/CSV file.
    SourceError
        The database cannot be reached (a wrong password fails in seconds), a file cannot be read, or a CSV line
        does not match its header (with ``ragged_csv="error"``).
    QueryError
        The source rejected the query; carries the source's message and the query. Also raised, before a row is
        written, for a result with duplicate column names (ignoring case) or with a column of a type a snapshot
        cannot store (the message names each column, its type and a cast that fixes it).
    EmptyResult
        The query (after sampling) returned no rows; nothing is written.
    WorkspaceError
        The snapshot cannot be written (disk full, permissions).

    Examples
    --------
    >>> import aiforge
    >>> snap = aiforge.dump("postgresql://postgres@127.0.0.1/test", query="SELECT * FROM orders",
    ...                     name="orders")  # doctest: +SKIP
    >>> snap.ref, snap.rows  # doctest: +SKIP
    ('orders@v1', 1000)
    """
    started = time.perf_counter()
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    check_name(name)
    sample = _check_sample(sample_fraction, seed, ragged_csv)
    runs_on = resolve_engine(engine, master)
    src = parse_source(source)
    check_ragged(ragged_csv, src.format, src.redacted)
    query = query.strip() if isinstance(query, str) and query.strip() else None
    _check_engine(src, query, runs_on)
    log.info("dumping %s into snapshot %s with the %s engine", src.redacted, name, runs_on.name)

    with ws.staging("dump") as staged:
        notes: dict[str, str] = {}
        if isinstance(runs_on, SparkEngine):
            schema = _dump_spark(src, query, staged, sample, runs_on.master, ws.home, ragged_csv)
        else:
            schema = _dump_local(src, query, staged, sample, progress, ragged_csv, notes)
        data = data_manifest(staged, schema) if schema is not None else None
        if data is not None:  # how a column is stored, where its source type does not say (numeric as float64)
            data["schema"] = [{**c, "note": notes[c["name"]]} if c["name"] in notes else c for c in data["schema"]]
        if data is None or data["rows"] == 0:
            detail = f" after sampling {sample[0]:g} of the rows (seed {sample[1]})" if sample else ""
            raise EmptyResult(
                f"the query returned no rows{detail} from {src.redacted}; nothing was written. "
                f"Check the query's WHERE clause"
                + (" or use a larger --sample-fraction" if sample else "")
                + f" (query: {query or 'SELECT * FROM source'})"
            )
        manifest: dict[str, Any] = {
            "source": src.redacted,
            "query": query or ("SELECT * FROM source" if src.kind == "files" else None),
            **runs_on.describe(),
            **data,
            "sample": {"fraction": sample[0], "seed": sample[1]} if sample else None,
            "duration_s": round(time.perf_counter() - started, 3),
        }
        snapshot = ws.commit_snapshot(name, staged, manifest)
    log.info("wrote %s: %d rows in %d files", snapshot.ref, snapshot.rows, len(data["files"]))
    return snapshot


def _check_sample(fraction: float | None, seed: int, ragged_csv: str) -> tuple[float, int] | None:
    validate_params({"sample_fraction": fraction, "seed": seed, "ragged_csv": ragged_csv}, _CONSTRAINTS)
    return None if fraction is None else (float(fraction), int(seed))


def _check_engine(src: Source, query: str | None, engine: Engine) -> None:
    if isinstance(engine, LocalEngine) and src.kind == "spark":
        raise InvalidInput("SOURCE 'spark' (the Spark/Hive catalog) needs --engine spark")
    if isinstance(engine, SparkEngine) and src.is_database:
        raise InvalidInput(
            f"the spark engine cannot read {src.redacted}: reading databases from Spark needs JDBC "
            "driver jars that are not available offline; dump it with --engine local instead"
        )
    if query is None and (src.is_database or src.kind == "spark"):
        example = "SELECT * FROM my_table"
        raise InvalidInput(
            f"a query is required to dump from {src.redacted}; pass --query, for example {example!r}"
        )


def _dump_local(
    src: Source,
    query: str | None,
    staged: Path,
    sample: tuple[float, int] | None,
    show: bool,
    ragged_csv: Ragged,
    notes: dict[str, str],
) -> pa.Schema | None:
    """Stream the result into part files; ``notes`` gets the manifest's note per column. A PostgreSQL
    ``numeric(p,s)`` column is a decimal until a NaN shows up in it: then the dump starts again with that column
    as float64 (the type of a column is decided before its first row is written)."""
    as_float: frozenset[str] = frozenset()
    while True:
        try:
            return _stream_local(src, query, staged, sample, show, ragged_csv, notes, as_float)
        except NaNInDecimal as exc:
            if exc.column in as_float:  # already float64: cannot happen twice, but never loop on it
                raise
            log.info("column %r holds NaN, which a decimal cannot: dumping again with it as float64", exc.column)
            as_float |= {exc.column}
            shutil.rmtree(staged / "data", ignore_errors=True)


def _stream_local(
    src: Source,
    query: str | None,
    staged: Path,
    sample: tuple[float, int] | None,
    show: bool,
    ragged_csv: Ragged,
    notes: dict[str, str],
    as_float: frozenset[str],
) -> pa.Schema | None:
    from aiforge.engines.local import open_stream

    opened = open_stream(src, query, temp_dir=staged / "spill", ragged_csv=ragged_csv, numeric_as_float=as_float)
    with opened as stream, prefetch(stream.batches) as ahead:
        notes.clear()
        notes.update(stream.notes)
        writer = PartWriter(staged, stream.schema)
        batches = bernoulli_sample(ahead, *sample) if sample else ahead
        try:
            with progress_bar("dump: rows written", enabled=show, unit="rows") as bar:
                for batch in batches:
                    try:
                        writer.write(batch)
                    except OSError as exc:
                        raise _write_failed(staged, exc) from exc
                    bar.advance(batch.num_rows)
                try:
                    writer.close()
                except OSError as exc:
                    raise _write_failed(staged, exc) from exc
        except BaseException:
            writer.abort()
            raise
    return _written_schema(staged) if writer.rows else None


def _dump_spark(
    src: Source,
    query: str | None,
    staged: Path,
    sample: tuple[float, int] | None,
    master: str | None,
    home: Path,
    ragged_csv: Ragged,
) -> pa.Schema | None:
    from aiforge.engines.spark import write_parquet

    try:
        write_parquet(src, query, staged / "data", master=master, sample=sample, home=home, ragged_csv=ragged_csv)
    except AiforgeError:
        raise
    except OSError as exc:
        raise _write_failed(staged, exc) from exc
    return _written_schema(staged)


def _written_schema(staged: Path) -> pa.Schema | None:
    """The schema as the part files hold it, which is what the manifest states (Parquet names a list's values
    ``element``, for one, where a driver may have said ``item``)."""
    parts = sorted((staged / "data").glob("part-*.parquet"))
    return pq.read_schema(parts[0]).remove_metadata() if parts else None


def _write_failed(staged: Path, exc: OSError) -> WorkspaceError:
    return WorkspaceError(
        f"cannot write the snapshot files in {staged.parent.parent}: {exc}; free some disk space or point "
        "AIFORGE_HOME at a writable folder, then run the dump again"
    )
