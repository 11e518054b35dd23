"""The end-to-end demo behind `make demo`: a small warehouse -> a versioned snapshot -> a data report.

It builds a SQLite warehouse from scikit-learn's bundled digits dataset (nothing is downloaded), dumps it into the
workspace (AIFORGE_HOME, default ./.aiforge) and analyzes it. Run it again and the snapshot gets a new version.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiforge


def build_warehouse(path: Path) -> int:
    """Write the digits dataset into a SQLite table ``digits`` (id, 64 pixel columns, label); return its rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        columns = ", ".join(f"{p} INTEGER" for p in pixels)
        conn.execute(f"CREATE TABLE digits (id INTEGER PRIMARY KEY, {columns}, label INTEGER)")
        rows = [(i, *map(int, x), int(y)) for i, (x, y) in enumerate(zip(digits.data, digits.target, strict=True))]
        conn.executemany(f"INSERT INTO digits VALUES ({', '.join('?' * (len(pixels) + 2))})", rows)
    return len(rows)


def main() -> None:
    workspace = aiforge.Workspace()
    warehouse = workspace.home / "demo" / "warehouse.sqlite"
    rows = build_warehouse(warehouse)
    print(f"1. warehouse: {rows} rows of scikit-learn's digits in {warehouse}")

    start = time.perf_counter()
    snapshot = aiforge.dump(
        f"sqlite:///{warehouse}", query="SELECT * FROM digits", name="digits", workspace=workspace
    )
    print(f"2. dump:      {snapshot.ref}, {snapshot.rows} rows x {len(snapshot.columns)} columns "
          f"in {time.perf_counter() - start:.2f} s -> {snapshot.path}")

    start = time.perf_counter()
    report = aiforge.analyze(snapshot, label="label", workspace=workspace)
    html, stats = report.save(workspace=workspace)
    print(f"3. analyze:   {time.perf_counter() - start:.2f} s")
    print("\n" + report.summary_text() + "\n")
    print(f"Report: {html}\nStats:  {stats}")
    print(f"\nSame from the shell: aiforge dump sqlite:///{warehouse} -q 'SELECT * FROM digits' -n digits")
    print(f"                     aiforge analyze {snapshot.ref} --label label --out digits.html")


if __name__ == "__main__":
    main()
