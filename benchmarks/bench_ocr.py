"""PopEval speed: the reference sets of issue 5 and synthetic dense pages, against the reference's quoted times.

No pinned environment for the authors' ``popEval.py`` (Python 3.8, numpy 1.19, Shapely 1.7) can be built offline
here, so the anchor is the set of times the issue quotes for it on this 2-core machine: 124 s for IC13
character-level GT against itself, 272 s for IC15, 75 s for one page of 900 boxes. Goals: >= 50x faster, a
10,000-box page under 1 s, memory linear in the number of boxes (peak traced memory per box stays flat).

    python benchmarks/bench_ocr.py [--repeats 3] [--record]
"""

from __future__ import annotations

import argparse
import random
import tracemalloc
from pathlib import Path

from _common import markdown_table, median_time, record

from aiforge.evaluate.ocr import Box, popeval, read_dir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "popeval"
REFERENCE_SECONDS = {"IC13 character-level GT vs itself": 124.0, "IC15 word GT vs itself": 272.0,
                     "one page of 900 boxes": 75.0}


def page(n_boxes: int, seed: int = 0) -> tuple[list[Box], list[Box]]:
    """A dense page: a grid of ``n_boxes`` words and a prediction with one-pixel jitter and one wrong character."""
    rng = random.Random(seed)
    side = max(1, round(n_boxes**0.5))
    gt, pred = [], []
    for k in range(n_boxes):
        i, j = divmod(k, side)
        word = "".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(3, 9)))
        x, y = 60 * i, 12 * j
        gt.append(Box(((x, y), (x + 50, y), (x + 50, y + 10), (x, y + 10)), word))
        pred.append(Box(((x + 1, y + 1), (x + 51, y + 1), (x + 51, y + 11), (x + 1, y + 11)), word[:-1] + "z"))
    return gt, pred


def _fresh(boxes: list[Box]) -> list[Box]:
    # time the polygon building too, as a run on files would
    return [Box(b.points, b.text) for b in boxes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()

    cases: dict[str, tuple[dict[str, list[Box]], dict[str, list[Box]]]] = {}
    chars = read_dir(DATA / "dev-ic13-word-vs-char" / "pred")
    cases["IC13 character-level GT vs itself"] = chars, chars
    ic15 = read_dir(DATA / "gt-pool" / "ic15-word")
    cases["IC15 word GT vs itself"] = ic15, ic15
    for n in (900, 10_000):
        g, p = page(n)
        cases[f"one page of {n} boxes" if n == 900 else f"one page of {n:,} boxes"] = {"page": g}, {"page": p}

    rows = []
    for name, (gt, pred) in cases.items():
        n_boxes = sum(len(v) for v in gt.values())
        seconds, _ = median_time(lambda gt=gt, pred=pred: popeval({k: _fresh(v) for k, v in gt.items()},
                                                                   {k: _fresh(v) for k, v in pred.items()}),
                                 args.repeats)
        ref = REFERENCE_SECONDS.get(name)
        ratio = f"{ref / seconds:,.0f}x (vs quoted {ref:g} s)" if ref else "goal < 1 s"
        rows.append([name, f"{n_boxes:,}", f"{seconds:.3f}", ratio])

    mem_rows = []
    for n in (1_000, 4_000, 16_000):
        g, p = page(n)
        tracemalloc.start()
        popeval(g, p)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        mem_rows.append([f"{n:,}", f"{peak / 2**20:.1f}", f"{peak / n / 1024:.2f}"])

    body = (markdown_table(["set", "GT boxes", "aiforge s (median)", "speed-up"], rows)
            + "\n\nReference times are the ones quoted in issue 5 (no pinned reference environment offline).\n\n"
            + markdown_table(["page boxes", "peak traced MiB", "KiB per box"], mem_rows))
    print(body)
    if args.record:
        record("ocr", body)


if __name__ == "__main__":
    main()
