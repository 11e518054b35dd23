"""DUMP benchmark: aiforge dump vs pandas.read_sql + to_parquet vs COPY TO STDOUT, on one PostgreSQL table.

Run: ``python benchmarks/bench_dump.py`` (add ``--rss`` for the 10M-row peak-memory check, or ``--rss-only``).
Needs the PostgreSQL server on 127.0.0.1:5432 (trust auth, database ``test``). The tables are created once in
schema ``aiforge_bench`` and kept for later runs; ``--drop`` removes them at the end.

Goals (issue 2): on 1M rows x 10 mixed columns, >= 5x faster than ``pandas.read_sql`` + ``to_parquet`` and
within 2x of ``COPY (query) TO STDOUT`` into /dev/null (the floor: the server's own export, no conversion, no
file). On 10M rows x 10 columns, peak RSS of the dumping process under 1 GiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, median_time, record

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "aiforge_bench"

# 10 columns: a bigint, 2 ints (one with NULLs), 2 floats (one with NULLs), 3 texts (one with NULLs, one
# low-cardinality), a timestamp and a boolean
CREATE = """
CREATE TABLE {table} AS
SELECT g::bigint AS id,
       (g % 1000)::int AS bucket,
       CASE WHEN g % 10 = 0 THEN NULL ELSE (g * 7 % 9973)::int END AS maybe_int,
       random() * 1000 AS score,
       CASE WHEN g % 7 = 0 THEN NULL ELSE g / 3.0::float8 END AS maybe_float,
       md5(g::text) AS token,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'user-' || (g % 100000)::text END AS user_name,
       (ARRAY['red', 'green', 'blue', 'amber'])[1 + g % 4] AS colour,
       timestamp '2024-01-01' + (g || ' seconds')::interval AS created_at,
       g % 3 = 0 AS flag
FROM generate_series(1, {rows}) AS g
"""


def ensure_table(rows: int) -> str:
    """Create ``aiforge_bench.dump_<rows>`` once; return its name."""
    import psycopg

    table = f"{SCHEMA}.dump_{rows}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if exists and exists[0]:
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            if count and count[0] == rows:
                return table
            conn.execute(f"DROP TABLE {table}")
        print(f"creating {table} ({rows:,} rows x 10 columns)...", flush=True)
        start = time.perf_counter()
        conn.execute(CREATE.format(table=table, rows=rows))
        conn.execute(f"VACUUM ANALYZE {table}")
        print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    return table


def run_aiforge(query: str, home: Path) -> None:
    import aiforge

    aiforge.dump(URL, query=query, name="bench", workspace=home)


def run_pandas_sqlalchemy(query: str, out: Path) -> None:
    """pandas' supported path: an SQLAlchemy engine (psycopg 3 driver underneath)."""
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(sqlalchemy.text(query), conn)
    finally:
        engine.dispose()
    frame.to_parquet(out)


def run_pandas_psycopg(query: str, out: Path) -> None:
    """pandas with a raw psycopg 3 connection (works, with a warning that it is not tested by pandas)."""
    import pandas as pd
    import psycopg

    with psycopg.connect(DSN) as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        frame = pd.read_sql(query, conn)
    frame.to_parquet(out)


def run_copy(query: str) -> None:
    import psycopg

    with (
        psycopg.connect(DSN) as conn,
        conn.cursor() as cur,
        open(os.devnull, "wb") as sink,
        cur.copy(f"COPY ({query}) TO STDOUT") as copy,
    ):
        for block in copy:
            sink.write(block)


def bench_speed(repeats: int) -> str:
    table = ensure_table(1_000_000)
    query = f"SELECT * FROM {table}"
    scratch = Path(tempfile.mkdtemp(prefix="bench-dump-"))
    try:
        # warm the server's cache and the imports so that no method pays them alone
        run_copy(query)
        run_aiforge(query, scratch / "warm")
        aiforge_s, aiforge_runs = median_time(lambda: run_aiforge(query, scratch / "ws"), repeats)
        snapshot_bytes = sum(p.stat().st_size for p in (scratch / "ws").rglob("*.parquet")) // repeats
        out = scratch / "pandas.parquet"
        sqla_s, sqla_runs = median_time(lambda: run_pandas_sqlalchemy(query, out), repeats)
        raw_s, raw_runs = median_time(lambda: run_pandas_psycopg(query, out), repeats)
        copy_s, copy_runs = median_time(lambda: run_copy(query), repeats)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    speedup, speedup_raw, vs_copy = sqla_s / aiforge_s, raw_s / aiforge_s, aiforge_s / copy_s

    def runs(times: list[float]) -> str:
        return ", ".join(f"{t:.2f}" for t in times)

    rows = [
        ["aiforge dump (local engine, ADBC -> Parquet zstd)", f"{aiforge_s:.2f} s", runs(aiforge_runs)],
        ["pandas.read_sql (SQLAlchemy + psycopg) + to_parquet", f"{sqla_s:.2f} s", runs(sqla_runs)],
        ["pandas.read_sql (raw psycopg connection) + to_parquet", f"{raw_s:.2f} s", runs(raw_runs)],
        ["COPY (query) TO STDOUT -> /dev/null (floor)", f"{copy_s:.2f} s", runs(copy_runs)],
    ]
    verdict = [
        ["speed-up vs pandas (SQLAlchemy)", f"{speedup:.1f}x", ">= 5x", "met" if speedup >= 5 else "MISSED"],
        ["speed-up vs pandas (raw psycopg)", f"{speedup_raw:.1f}x", ">= 5x", "met" if speedup_raw >= 5 else "MISSED"],
        ["time vs COPY floor", f"{vs_copy:.2f}x", "<= 2x", "met" if vs_copy <= 2 else "MISSED"],
    ]
    return (
        f"Table `{table}`: 1,000,000 rows x 10 columns (3 ints, 2 floats, 3 texts, timestamp, bool; "
        "NULLs in 3), "
        f"snapshot {snapshot_bytes / 2**20:.1f} MiB of Parquet. Medians of {repeats} runs.\n\n"
        + markdown_table(["method", "median", "runs (s)"], rows)
        + "\n\n"
        + markdown_table(["ratio", "value", "goal", ""], verdict)
    )


_CHILD = """
import sys, time
import aiforge
start = time.perf_counter()
snap = aiforge.dump(sys.argv[1], query=sys.argv[2], name="rss", workspace=sys.argv[3])
print(snap.rows, time.perf_counter() - start)
"""


def bench_rss() -> str:
    table = ensure_table(10_000_000)
    scratch = Path(tempfile.mkdtemp(prefix="bench-dump-rss-"))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, URL, f"SELECT * FROM {table}", str(scratch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone (ru_maxrss in KiB on Linux)
        output = proc.stdout.read() if proc.stdout else ""
        if status != 0:
            raise SystemExit(f"the dump failed with status {status}")
        rows, seconds = output.split()
        size = sum(p.stat().st_size for p in scratch.rglob("*.parquet"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    peak_mib = usage.ru_maxrss / 1024
    rows_table = [
        [
            f"aiforge dump of `{table}` in a subprocess",
            f"{int(rows):,}",
            f"{float(seconds):.1f} s",
            f"{size / 2**20:.0f} MiB",
            f"{peak_mib:.0f} MiB",
            "< 1024 MiB",
            "met" if peak_mib < 1024 else "MISSED",
        ]
    ]
    return "Peak memory (ru_maxrss of the child process, via wait4):\n\n" + markdown_table(
        ["measure", "rows", "time", "Parquet", "peak RSS", "goal", ""], rows_table
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS on a 10M-row table")
    parser.add_argument("--rss-only", action="store_true", help="only the peak RSS measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--drop", action="store_true", help="drop the benchmark tables at the end")
    args = parser.parse_args()

    parts = []
    # peak memory first: a child forked from this process after pandas has grown it would inherit its
    # ru_maxrss (Linux keeps the high-water mark across exec), and report the parent's memory, not its own
    if args.rss or args.rss_only:
        parts.append(bench_rss())
        print(parts[-1], flush=True)
    if not args.rss_only:
        parts.insert(0, bench_speed(args.repeats))
        print(parts[0], flush=True)
    record("dump", "\n\n".join(parts) + f"\n\nMachine: {os.cpu_count()} cores.")
    if args.drop:
        import psycopg

        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
