"""NLP API through the throttling nginx: bulk client (one batch per request) vs one request per row.

Starts the NLP service (uvicorn, in its own process) and a real nginx with ``limit_req`` in front of it, then
tokenizes the same N short texts (Korean and English) two ways through the proxy, both with the client's
limiter set to the proxy's rate and the same concurrency:

- bulk: ``NlpClient(batch_size=B)``, one batch of B texts per request;
- per row: ``NlpClient(batch_size=1)``, one request per text. Capped at ``--row-seconds`` per run; the time
  for all N texts is extrapolated from the measured rows/s (at the proxy's limit its rate is flat).

Reports texts/s (median of ``--repeats`` runs), the bulk/per-row ratio (goal >= 10x), and the request rate
that reached the service against the limit: the average over each run and the busiest 1-second window in
nginx's access log (goal: <= rate + burst).

    python benchmarks/bench_nlp.py [--n 20000] [--rate 200/s] [--burst 50] [--batch 500]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import markdown_table, record

from aiforge.nlp import NginxProxy, NlpClient, parse_rate

KO_SUBJECTS = ["나는", "우리는", "고객이", "학생들이", "연구팀은", "회사는", "친구가", "사용자가"]
KO_OBJECTS = ["학교에", "데이터를", "모델을", "주문을", "문서를", "회의에", "서비스를", "사진을"]
KO_VERBS = ["간다", "분석했다", "학습시킨다", "취소했습니다", "읽었다", "참석한다", "이용합니다", "찍었어요"]
EN_WORDS = [
    *("the", "model", "reads", "a", "short", "review", "about", "fast"),
    *("delivery", "and", "good", "price", "with", "friendly", "support"),
]


def make_texts(n: int, seed: int = 0) -> list[str]:
    """N distinct short texts, about 80% Korean and 20% English, reproducible from ``seed``."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        if i % 5:
            texts.append(f"{rng.choice(KO_SUBJECTS)} {i}번째 {rng.choice(KO_OBJECTS)} {rng.choice(KO_VERBS)}")
        else:
            texts.append(" ".join(rng.sample(EN_WORDS, 6)) + f" {i}")
    return texts


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upstream_requests(url: str) -> int:
    text = httpx.get(url + "/metrics").text
    return int(sum(float(v) for v in re.findall(r"^aiforge_nlp_requests_total\{[^}]*\} (\S+)$", text, re.M)))


def busiest_second(access_log: Path, since: float, until: float) -> int:
    """Most requests nginx passed to the service (status 200) within any 1-second window in [since, until]."""
    stamps = []
    for line in access_log.read_text().splitlines():
        fields = line.split(" ", 3)
        if len(fields) > 3 and fields[1] == "200" and "/v1/tokenize" in fields[3]:
            # $msec is when the response was sent; subtract $request_time to get when nginx let it through
            passed = float(fields[0]) - float(fields[2])
            if since <= passed <= until:
                stamps.append(passed)
    stamps.sort()
    best, j = 0, 0
    for i, stamp in enumerate(stamps):
        while stamps[j] < stamp - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def run_client(
    url: str, texts: list[str], service: str, cap: float | None, **kwargs: object
) -> dict[str, float]:
    """Tokenize ``texts`` (or as many as fit in ``cap`` seconds, in chunks) with a fresh client."""
    before = upstream_requests(service)
    done = 0
    with NlpClient(url, **kwargs) as client:  # type: ignore[arg-type]
        start = time.monotonic()
        wall = time.time()
        chunk = len(texts) if cap is None else 200
        while done < len(texts) and (cap is None or time.monotonic() - start < cap):
            client.tokenize(texts[done : done + chunk])
            done += chunk
        elapsed = time.monotonic() - start
        retries, statuses = client.stats.retries, dict(client.stats.statuses)
    seen = upstream_requests(service) - before
    return {
        "texts": min(done, len(texts)),
        "seconds": elapsed,
        "texts_per_s": min(done, len(texts)) / elapsed,
        "upstream_requests": seen,
        "upstream_rate": seen / elapsed,
        "retries": retries,
        "throttled": statuses.get(429, 0),
        "wall_start": wall,
        "wall_end": wall + elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rate", default="200/s")
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--row-seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    count, unit = parse_rate(args.rate)
    limit = count / (60.0 if unit == "m" else 1.0)
    texts = make_texts(args.n)

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = f"from aiforge.nlp import serve_nlp; serve_nlp('127.0.0.1', {port}, log_level='warning')"
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    service = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # bounded: 60 s for Kiwi to load
            try:
                if httpx.get(service + "/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the NLP service did not become ready")
        with (
            tempfile.TemporaryDirectory() as workdir,
            NginxProxy(service, args.rate, args.burst, free_port(), workdir) as proxy,
        ):
            common = {
                "max_concurrency": args.concurrency,
                "rate": args.rate,
                "burst": args.burst,
                "retries": 20,
            }
            bulk = [
                run_client(proxy.url, texts, service, None, batch_size=args.batch, **common)
                for _ in range(args.repeats)
            ]
            rows = [
                run_client(proxy.url, texts, service, args.row_seconds, batch_size=1, **common)
                for _ in range(args.repeats)
            ]
            peak = {
                name: max(busiest_second(proxy.access_log, r["wall_start"], r["wall_end"]) for r in runs)
                for name, runs in (("bulk", bulk), ("rows", rows))
            }
    finally:
        server.terminate()
        server.wait(timeout=30)

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    bulk_tps, rows_tps = med(bulk, "texts_per_s"), med(rows, "texts_per_s")
    ratio = bulk_tps / rows_tps
    header = ["mode", "texts", "time (s)", "texts/s", "requests at service", "avg req/s", "busiest 1 s",
              "429s retried"]  # fmt: skip
    bulk_row = [
        f"bulk, {args.batch} texts/request", args.n, f"{med(bulk, 'seconds'):.2f}", f"{bulk_tps:,.0f}",
        f"{med(bulk, 'upstream_requests'):.0f}", f"{med(bulk, 'upstream_rate'):.1f}", peak["bulk"],
        f"{sum(r['throttled'] for r in bulk):.0f}",
    ]  # fmt: skip
    per_row = [
        f"per row, 1 text/request (ran {args.row_seconds:.0f} s: {med(rows, 'texts'):.0f} rows)", args.n,
        f"{args.n / rows_tps:.1f} (extrapolated)", f"{rows_tps:,.0f}",
        f"{med(rows, 'upstream_requests'):.0f}", f"{med(rows, 'upstream_rate'):.1f}", peak["rows"],
        f"{sum(r['throttled'] for r in rows):.0f}",
    ]  # fmt: skip
    rates_ok = all(r["upstream_rate"] <= limit for r in bulk + rows)
    within = rates_ok and max(peak.values()) <= limit + args.burst
    body = "\n\n".join(
        [
            f"NLP API (Kiwi) behind nginx `limit_req` at {args.rate}, burst {args.burst}; {args.n:,} short "
            f"texts (80% Korean); client concurrency {args.concurrency} and client limiter at {args.rate} in "
            f"both modes; medians of {args.repeats} runs. The per-row run is capped at "
            f"{args.row_seconds:.0f} s and its time for all {args.n:,} texts is extrapolated from its "
            "measured rows/s (at the proxy's limit its rate is flat).",
            markdown_table(header, [bulk_row, per_row]),
            f"Bulk / per row: **{ratio:.0f}x** texts/s (goal >= 10x). Request rate at the service within the "
            f"limit ({limit:g}/s on average, {limit + args.burst:g} in the busiest second): "
            f"**{'yes' if within else 'NO'}**.",
        ]
    )
    print(body)
    if not args.no_record:
        record("nlp", body)


if __name__ == "__main__":
    main()
