"""The Spark engine: run a dump's query as Spark SQL and let Spark write the Parquet files.

Spark reads and writes in parallel on its executors, so a dump never passes through this process's memory. The
session is created on first use (``import aiforge`` never imports pyspark) and reused for the life of the
process.

* SOURCE ``spark``: the query runs against the session catalog, Hive's when the Hive classes are on the
  classpath (the warehouse and the Derby metastore live under ``<workspace>/spark`` unless
  ``AIFORGE_SPARK_WAREHOUSE`` names another folder), else Spark's in-memory catalog.
* Parquet/CSV files: registered as the temporary view ``source``.
* Database URLs: refused; reading them from Spark needs JDBC driver jars that are not available offline. Dump
  them with the local engine, then dump that snapshot's files with the spark engine if needed.

Sampling uses ``DataFrame.sample(fraction, seed)``: also Bernoulli and reproducible for a given seed and
partitioning, but it draws different random numbers than the local engine, so the two engines keep different
rows.

Spark's own log never reaches the terminal: the JVM's log4j writes to ``<workspace>/logs/spark-STAMP-PID.log``
(created when there is something to log), and so do PySpark's loggers that print a failed query as JSON. A
failure is one line (:func:`failure_text`: the first line of Spark's message and where the log is), and the full
JVM stack trace is appended to that log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiforge.engines.columns import check_unique_names
from aiforge.engines.csv_reader import Ragged, check_ragged, read_csv, spark_options
from aiforge.engines.sources import Source
from aiforge.errors import InvalidInput, QueryError, SourceError, WorkspaceError

__all__ = ["DEFAULT_MASTER", "failure_text", "first_line", "get_session", "log_path", "warehouse_dir", "write_parquet"]

DEFAULT_MASTER = "local[*]"
_LOCK = threading.Lock()
_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "1g",
    "spark.sql.session.timeZone": "UTC",
    # Arrow/pyarrow read these as timestamp[us], like the local engine writes; Spark's default INT96 is
    # legacy.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


#: log4j2 configuration of the driver JVM: everything to the file named by the system property, nothing to the console
_LOG4J2 = """\
status = error
name = aiforge
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:aiforge.spark.log}
appender.file.append = true
appender.file.createOnDemand = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{yyyy-MM-dd HH:mm:ss} %p %c: %m%n%ex
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
"""
#: PySpark's loggers that print a failed query's error as JSON on stderr
_PYSPARK_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
_log_file: Path | None = None


@contextlib.contextmanager
def _stderr_into(path: Path | None) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` (appending) while the JVM is launched, then give it back.

    The JVM is a child process and keeps the stderr it was started with, so what it writes there itself (the
    launcher's ``WARNING: Using incubator modules``, a crash dump's notice) lands in the Spark log, never on the
    terminal; this process's own stderr is restored at once.
    """
    if path is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def log_path() -> Path | None:
    """The log file of this process's Spark session (the JVM's log and the full traces), None before one starts."""
    return _log_file


def _logging_options(home: Path) -> str:
    """The JVM options that send log4j to ``home/logs/spark-STAMP-PID.log``; the log4j2 file is written beside it."""
    global _log_file
    folder = home / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "spark-log4j2.properties"
    if not config.is_file() or config.read_text(encoding="utf-8") != _LOG4J2:
        staged = folder / f".spark-log4j2.properties.{os.getpid()}"
        staged.write_text(_LOG4J2, encoding="utf-8")
        os.replace(staged, config)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    _log_file = folder / f"spark-{stamp}-{os.getpid()}.log"
    return f"-Dlog4j2.configurationFile={config.as_uri()} -Daiforge.spark.log={_log_file}"


def _quiet_pyspark_loggers() -> None:
    """Send PySpark's JSON error loggers to the session's log file instead of stderr."""
    from pyspark.logger import PySparkLogger

    for name in _PYSPARK_LOGGERS:
        logger = PySparkLogger.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        if _log_file is not None:
            logger.addHandler(logging.FileHandler(_log_file, delay=True, encoding="utf-8"))
        logger.propagate = False


def failure_text(exc: BaseException) -> str:
    """One line for the terminal: Spark's message without its stack trace, and the log that holds the trace.

    The full error (the JVM's stack trace, or Python's traceback) is appended to :func:`log_path`.
    """
    line = first_line(exc)
    if _log_file is None:
        return line
    trace = getattr(exc, "_stackTrace", None) or ""  # PySpark's captured JVM exceptions keep the JVM trace here
    text = "".join(traceback.format_exception(exc)) + (f"\nJVM stack trace:\n{trace}" if trace else "")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    try:
        with open(_log_file, "a", encoding="utf-8") as log:
            log.write(f"{stamp} ERROR aiforge: {line}\n{text}\n")
    except OSError:
        return line
    return f"{line} (Spark's full error is in {_log_file})"


def warehouse_dir(home: Path) -> Path:
    """The folder for the Spark warehouse and metastore: ``AIFORGE_SPARK_WAREHOUSE`` or ``<home>/spark``.

    Examples
    --------
    >>> warehouse_dir(Path("/data/.aiforge")).name  # doctest: +SKIP
    'spark'
    """
    return Path(os.environ.get("AIFORGE_SPARK_WAREHOUSE") or home / "spark").absolute()


def get_session(master: str | None = None, *, home: Path | None = None) -> Any:
    """Return the process's SparkSession, creating it on first use.

    Parameters
    ----------
    master : str, optional
        Spark master URL; default ``local[*]``. A running session with another master is stopped and replaced.
    home : Path, optional
        Workspace folder under which the warehouse and metastore go (see :func:`warehouse_dir`); used only
        when the session is created.

    Examples
    --------
    >>> spark = get_session()  # doctest: +SKIP
    >>> spark.sql("SELECT 1 AS x").collect()  # doctest: +SKIP
    [Row(x=1)]
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is a dependency of the spark extra
        raise InvalidInput("the spark engine needs PySpark: pip install 'aiforge[spark]'") from exc

    master = master or DEFAULT_MASTER
    with _LOCK:
        active = SparkSession.getActiveSession()
        if active is not None and active.sparkContext.master == master:
            return active
        if active is not None:
            active.stop()
        workspace = (home or Path.cwd() / ".aiforge").absolute()
        base = warehouse_dir(workspace)
        builder = SparkSession.builder.master(master).appName("aiforge")
        for key, value in {
            **_SETTINGS,
            "spark.sql.warehouse.dir": str(base / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={base / 'metastore_db'};create=true"
            ),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={base} {_logging_options(workspace)}",
        }.items():
            builder = builder.config(key, value)
        try:
            with _stderr_into(_log_file):  # the JVM keeps this stderr: its start-up warnings go to the log too
                session = (builder.enableHiveSupport() if _hive_available() else builder).getOrCreate()
        except Exception as exc:
            raise SourceError(f"cannot start Spark with master {master!r}: {failure_text(exc)}") from exc
        _quiet_pyspark_loggers()
        return session


def write_parquet(
    source: Source,
    query: str | None,
    data_dir: Path,
    *,
    master: str | None = None,
    sample: tuple[float, int] | None = None,
    home: Path | None = None,
    ragged_csv: Ragged = "error",
) -> None:
    """Run ``query`` with Spark and write its result as ``data_dir/part-00000.parquet``, ``part-00001...``.

    Parameters
    ----------
    source : Source
        ``spark`` (the session catalog) or ``files``.
    query : str, optional
        Spark SQL. Required for ``spark``; for files the data is the view ``source`` (default: every row).
    data_dir : Path
        Must not exist yet; created with only the part files (Spark's ``_SUCCESS`` and ``.crc`` files are
        removed).
    master : str, optional
        Spark master URL (default ``local[*]``).
    sample : (fraction, seed), optional
        Bernoulli sample with ``DataFrame.sample``.
    home : Path, optional
        The workspace folder (for the warehouse, see :func:`warehouse_dir`).
    ragged_csv : {'error', 'pad', 'skip'}, default 'error'
        For CSV files, what to do with a line whose field count differs from the header: Spark's ``FAILFAST``
        (the failure is then located with DuckDB, to name the file and line as the local engine does),
        ``PERMISSIVE`` or ``DROPMALFORMED``. The delimiter and quoting are the ones DuckDB's sniffer finds, so
        both engines read a file alike (see :mod:`aiforge.engines.csv_reader`).

    Raises
    ------
    InvalidInput, QueryError, SourceError, WorkspaceError

    Examples
    --------
    >>> from aiforge.engines.sources import parse_source
    >>> write_parquet(parse_source("events/*.parquet"), None, Path("/tmp/out/data"))  # doctest: +SKIP
    """
    if source.is_database:
        raise InvalidInput(
            f"the spark engine cannot read {source.redacted}: reading databases from Spark needs JDBC "
            "driver jars that are not available offline; dump it with --engine local instead"
        )
    if source.kind == "spark" and (query is None or not query.strip()):
        raise InvalidInput(
            "a query is required to dump from the Spark catalog; pass --query 'SELECT ... FROM table'"
        )
    check_ragged(ragged_csv, source.format, source.redacted)
    from pyspark.errors import AnalysisException, PySparkException

    spark = get_session(master, home=home)
    query = query if query and query.strip() else "SELECT * FROM source"
    if source.kind == "files":
        try:
            if source.format == "parquet":
                frame = spark.read.parquet(*source.paths)
            else:
                frame = spark.read.csv(list(source.paths), **spark_options(source.paths, ragged_csv))
            frame.createOrReplaceTempView("source")
        except Exception as exc:
            raise SourceError(
                f"cannot read {source.format} file(s) {source.redacted}: {failure_text(exc)}; "
                f"check that the files are readable and really are {source.format}"
            ) from exc
    try:
        frame = spark.sql(query)
        if sample is not None:
            frame = frame.sample(withReplacement=False, fraction=sample[0], seed=sample[1])
    except (AnalysisException, PySparkException) as exc:
        raise QueryError(failure_text(exc), query) from exc
    check_unique_names(frame.columns, query)  # Spark refuses them too, but only when it writes, and less clearly
    out = data_dir.parent / "spark-out"
    try:
        frame.write.mode("error").parquet(str(out), compression="zstd")
    except Exception as exc:
        message = failure_text(exc)
        if re.search(r"No space left|Permission denied|Read-only file system|Disk quota", message):
            raise WorkspaceError(f"cannot write the snapshot files in {out.parent}: {message}") from exc
        if isinstance(exc, AnalysisException):
            raise QueryError(message, query) from exc
        located = _malformed_line(source) if source.format == "csv" and "MALFORMED_RECORD" in str(exc) else None
        if located is not None:
            raise located from exc
        raise SourceError(f"Spark failed while running the dump of {source.redacted}: {message}") from exc
    finally:
        if source.kind == "files":
            spark.catalog.dropTempView("source")
    _collect_parts(out, data_dir)


def _malformed_line(source: Source) -> SourceError | None:
    """Spark's FAILFAST names neither the file nor the line of a ragged CSV record: find it as the local engine
    does, for the same error. None if DuckDB finds nothing wrong (then Spark's own error is raised)."""
    try:
        read_csv(source.paths, ragged="error")
    except SourceError as exc:
        return exc
    return None


def _collect_parts(out: Path, data_dir: Path) -> None:
    """Rename Spark's ``part-00003-<uuid>-c000.zstd.parquet`` files to ``part-NNNNN.parquet`` in task order.

    Files without rows (Spark writes one to carry the schema of an empty result) are dropped.
    """
    import pyarrow.parquet as pq

    parts = sorted(out.glob("part-*.parquet"), key=lambda p: (_task_number(p.name), p.name))
    parts = [p for p in parts if pq.ParquetFile(p).metadata.num_rows > 0]
    data_dir.mkdir(parents=True)
    for index, part in enumerate(parts):
        os.rename(part, data_dir / f"part-{index:05d}.parquet")
    shutil.rmtree(out, ignore_errors=True)


def _task_number(name: str) -> int:
    match = re.match(r"part-(\d+)", name)
    return int(match[1]) if match else 0


def _hive_available() -> bool:
    """True when the Hive classes ship with this Spark (the pip package includes them)."""
    try:
        import pyspark
    except ImportError:  # pragma: no cover
        return False
    jars = Path(pyspark.__file__).parent / "jars"
    return any(jars.glob("hive-exec-*.jar")) or bool(os.environ.get("SPARK_HOME"))


def first_line(exc: BaseException) -> str:
    """The useful part of a Spark/Py4J error: the message without the JVM stack trace."""
    text = str(exc)
    text = re.sub(r"^An error occurred while calling \S+\.\s*:\s*", "", text.strip())
    text = re.sub(r"^\S*(?:SparkException|Exception):\s*", "", text)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
