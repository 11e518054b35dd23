"""ANALYZE benchmark: 100M rows in seconds, 1M rows against ydata-profiling (minimal), and report load time.

Run: ``python benchmarks/bench_analyze.py``. The data (about 2.5 GB) is generated once under
benchmarks/.data/. ydata-profiling runs in its own environment, ``.venv-bench`` (gitignored), so that it
never enters aiforge's
dependencies; the script creates it on first use (one-time, needs the package index):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install ydata-profiling pyarrow setuptools

Goals (issue 2): 100M x 6 Parquet in <= 5 s; on 1M rows >= 20x faster than ydata-profiling minimal mode on
the same file in the same run; the 1M-row report loads in headless Chromium in under 2 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _analyze_data import BIG, SMALL, ensure
from _common import markdown_table, median_time, record

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_YDATA = """
import sys, time
start = time.perf_counter()
import pandas as pd
from ydata_profiling import ProfileReport
imported = time.perf_counter()
df = pd.read_parquet(sys.argv[1])
ProfileReport(df, minimal=True, progress_bar=False).to_file(sys.argv[2])
print(imported - start, time.perf_counter() - imported)
"""


def _bench_python() -> Path:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print("creating .venv-bench with ydata-profiling (one-time)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "ydata-profiling", "pyarrow", "setuptools"],
            check=True,
        )
    return python


def _aiforge(path: Path, out: Path) -> None:
    from aiforge import Workspace, analyze

    report = analyze(str(path), label="label")
    report.save(html=out / "report.html", json=out / "stats.json", workspace=Workspace(out / "home"))


def _cli_wall(path: Path, out: Path) -> float:
    """One end-to-end `aiforge analyze` process, imports included."""
    env = {**os.environ, "AIFORGE_HOME": str(out / "home")}
    command = [str(Path(sys.executable).parent / "aiforge"), "analyze", str(path), "--label", "label"]
    start = time.perf_counter()
    subprocess.run([*command, "--out", str(out / "cli.html")], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def _ydata(path: Path, out: Path) -> tuple[float, float]:
    """(wall of the whole subprocess, time inside it from reading the file to the written report)."""
    python = _bench_python()
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), "-c", _YDATA, str(path), str(out / "ydata.html")],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return time.perf_counter() - start, float(done.stdout.strip().splitlines()[-1].split()[1])


def _browser_load(html: Path, repeats: int = 3) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(repeats):
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            start = time.perf_counter()
            page.goto(html.as_uri())
            page.wait_for_function("window.aiforgeReady === true", timeout=60_000)
            times.append(time.perf_counter() - start)
            if errors:
                raise RuntimeError(f"report has JavaScript errors: {errors}")
            page.close()
        browser.close()
    return times


def main() -> None:
    for path, rows in ((SMALL, 1_000_000), (BIG, 100_000_000)):
        ensure(path, rows)
    rows_out: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _aiforge(SMALL, out)  # warm the page cache and imports once, as a user's second run would be
        big, big_times = median_time(lambda: _aiforge(BIG, out), repeats=3)
        cli_times = [_cli_wall(BIG, out) for _ in range(3)]
        cli = statistics.median(cli_times)
        small, small_times = median_time(lambda: _aiforge(SMALL, out), repeats=3)
        small_cli = statistics.median([_cli_wall(SMALL, out) for _ in range(3)])
        small_html = out / "report.html"
        html_size = small_html.stat().st_size
        load = _browser_load(small_html)
        ydata_wall, ydata_inner = _ydata(SMALL, out)
        stats = json.loads((out / "stats.json").read_text())

    size_gb = BIG.stat().st_size / 1e9
    rows_out.append(
        [
            f"analyze 100M x 6 ({size_gb:.1f} GB Parquet), in process",
            f"{big:.2f} s",
            "<= 5 s",
            "met" if big <= 5 else "MISSED",
            ", ".join(f"{t:.2f}" for t in big_times),
        ]
    )
    rows_out.append(
        [
            "`aiforge analyze` 100M x 6, whole CLI process (imports, HTML)",
            f"{cli:.2f} s",
            "<= 5 s",
            "met" if cli <= 5 else "MISSED",
            ", ".join(f"{t:.2f}" for t in cli_times),
        ]
    )
    rows_out.append(
        ["analyze 1M x 6, in process", f"{small:.2f} s", "", "", ", ".join(f"{t:.2f}" for t in small_times)]
    )
    rows_out.append(["`aiforge analyze` 1M x 6, whole CLI process", f"{small_cli:.2f} s", "", "", ""])
    rows_out.append(
        [
            "ydata-profiling minimal 1M x 6 (read + profile + to_file, after imports)",
            f"{ydata_inner:.2f} s",
            "",
            "",
            f"whole process {ydata_wall:.2f} s",
        ]
    )
    ratio = ydata_inner / small
    rows_out.append(
        [
            "speed-up vs ydata-profiling, 1M, work after imports",
            f"{ratio:.0f}x",
            ">= 20x",
            "met" if ratio >= 20 else "MISSED",
            "",
        ]
    )
    rows_out.append(
        ["speed-up vs ydata-profiling, 1M, whole processes", f"{ydata_wall / small_cli:.0f}x", "", "", ""]
    )
    median_load = statistics.median(load)
    rows_out.append(
        [
            f"1M-row report load in headless Chromium ({html_size / 1e6:.1f} MB)",
            f"{median_load:.2f} s",
            "< 2 s",
            "met" if median_load < 2 else "MISSED",
            ", ".join(f"{t:.2f}" for t in load),
        ]
    )
    table = markdown_table(["measure", "median", "goal", "", "runs (s)"], rows_out)
    note = (
        f"\n\nSample: {stats['sample']['rows']:,} rows, seed {stats['sample']['seed']}, "
        f"{stats['sample']['method']}; "
        f"exact row count, missing and min/max from Parquet metadata. Machine: {os.cpu_count()} cores."
    )
    print(table + note)
    record("analyze", table + note)


if __name__ == "__main__":
    main()
