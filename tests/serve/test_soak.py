"""A bounded soak test: 20,000 requests at concurrency 64 through the APS and the inference server, as processes."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import numpy as np
import orjson
import psutil

from aiforge.serve.deploy.export import export_sklearn
from aiforge.serve.deploy.settings import ServeSettings
from aiforge.serve.deploy.stack import up

TOTAL = 20_000
CONCURRENCY = 64
WARM = 4_000  # memory is compared between the end of the warm-up and the end of the run
GROWTH_MIB = 8  # allowed resident-memory growth per server process over the last 16,000 requests


def _ports() -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < 3:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.add(int(sock.getsockname()[1]))
    aps, http, grpc = sorted(ports)
    return {"aps_port": aps, "http_port": http, "grpc_port": grpc}


async def _soak(url: str, bodies: list[bytes], processes: list[psutil.Process]) -> tuple[dict[int, int], list[int],
                                                                                            list[int]]:
    import aiohttp

    statuses: dict[int, int] = {}
    sent = 0
    rss_warm: list[int] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < TOTAL:
            sent += 1
            if sent == WARM:
                rss_warm.extend(p.memory_info().rss for p in processes)
            body = bodies[sent % len(bodies)]
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return statuses, rss_warm, [p.memory_info().rss for p in processes]


def test_20k_requests_at_concurrency_64_no_errors_no_memory_growth(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    export_sklearn(LogisticRegression(max_iter=300).fit(X, y), tmp_path / "models", n_features=64, name="digits")
    bodies = [orjson.dumps({"instances": X[i:i + 1 + i % 3].tolist()}) for i in range(64)]
    settings = ServeSettings(model_repo=tmp_path / "models", model="digits", **_ports())
    with up(settings, log_dir=tmp_path / "logs") as stack:
        processes = [psutil.Process(p.pid) for p in stack.processes]
        statuses, before, after = asyncio.run(_soak(stack.urls["aps"] + "/predict", bodies, processes))
    assert statuses == {200: TOTAL}
    growth_mib = [(b - a) / 2**20 for a, b in zip(before, after, strict=True)]
    assert all(g < GROWTH_MIB for g in growth_mib), growth_mib
