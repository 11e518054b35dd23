"""Benchmark data for bench_analyze.py: 100M x 6 and 1M x 6 Parquet files, generated once with DuckDB."""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data"
BIG = DATA / "analyze_100m.parquet"
SMALL = DATA / "analyze_1m.parquet"

# Six columns of the kinds a report meets: an ID (sorted, so the report should flag block clustering), two
# floats, a categorical, a timestamp and a binary label that depends on x and on the category (bias to find).
_QUERY = """
SELECT
    i AS id,
    round(x, 6) AS x,
    CASE WHEN hash(i, 7) % 50 = 0 THEN NULL ELSE round(random() * 1000, 3) END AS amount,
    ['north', 'south', 'east', 'west', 'centre'][1 + (hash(i, 3) % 5)::INT] AS region,
    TIMESTAMP '2024-01-01' + to_seconds((hash(i, 5) % 31536000)::BIGINT) AS ts,
    (x + CASE WHEN hash(i, 3) % 5 = 0 THEN 0.8 ELSE 0 END > 0.9)::INT AS label
FROM (SELECT range AS i, (random() + random() + random() - 1.5) * 2 AS x FROM range({rows}))
"""


def ensure(path: Path, rows: int) -> Path:
    """Write ``rows`` rows to ``path`` unless it is already there."""
    if path.exists():
        return path
    import duckdb

    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SELECT setseed(0.42)")
    con.execute(f"COPY ({_QUERY.format(rows=rows)}) TO '{tmp}' (FORMAT parquet, COMPRESSION snappy)")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    import time

    for p, n in ((SMALL, 1_000_000), (BIG, 100_000_000)):
        t = time.perf_counter()
        ensure(p, n)
        print(p, f"{p.stat().st_size / 2**30:.2f} GiB", f"{time.perf_counter() - t:.1f}s")
