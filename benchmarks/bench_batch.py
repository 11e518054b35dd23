"""BATCH benchmark: the local engine (DuckDB + Arrow) vs the Spark engine in local mode, same spec, same data.

Run: ``python benchmarks/bench_batch.py`` (``--rows N`` to change the size, default 10M; ``--spark-rows N`` to
give Spark a smaller input when it cannot finish the full size in time; ``--no-record`` to skip docs/benchmarks.md).

Data: N rows x (10 numeric + 2 categorical) columns plus an id and a label, generated once as Parquet under
``benchmarks/.data`` and dumped into a scratch workspace there. Each engine runs ``aiforge.batch`` once in its own
subprocess; peak memory is the highest sum of RSS over the subprocess and all its descendants (for Spark: the
driver, the JVM and the Python workers), sampled every 0.2 s, and for the local engine also ``ru_maxrss`` of the
process. Goal (issue 3): local >= 5x faster than Spark, identical output (checked on manifests, every row's
split, per-feature sums over all rows, and every feature of a 1-in-1000 sample of ids within 1e-6).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, record

DATA = Path(__file__).resolve().parent / ".data" / "batch"
NUMERIC = [f"n{i}" for i in range(10)]


def spec(source: str, output: str) -> dict:
    scales = ["standardize", "minmax", "none"]
    features: list[dict] = []
    for i, column in enumerate(NUMERIC):
        if i == 9:
            features.append({"numeric": {"column": column, "bucketize": {"bins": 4}}})
        elif i in (7, 8):
            features.append({"numeric": {"column": column, "clip": [0, 50], "log1p": True, "scale": "standardize"}})
        else:
            features.append({"numeric": {"column": column, "scale": scales[i % 3]}})
    features.append({"categorical": {"column": "c0", "encoding": "onehot", "top_k": 10}})
    features.append({"categorical": {"column": "c1", "encoding": "hash", "buckets": 16}})
    return {
        "input": source,
        "output": output,
        "id": "id",
        "label": "y",
        "drop": [{"where": "n0 < -3.5"}, {"issue": "invalid_values"}],
        "features": features,
    }


def generate(rows: int) -> Path:
    """``rows`` rows as Parquet files of 1M rows (reused when they exist)."""
    folder = DATA / f"rows-{rows}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    chunk = 1_000_000
    for index, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        columns: dict[str, np.ndarray | pa.Array] = {"id": np.arange(start, start + n, dtype=np.int64)}
        for i, name in enumerate(NUMERIC):
            values = rng.normal(i, 1 + i, n) if i % 2 == 0 else rng.exponential(5 + i, n)
            values[rng.random(n) < 0.001] = np.nan
            columns[name] = values
        columns["c0"] = pa.array(np.char.add("city", rng.zipf(1.5, n).clip(max=50).astype(str)))
        columns["c1"] = pa.array(np.char.add("u", rng.integers(0, 100_000, n).astype(str)))
        columns["y"] = (rng.random(n) < 0.3).astype(np.int64)
        pq.write_table(pa.table(columns), folder / f"part-{index:03d}.parquet")
    (folder / "done").write_text("ok")
    return folder


CHILD = """
import json, resource, sys, time
from aiforge.batch import batch
spec = json.loads(sys.argv[1])
start = time.perf_counter()
snap = batch(spec, engine=sys.argv[2], workspace=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - start, "ref": snap.ref,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _tree_rss(root: int) -> int:
    """Sum of VmRSS (bytes) of ``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run_engine(engine: str, source: str, output: str, home: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec(source, output)), engine, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(tree_peak_mib=peak / 2**20, wall=wall)
    return result


def compare(home: Path, local_ref: str, spark_ref: str) -> dict:
    """Manifests equal; splits, per-feature sums and a 1-in-1000 id sample equal within 1e-6."""
    from aiforge import Workspace
    from aiforge.batch import FeatureSnapshot

    ws = Workspace(home)
    left = FeatureSnapshot.from_snapshot(ws.get_snapshot(local_ref))
    right = FeatureSnapshot.from_snapshot(ws.get_snapshot(spark_ref))
    keys = ("rows_in", "drops", "splits", "feature_names", "rows", "schema")
    same_manifest = all(left.manifest[k] == right.manifest[k] for k in keys)
    sums, samples = [], []
    for snap in (left, right):
        total = np.zeros(snap.manifest["n_features"])
        picked = []
        for batch in snap.dataset().to_batches(columns=["id", "split", "features"]):
            width = snap.manifest["n_features"]
            values = batch.column("features").flatten().to_numpy().reshape(-1, width)
            total += values.sum(axis=0, dtype=np.float64)
            ids = batch.column("id").to_numpy()
            keep = ids % 1000 == 0
            picked.append(pa.table({"id": ids[keep], "split": batch.column("split").filter(pa.array(keep)),
                                    "features": pa.array(list(values[keep]), pa.list_(pa.float32()))}))  # fmt: skip
        sums.append(total)
        samples.append(pa.concat_tables(picked).sort_by("id"))
    a, b = samples
    sample_equal = a.column("id").equals(b.column("id")) and a.column("split").equals(b.column("split"))
    diff = float(np.abs(np.stack(a.column("features").to_numpy(zero_copy_only=False))
                        - np.stack(b.column("features").to_numpy(zero_copy_only=False))).max())  # fmt: skip
    sum_rel = float(np.max(np.abs(sums[0] - sums[1]) / np.maximum(1.0, np.abs(sums[0]))))
    return {
        "manifest": same_manifest,
        "sample_rows": a.num_rows,
        "sample_equal": sample_equal and diff <= 1e-6,
        "max_diff": diff,
        "sum_rel": sum_rel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--spark-rows", type=int, default=None, help="a smaller input for Spark (labelled)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    from aiforge import dump
    from aiforge.workspace import Workspace

    home = DATA / "home"
    ws = Workspace(home)
    sizes = {"local": args.rows, "spark": args.spark_rows or args.rows}
    sources = {}
    for rows in sorted(set(sizes.values())):
        name = f"bench_{rows}"
        existing = ws.list_snapshots(name) if (home / "catalog.sqlite").exists() else []
        if not existing:
            folder = generate(rows)
            print(f"dumping {rows:,} rows into {name} ...", flush=True)
            dump(str(folder / "*.parquet"), name=name, workspace=ws)
        sources[rows] = name
    results = {}
    for engine in ("local", "spark"):
        rows = sizes[engine]
        print(f"{engine}: batch of {rows:,} rows ...", flush=True)
        results[engine] = run_engine(engine, sources[rows], f"feat_{engine}_{rows}", home)
        print(f"  {results[engine]['seconds']:.1f} s, peak {results[engine]['tree_peak_mib']:.0f} MiB", flush=True)
    local, spark = results["local"], results["spark"]
    same_size = sizes["local"] == sizes["spark"]
    check = compare(home, local["ref"], spark["ref"]) if same_size else None
    per_row = {e: results[e]["seconds"] / sizes[e] for e in results}
    ratio = per_row["spark"] / per_row["local"]
    rows_table = [
        [
            engine,
            f"{sizes[engine]:,}",
            f"{results[engine]['seconds']:.1f}",
            f"{sizes[engine] / results[engine]['seconds'] / 1e6:.2f}",
            f"{results[engine]['tree_peak_mib']:,.0f}",
        ]
        for engine in ("local", "spark")
    ]
    body = (
        f"{sizes['local']:,} rows x (10 numeric + 2 categorical) columns; spec: 10 numeric features "
        "(standardize, min-max, clip+log1p, bucketize), one-hot top-10, hashing into 16 buckets, drop rules "
        "`n0 < -3.5` and `invalid_values`; one run per engine in its own subprocess, 2-core machine, Spark "
        "`local[*]`. Peak memory: highest sampled sum of RSS over the process tree (Spark: driver + JVM + Python "
        "workers).\n\n"
        + markdown_table(["engine", "rows", "seconds", "M rows/s", "peak RSS (MiB)"], rows_table)
        + f"\n\nLocal engine {ratio:.1f}x faster than Spark per row (goal >= 5x)"
        + ("" if same_size else f" (Spark ran on {sizes['spark']:,} rows only: see below)")
        + f"; local ru_maxrss {local['maxrss_mib']:,.0f} MiB.\n"
    )
    if check is not None:
        body += (
            f"\nSame output: manifests (rows, drops, splits, feature names, schema) "
            f"{'identical' if check['manifest'] else 'DIFFERENT'}; "
            f"{check['sample_rows']:,}-row id sample {'identical' if check['sample_equal'] else 'DIFFERENT'} "
            f"(max |diff| {check['max_diff']:.1e}); per-feature sums over all rows within "
            f"{check['sum_rel']:.1e} relative.\n"
        )
    else:
        body += (
            f"\nSpark was given {sizes['spark']:,} rows because the full size does not fit the time budget; "
            "the ratio compares throughput per row. Output equality is covered by the tests.\n"
        )
    print(body)
    if not args.no_record:
        record("batch", body)


if __name__ == "__main__":
    main()
