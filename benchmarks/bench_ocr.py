"""PopEval speed against the authors' ``popEval.py``, both run in the same benchmark run on the very same files.

Every set is a pair of folders (GT, predictions) in the reference's own line format. Per set it reports, as the
median of ``--repeats`` runs of each side, interleaved so that both see the same machine load:

- aiforge whole process: ``aiforge ocr-eval GT PRED --json`` as a subprocess (start-up, imports, reading, scoring,
  printing);
- aiforge in process: ``evaluate_dirs(GT, PRED)`` after the imports (reading and scoring);
- reference whole process: ``python popEval.py --gtpath GT --dtpath PRED``, its own command line;
- reference in process: ``papagoEval(gt_files, pred_files, dontcare_text="###")`` timed inside a small wrapper that
  imports ``popEval.py`` first, a fresh process per run (reading and scoring; the reference spreads the images over
  ``os.cpu_count()`` worker processes, aiforge uses one);

and both H-means, since a speed-up between different answers means nothing. The reference runs only when its
interpreter and script are given (``--reference-python/--reference-script`` or the environment variables
``AIFORGE_POPEVAL_PYTHON``/``AIFORGE_POPEVAL_SCRIPT``); otherwise its columns say "not run". Its code is not part of
this repository; build its environment outside it, as the recorded run did (``popEval.py`` at naver/popeval's commit
93a957a, the newest, has the SHA-256 4494eca23c3a767a... that the recorded table names)::

    git clone https://github.com/naver/popeval /tmp/popeval && git -C /tmp/popeval checkout 93a957a
    python3.8 -m venv /tmp/popeval-ref && /tmp/popeval-ref/bin/pip install numpy==1.19.1 Shapely==1.7.0

Goals: whole process >= 50x faster than the reference, a 10,000-box page under 1 s, memory linear in the number of
boxes (peak traced memory per box stays flat).

    python benchmarks/bench_ocr.py [--repeats 3] [--record] [--reference-python PY --reference-script popEval.py]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import markdown_table, record

from aiforge.evaluate.ocr import Box, evaluate_dirs, popeval

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "popeval"
NOT_RUN = "not run"
FLOOR = "one box (the start-up floor)"
GOAL = 50  # whole process, times faster than the reference
#: naver/popeval's newest commit, and the SHA-256 of its popEval.py
REFERENCE_COMMIT, REFERENCE_SHA256 = "93a957a", "4494eca23c3a767a626e9ceec29ee6e17d20fb9096ece21463d47082a77947e2"

# Run by the reference's interpreter: import popEval.py, then time its scoring call on the files the command line
# gives, as its own __main__ would pair them. Prints one JSON line.
_WRAPPER = r"""
import glob, json, os, sys, time
script, gt, pred, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
ref = __import__(os.path.splitext(os.path.basename(script))[0])
gt_files = sorted(glob.glob("%s/*.txt" % gt))
pred_files = sorted(glob.glob("%s/*.txt" % pred))
if len(gt_files) != len(pred_files):
    gt_files, pred_files = ref.make_pair(gt_files, pred_files)
times = []
for _ in range(repeats):
    start = time.perf_counter()
    precision, recall, hmean = ref.papagoEval(gt_files, pred_files, dontcare_text="###")
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "precision": precision, "recall": recall, "hmean": hmean}))
"""


def page(n_boxes: int, seed: int = 0) -> tuple[list[Box], list[Box]]:
    """A synthetic dense page: a grid of ``n_boxes`` words and a prediction with one-pixel jitter and one wrong
    character per word."""
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


def _write_page(root: Path, n_boxes: int) -> tuple[Path, Path]:
    """The synthetic page as a GT and a prediction folder of one file each, in the reference's line format."""
    gt, pred = page(n_boxes)
    folders = root / "gt", root / "pred"
    for folder, boxes in zip(folders, (gt, pred), strict=True):
        folder.mkdir(parents=True)
        lines = (" ".join(f"{x:g} {y:g}" for x, y in b.points) + f"##::{b.text}\n" for b in boxes)
        (folder / "page.txt").write_text("".join(lines), encoding="utf-8")
    return folders


def _aiforge_command() -> list[str]:
    script = Path(sys.executable).with_name("aiforge")  # the console script a user runs
    return [str(script)] if script.exists() else [sys.executable, "-c", "from aiforge.cli import main; main()"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # ended children, with the children they waited for
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str]) -> tuple[float, float, str]:
    """Run ``command``; its wall seconds, CPU seconds (user + system, its worker processes included), stdout."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, cpu, done.stdout


def _aiforge_whole(gt: Path, pred: Path) -> tuple[float, float, float]:
    seconds, cpu, out = _timed([*_aiforge_command(), "ocr-eval", str(gt), str(pred), "--json"])
    return seconds, cpu, json.loads(out)["popeval"]["hmean"]


def _reference_whole(python: str, script: str, gt: Path, pred: Path) -> tuple[float, float, float]:
    seconds, cpu, out = _timed([python, script, "--gtpath", str(gt), "--dtpath", str(pred)])
    match = re.search(r"precision, recall, H:\s*\n\s*([\d.]+), ([\d.]+), ([\d.]+)", out)
    if match is None:  # the reference prints its per-image failures and carries on; its totals are then wrong
        raise RuntimeError(f"the reference printed no totals:\n{out[-2000:]}")
    if "Traceback" in out:
        raise RuntimeError(f"the reference failed on some images:\n{out[-2000:]}")
    return seconds, cpu, float(match.group(3)) / 100  # it prints percentages with one decimal


def _reference_inner(python: str, script: str, gt: Path, pred: Path) -> tuple[float, float]:
    """One run of the reference's scoring call, timed inside a fresh process after its imports."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(_WRAPPER)
    try:
        _, _, out = _timed([python, handle.name, script, str(gt), str(pred), "1"])
    finally:
        os.unlink(handle.name)
    if "Traceback" in out:
        raise RuntimeError(f"the reference failed on some images:\n{out[-2000:]}")
    payload = json.loads(out.strip().splitlines()[-1])
    return payload["times"][0], payload["hmean"]


def _reference_environment(python: str, script: str) -> tuple[str, str]:
    """What the reference ran on: which ``popEval.py`` (by its SHA-256), and the interpreter, numpy, Shapely and GEOS
    versions."""
    probe = ("import sys, numpy, shapely; from shapely import geos; "
             "print('Python %d.%d.%d' % sys.version_info[:3], 'numpy ' + numpy.__version__, "
             "'Shapely ' + shapely.__version__, 'GEOS ' + geos.geos_version_string.split('-')[0], sep=', ')")
    _, _, versions = _timed([python, "-c", probe])
    digest = hashlib.sha256(Path(script).read_bytes()).hexdigest()
    which = "the one of commit" if digest == REFERENCE_SHA256 else "NOT the one of commit"
    return f"`popEval.py` with SHA-256 {digest[:16]}..., {which} {REFERENCE_COMMIT}", versions.strip()


def _aiforge_inner(gt: Path, pred: Path) -> tuple[float, float]:
    start = time.perf_counter()
    result = evaluate_dirs(gt, pred)
    return time.perf_counter() - start, result.popeval.hmean


def _n_boxes(folder: Path) -> int:
    return sum(sum(1 for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
               for p in folder.glob("*.txt"))


def _ratio(ref: float | None, ours: float) -> str:
    return f"{ref / ours:,.1f}x" if ref is not None else NOT_RUN


def _seconds(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else NOT_RUN


def _goals(meds: dict[str, dict[str, float | None]]) -> str:
    """The whole-process goal, set by set, and what aiforge's start-up alone costs, from this run's medians."""
    scored = {name: m for name, m in meds.items() if name != FLOOR and m["ref_whole"] and m["whole"]}
    if not scored:
        return ""
    lines = [f"Goal: the whole process >= {GOAL}x faster than the reference. "
             + "; ".join(f"{name}: {m['ref_whole'] / m['whole']:,.1f}x wall, {m['ref_cpu'] / m['cpu']:,.1f}x CPU "
                         f"({'met' if m['ref_whole'] / m['whole'] >= GOAL else 'not met'})"
                         for name, m in scored.items()) + "."]
    floor = meds.get(FLOOR)
    if floor and floor["whole"] and floor["cpu"]:
        need = "; ".join(f"{name}: {m['ref_whole'] / GOAL:.2f} s wall, {m['ref_cpu'] / GOAL:.2f} s CPU"
                         for name, m in scored.items())
        lines.append(
            f"aiforge's start-up floor, `aiforge ocr-eval` on one box, took {floor['whole']:.2f} s wall and "
            f"{floor['cpu']:.2f} s CPU in this run: Python, typer and pydantic (the command is generated from the "
            "stage's pydantic spec, and typer parses options with pydantic), numpy and Shapely, before a file is "
            f"read. {GOAL}x would leave the whole process at most {need}."
        )
    return "\n\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per set; the median is reported")
    parser.add_argument("--record", action="store_true", help="write the tables into docs/benchmarks.md")
    parser.add_argument("--reference-python", default=os.environ.get("AIFORGE_POPEVAL_PYTHON"),
                        help="interpreter of the reference environment (Python 3.8, numpy 1.19.1, Shapely 1.7.0)")
    parser.add_argument("--reference-script", default=os.environ.get("AIFORGE_POPEVAL_SCRIPT"),
                        help="the authors' popEval.py (naver/popeval)")
    parser.add_argument("--reference-max-boxes", type=int, default=1_000,
                        help="skip the reference on synthetic pages larger than this (minutes per 1,000 boxes)")
    parser.add_argument("--page-repeats", type=int, default=1,
                        help="runs of each side on the synthetic pages (the reference takes minutes on one)")
    parser.add_argument("--only", default="", help="only the sets whose name contains this text")
    args = parser.parse_args()
    ref_python, ref_script = args.reference_python, args.reference_script
    if bool(ref_python) != bool(ref_script):
        parser.error("give both --reference-python and --reference-script, or neither")
    with_reference = bool(ref_python)

    scratch = Path(tempfile.mkdtemp(prefix="bench_ocr_"))
    try:
        # set -> (GT folder, prediction folder, whether the reference runs on it, runs of each side)
        sets: dict[str, tuple[Path, Path, bool, int]] = {
            "IC13 character-level GT vs itself": (*(DATA / "dev-ic13-word-vs-char" / "pred",) * 2, True, args.repeats),
            "IC15 word GT vs itself": (*(DATA / "gt-pool" / "ic15-word",) * 2, True, args.repeats),
        }
        for n in (1, 900, 10_000):
            gt, pred = _write_page(scratch / str(n), n)
            name = "one box (the start-up floor)" if n == 1 else f"synthetic grid page of {n:,} boxes"
            sets[name] = gt, pred, n <= args.reference_max_boxes, args.repeats if n == 1 else args.page_repeats
        sets = {name: v for name, v in sets.items() if args.only.lower() in name.lower()}
        rows, cpu_rows, answers, raw, meds = [], [], [], {}, {}
        _aiforge_whole(*next(iter(sets.values()))[:2])  # warm the file cache and the bytecode once, untimed
        for name, (gt, pred, ref_too, repeats) in sets.items():
            ref_too = ref_too and with_reference
            whole, ref_whole, inner, ref_inner, cpu, ref_cpu = [], [], [], [], [], []
            hmeans: dict[str, set[float]] = {"aiforge": set(), "reference": set(), "reference printed": set()}
            for _ in range(repeats):  # interleaved: both sides see the same load
                seconds, used, h = _aiforge_whole(gt, pred)
                whole.append(seconds)
                cpu.append(used)
                hmeans["aiforge"].add(h)
                seconds, h = _aiforge_inner(gt, pred)
                inner.append(seconds)
                hmeans["aiforge"].add(h)
                if ref_too:
                    seconds, used, h = _reference_whole(ref_python, ref_script, gt, pred)
                    ref_whole.append(seconds)
                    ref_cpu.append(used)
                    hmeans["reference printed"].add(h)
                    seconds, h = _reference_inner(ref_python, ref_script, gt, pred)
                    ref_inner.append(seconds)
                    hmeans["reference"].add(h)
            ref_h = ref_h_printed = None
            if ref_too:
                ref_h = hmeans["reference"].pop() if len(hmeans["reference"]) == 1 else None
                printed = hmeans["reference printed"]
                ref_h_printed = printed.pop() if len(printed) == 1 else None
            ours_h = hmeans["aiforge"].pop() if len(hmeans["aiforge"]) == 1 else None
            agree = (ours_h is not None and ref_h is not None and ref_h_printed is not None
                     and abs(ours_h - ref_h) < 1e-9 and round(100 * ours_h, 1) == round(100 * ref_h_printed, 1))
            med = {key: statistics.median(v) if v else None for key, v in
                   (("whole", whole), ("inner", inner), ("ref_whole", ref_whole), ("ref_inner", ref_inner),
                    ("cpu", cpu), ("ref_cpu", ref_cpu))}
            meds[name] = med
            raw[name] = {"aiforge whole": whole, "aiforge in-process": inner, "reference whole": ref_whole,
                         "reference in-process": ref_inner, "aiforge whole CPU": cpu, "reference whole CPU": ref_cpu}
            cpu_rows.append([name, _seconds(med["cpu"]), _seconds(med["ref_cpu"]),
                             _ratio(med["ref_cpu"], med["cpu"]) if med["cpu"] else NOT_RUN])
            rows.append([name, f"{_n_boxes(gt):,}", repeats, _seconds(med["whole"]), _seconds(med["inner"]),
                         _seconds(med["ref_whole"]), _seconds(med["ref_inner"]),
                         _ratio(med["ref_whole"], med["whole"]) if med["whole"] else NOT_RUN,
                         _ratio(med["ref_inner"], med["inner"]) if med["inner"] else NOT_RUN])
            answers.append([name, repr(ours_h) if ours_h is not None else "differs between runs",
                            repr(ref_h) if ref_h is not None else NOT_RUN,
                            f"{100 * ref_h_printed:.1f}" if ref_h_printed is not None else NOT_RUN,
                            "yes" if agree else ("-" if ref_h is None else "**NO**")])
            print(f"{name}: {json.dumps(raw[name])}", file=sys.stderr)
            if ref_h is not None and not agree:
                print(f"WARNING: {name}: aiforge H {ours_h!r}, reference H {ref_h!r}: different answers",
                      file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    mem_rows = []
    for n in (1_000, 4_000, 16_000):
        g, p = page(n)
        tracemalloc.start()
        popeval(g, p)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        mem_rows.append([f"{n:,}", f"{peak / 2**20:.1f}", f"{peak / n / 1024:.2f}"])

    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    if with_reference:
        script, versions = _reference_environment(ref_python, ref_script)
        environment = (
            f"Reference: the authors' {script} of naver/popeval (Apache-2.0), run by {versions} in a virtual "
            "environment outside this repository, which does not hold its code. Built with "
            f"`git clone https://github.com/naver/popeval && git -C popeval checkout {REFERENCE_COMMIT}` and "
            "`python3.8 -m venv popeval-ref && popeval-ref/bin/pip install numpy==1.19.1 Shapely==1.7.0`. It scores "
            f"the images in `os.cpu_count()` worker processes, aiforge in one. Sets above "
            f"{args.reference_max_boxes:,} boxes are not given to it (minutes per 1,000 boxes)."
        )
    else:
        environment = "Reference: not run (no --reference-python/--reference-script given)."
    goals = _goals(meds)
    body = (
        environment + "\n\n"
        +         markdown_table(["set", "GT boxes", "runs", "aiforge whole process s", "aiforge in-process s",
                        "reference whole process s", "reference in-process s", "speed-up whole process",
                        "speed-up in-process"], rows)
        + "\n\nMedians of the runs of each side, interleaved; load average (1/5/15 min) when "
        f"the run ended: {load} on {os.cpu_count()} CPUs. CPU seconds (user + system) of the same whole-process "
        "runs, the reference's worker processes included, which the load inflates less than wall time:\n\n"
        + markdown_table(["set", "aiforge CPU s", "reference CPU s", "CPU ratio"], cpu_rows)
        + "\n\nThe answers:\n\n"
        + markdown_table(["set", "aiforge H", "reference H (in-process)", "reference H printed (%)", "same answer"],
                         answers)
        + "\n\n"
        + markdown_table(["page boxes", "peak traced MiB", "KiB per box"], mem_rows)
        + (f"\n\n{goals}" if goals else "")
    )
    print(body)
    if args.record:
        record("ocr", body)


if __name__ == "__main__":
    main()
