"""TRAIN benchmarks: the deadline planner against the truth found by trying every quota, and the job overhead.

**Planner accuracy.** Three jobs (a logistic regression, gradient boosting with OpenMP threads, a small PyTorch MLP),
each on three data sizes. For each job and size:

1. ``aiforge.train.plan`` calibrates it for real (runs on 10 % and 25 % of the data at several CPU quotas);
2. the full job runs at every quota from 0.25 to 2 CPUs in steps of 0.25 (the truth: which quotas meet a budget);
3. three deadlines are set from the truth (``--slack`` times the time at 0.5, 1 and 1.75 CPUs, so the cheapest quota
   that meets them differs); for each the planner chooses a quota from the calibration alone (with its default 10 %
   margin, so a deadline with less slack than that is refused), and the job runs again at that quota.

Reported: the share of chosen runs that met their deadline (goal >= 90 %), the chosen CPUs over the cheapest quota
that really met the deadline (goal <= 1.2x), and the planner's predicted time against the chosen run's actual time
(MAPE, goal <= 20 %). Every run is a real job through the local runtime with a cgroup CPU quota.

**Overhead.** A job that only returns a tiny fitted model, from ``aiforge.train`` to a registered model: the median
of several runs with the environment cached, and beside it the first run with a requirement whose environment is
not built yet (cold cache; the requirement is a local wheel, so no download is timed).

Usage: python benchmarks/bench_train.py [--quick] [--record]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, record

QUOTAS = [0.25 * k for k in range(1, 9)]

JOBS = '''
import os
import numpy as np


def _xy(ctx):
    table = ctx.data["table"].arrow()
    X = np.column_stack([table.column(f"f{i}").to_numpy() for i in range(20)]).astype(np.float32)
    y = table.column("label").to_numpy()
    ctx.progress(1, 2)
    return X, y


def logreg(ctx):
    from sklearn.linear_model import LogisticRegression
    X, y = _xy(ctx)
    return LogisticRegression(max_iter=300, tol=1e-6).fit(X, y)


def boosting(ctx):
    from sklearn.ensemble import HistGradientBoostingClassifier
    X, y = _xy(ctx)
    return HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=0).fit(X, y)


def mlp(ctx):
    import torch
    torch.manual_seed(0)
    X, y = _xy(ctx)
    X, y = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(8):
        for start in range(0, len(X), 512):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X[start:start + 512]), y[start:start + 512])
            loss.backward()
            opt.step()
    return None  # the planner benchmark times training; the overhead benchmark below times export and registry


def noop(ctx):
    from sklearn.linear_model import LinearRegression
    return LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
'''

SIZES = {"logreg": (400_000, 800_000, 1_600_000), "boosting": (25_000, 50_000, 100_000),
         "mlp": (12_500, 25_000, 50_000)}
QUICK_SIZES = {"logreg": (400_000,), "boosting": (25_000,), "mlp": (12_500,)}


def _tables(ws: Any, sizes: dict[str, tuple[int, ...]]) -> dict[int, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import make_classification

    import aiforge

    refs = {}
    for rows in sorted({n for per in sizes.values() for n in per}):
        X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
        path = ws.home.parent / f"synthetic-{rows}.parquet"
        pq.write_table(pa.table({**{f"f{i}": X[:, i] for i in range(20)}, "label": y}), path)
        refs[rows] = aiforge.dump(str(path), name=f"synthetic_{rows}", workspace=ws).ref
    return refs


def _spec(code: Path, entry: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {"name": f"bench_{entry}", "code": str(code), "entrypoint": f"jobs.py:{entry}", "data": {"table": ref},
            "register_model": entry == "noop", **extra}


def _run(ws: Any, spec: dict[str, Any]) -> float:
    import aiforge

    result = aiforge.train(spec, workspace=ws)
    return float(result.run.info["actual_s"])


def planner_accuracy(
    ws: Any, code: Path, sizes: dict[str, tuple[int, ...]], slack: float
) -> tuple[list[list[Any]], dict]:
    import aiforge
    from aiforge.train import planner

    refs = _tables(ws, sizes)
    rows, outcomes = [], []
    for entry, per in sizes.items():
        for n in per:
            spec = _spec(code, entry, refs[n])
            calibrated = aiforge.train.plan({**spec, "deadline": "24h"}, workspace=ws)
            model = calibrated.model
            print(f"{entry} {n:,} rows: model startup {model.startup:.2f} s, work {model.work:.2f} s, parallel "
                  f"{model.parallel:.2f}, threads effect {model.threads_effect:+.2f}, spread {model.rel_error:.1%}; "
                  "calibration " + ", ".join(
                      f"{s.fraction:g}@{s.cpus:g}:{s.seconds:.2f}s" for s in calibrated.samples), flush=True)
            truth = {q: _run(ws, {**spec, "resources": {"cpus": q}}) for q in QUOTAS}
            print(f"{entry} {n:,} rows: truth " + ", ".join(f"{q:g}:{t:.1f}s" for q, t in truth.items()),
                  flush=True)
            for anchor in (0.5, 1.0, 1.75):
                budget = truth[anchor] * slack
                cheapest = min((q for q in QUOTAS if truth[q] <= budget), default=None)
                try:
                    chosen = planner.plan_from_samples(calibrated.samples, budget_s=budget, max_cpus=2.0)
                except aiforge.InvalidInput:
                    outcomes.append({"met": False, "ratio": None, "ape": None})
                    rows.append([entry, f"{n:,}", f"{budget:.1f}", f"{cheapest:g}" if cheapest else "none", "refused",
                                 "-", "-", "no"])
                    print("  ", rows[-1], flush=True)
                    continue
                actual = _run(ws, {**spec, "resources": {"cpus": chosen.cpus}})
                met = actual <= budget
                ratio = chosen.cpus / cheapest if cheapest else None
                ape = abs(chosen.predicted_s - actual) / actual
                outcomes.append({"met": met, "ratio": ratio, "ape": ape})
                rows.append([entry, f"{n:,}", f"{budget:.1f}", f"{cheapest:g}" if cheapest else "none",
                             f"{chosen.cpus:g}", f"{chosen.predicted_s:.1f}", f"{actual:.1f}",
                             "yes" if met else "no"])
                print("  ", rows[-1], flush=True)
    ratios = [o["ratio"] for o in outcomes if o["ratio"] is not None]
    apes = [o["ape"] for o in outcomes if o["ape"] is not None]
    totals = {
        "runs": len(outcomes),
        "met": sum(o["met"] for o in outcomes) / len(outcomes),
        "cpu_ratio_median": statistics.median(ratios) if ratios else None,
        "cpu_ratio_max": max(ratios) if ratios else None,
        "cpu_ratio_mean": float(np.mean(ratios)) if ratios else None,
        "mape": float(np.mean(apes)) if apes else None,
    }
    return rows, totals


def overhead(ws: Any, code: Path, wheel: Path, repeats: int) -> dict[str, float]:
    ref = ws.list_snapshots()[0].ref
    cold_spec = _spec(code, "noop", ref, requirements=[str(wheel)])
    start = time.perf_counter()
    _run(ws, cold_spec)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        _run(ws, cold_spec)
        warm.append(time.perf_counter() - start)
    return {"cold_s": cold, "warm_median_s": statistics.median(warm), "warm_all": warm}


def _wheel(folder: Path) -> Path:
    import base64
    import hashlib
    import zipfile

    files = {"benchpkg/__init__.py": b"X = 1\n",
             "benchpkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: benchpkg\nVersion: 1.0\n",
             "benchpkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n"}
    lines = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
             for name, d in files.items()]
    path = folder / "benchpkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("benchpkg-1.0.dist-info/RECORD", "\n".join([*lines, "benchpkg-1.0.dist-info/RECORD,,"]))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one data size per job (a smoke run)")
    parser.add_argument("--record", action="store_true", help="write the tables into docs/benchmarks.md")
    parser.add_argument("--skip-planner", action="store_true", help="only the overhead")
    parser.add_argument("--slack", type=float, default=1.3,
                        help="each deadline is this times the measured time at 0.5, 1 or 1.75 CPUs (default 1.3)")
    args = parser.parse_args()
    import aiforge

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        ws = aiforge.Workspace(Path(tmp) / "ws")
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "jobs.py").write_text(textwrap.dedent(JOBS), encoding="utf-8")
        sizes = QUICK_SIZES if args.quick else SIZES
        body = ""
        if not args.skip_planner:
            rows, totals = planner_accuracy(ws, code, sizes, args.slack)
            print(json.dumps(totals, indent=2))
            body += markdown_table(["job", "rows", "deadline (s)", "cheapest that met it", "chosen CPUs",
                                    "predicted (s)", "actual (s)", "met"], rows)
            body += (f"\n\nDeadlines: {args.slack:g}x the measured time at 0.5, 1 and 1.75 CPUs. "
                     f"Met the deadline: **{totals['met']:.0%}** of {totals['runs']} runs (goal >= 90 %; a refusal "
                     "counts as a miss). "
                     f"Chosen CPUs / cheapest quota that met it: median **{totals['cpu_ratio_median']:.2f}x**, mean "
                     f"{totals['cpu_ratio_mean']:.2f}x, worst {totals['cpu_ratio_max']:.2f}x (goal <= 1.2x). "
                     f"Predicted vs actual time of the chosen run: MAPE **{totals['mape']:.1%}** (goal <= 20 %).\n\n")
        else:
            _tables(ws, {"noop": (1000,)})
        cost = overhead(ws, code, _wheel(Path(tmp)), repeats=5)
        print(json.dumps(cost, indent=2))
        body += markdown_table(
            ["no-op job to a registered model", "seconds"],
            [["warm environment cache (median of 5)", f"{cost['warm_median_s']:.2f}"],
             ["cold: first run of a new lock (venv + pip install of a local wheel)", f"{cost['cold_s']:.2f}"]],
        )
        body += "\n\nGoal for the warm case: <= 2 s."
        if args.record:
            record("train", body)
        else:
            print(body)


if __name__ == "__main__":
    main()
