"""Shared by the benchmark scripts: timing with medians, peak memory, and recording tables in docs/benchmarks.md."""

from __future__ import annotations

import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def median_time(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, list[float]]:
    """Run ``fn`` ``repeats`` times; return the median wall time in seconds and all the times."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def record(section: str, body: str) -> None:
    """Replace the ``section`` block of docs/benchmarks.md with ``body``, stamped with the command and machine."""
    command = "python " + " ".join([Path(sys.argv[0]).as_posix().split("/work/main/")[-1], *sys.argv[1:]])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = (
        f"<!-- {section}:start -->\n"
        f"Command: `{command}` ({stamp}; {platform.machine()}, Python {platform.python_version()})\n\n"
        f"{body.strip()}\n"
        f"<!-- {section}:end -->"
    )
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {re.escape(section)}:start -->.*?<!-- {re.escape(section)}:end -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:  # a new section gets its own heading
        text = text.rstrip() + f"\n\n## {section.upper()}\n\n" + block + "\n"
    DOCS.write_text(text, encoding="utf-8")
    print(f"recorded in {DOCS}")
