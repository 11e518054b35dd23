"""capacity(): the sweep against a real server whose service rate is capped (one request at a time, 5 ms each, so
~200 req/s), the replica arithmetic, SLOs that cannot be met, the plot, bad input and the CLI. No timing is asserted
tightly: the machine is small and shared."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import aiforge.serve.sizing.planner as capacity_module
from aiforge.cli import app
from aiforge.errors import InvalidInput
from aiforge.serve.sizing.planner import CapacityPlan, capacity, write_plot
from conftest import BackgroundHTTPServer

runner = CliRunner()
STEP_S = 0.5


class Server(BackgroundHTTPServer):
    """/ok answers at once; /limited sleeps 5 ms holding a one-slot semaphore; /slow sleeps 5 ms; ``failing``
    turns every answer into a 500."""

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0
        self.failing = False
        self.one_at_a_time = asyncio.Semaphore(1)

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        self.hits += 1
        await request.read()
        if self.failing:
            return web.Response(status=500)
        if request.path == "/limited":
            async with self.one_at_a_time:
                await asyncio.sleep(0.005)
        elif request.path == "/slow":
            await asyncio.sleep(0.005)
        return web.Response(body=b'{"y": 1}')


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


def check_arithmetic(plan: CapacityPlan) -> None:
    """The recommendation follows from the plan's own numbers."""
    assert plan.max_qps_per_replica is not None and plan.replicas is not None
    assert plan.max_qps_per_replica == max(p.offered_rps for p in plan.points if p.within_slo)
    assert plan.replicas == max(1, math.ceil(plan.target_qps / (plan.max_qps_per_replica * plan.headroom)))
    assert plan.cpus == plan.replicas * plan.cpus_per_replica
    assert plan.reason is None


def test_sweep_finds_the_capacity_of_a_one_at_a_time_server(server: Server, tmp_path: Path) -> None:
    plot = tmp_path / "plots" / "capacity.html"
    plan = capacity(f"{server.url}/limited", {"x": [1.0]}, slo_p99_ms=100, target_qps=1000, step_s=STEP_S,
                    cpus_per_replica=2, plot=plot)
    check_arithmetic(plan)
    assert plan.max_qps_per_replica is not None and 20 <= plan.max_qps_per_replica <= 400  # ~200 when idle
    assert plan.limited_by in ("p99", "errors", "throughput")
    assert 2 <= len(plan.points) <= 8
    assert any(not p.within_slo for p in plan.points)
    assert all(p.verdict == "ok" for p in plan.points if p.within_slo)
    assert set(plan.probes) == {"concurrency_1", "concurrency_16"}
    html = plot.read_text()
    assert "plotly" in html
    assert "SLO 100 ms" in html
    assert len(html) > 1_000_000  # plotly.js is embedded: the page works offline
    json.dumps(plan.to_dict())  # JSON-able


def test_max_qps_caps_the_sweep(server: Server) -> None:
    plan = capacity(f"{server.url}/limited", b"{}", slo_p99_ms=200, target_qps=100, step_s=STEP_S, max_qps=50)
    # it starts at half the probed service rate (or the cap) and doubles up to the cap, where it stops
    assert plan.points[-1].offered_rps == 50
    assert all(p.within_slo for p in plan.points)
    assert (plan.max_qps_per_replica, plan.limited_by, plan.replicas, plan.cpus) == (50, "max_qps", 3, 3.0)
    check_arithmetic(plan)


def test_an_slo_below_one_request_alone_cannot_be_met(server: Server) -> None:
    plan = capacity(f"{server.url}/slow", b"{}", slo_p99_ms=1, target_qps=100, step_s=STEP_S)
    assert (plan.replicas, plan.cpus, plan.max_qps_per_replica, plan.points) == (None, None, None, [])
    assert plan.reason is not None
    assert plan.reason.startswith("p99 latency is ")
    assert plan.reason.endswith(
        " ms with one request at a time, above the SLO of 1 ms, so one replica cannot meet it at any load; make a "
        "request faster or relax the SLO"
    )


def test_a_server_failing_under_load_gives_no_plan(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fail_after_the_probes(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        server.failing = len(calls) > 2
        return real(*args, **kwargs)

    real = capacity_module.loadtest
    monkeypatch.setattr(capacity_module, "loadtest", fail_after_the_probes)
    try:
        plan = capacity(f"{server.url}/ok", b"{}", slo_p99_ms=100, target_qps=100, step_s=STEP_S)
    finally:
        server.failing = False
    assert (plan.replicas, plan.max_qps_per_replica, plan.limited_by) == (None, None, None)
    assert plan.points and all(p.verdict == "errors 100.00% > 0.1%" for p in plan.points)
    rates = [p.offered_rps for p in plan.points]
    assert rates == sorted(rates, reverse=True)  # it backs off: each rate a quarter of the one before
    assert plan.reason == (
        f"every rate tried missed the SLO, the lowest ({rates[-1]:,.1f} req/s) with errors 100.00% > 0.1%; one "
        "replica cannot meet it under open-loop load: make a request faster or relax the SLO"
    )


def test_a_dead_server_gives_no_plan(server: Server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    plan = capacity(f"http://127.0.0.1:{port}/", b"{}", slo_p99_ms=100, target_qps=100, step_s=0.2)
    assert plan.replicas is None
    requests = plan.probes["concurrency_1"]["requests"] + plan.probes["concurrency_16"]["requests"]
    assert plan.reason == (
        f"no request succeeded while probing (connection {requests:,}); check the URL, payload and server"
    )
    assert plan.points == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slo_p99_ms": 0}, "slo_p99_ms must be a number with 0 < slo_p99_ms < inf; got 0"),
        ({"target_qps": -5}, "target_qps must be a number with 0 < target_qps < inf; got -5"),
        ({"step_s": 0.0}, "step_s must be a number with 0 < step_s < inf; got 0.0"),
        ({"cpus_per_replica": float("inf")}, "cpus_per_replica must be a number with 0 < cpus_per_replica < inf; "
                                             "got inf"),
        ({"headroom": 1.5}, "headroom must be a number with 0 < headroom <= 1; got 1.5"),
        ({"max_qps": 0}, "max_qps must be a positive number or None; got 0"),
        ({"plot": "curve.svg"}, "plot must be a .html file (or .png with kaleido installed), got 'curve.svg'"),
    ],
)
def test_bad_arguments_are_refused_before_any_load(server: Server, kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"slo_p99_ms": 10, "target_qps": 100} | kwargs
    before = server.hits
    with pytest.raises(InvalidInput) as info:
        capacity(f"{server.url}/ok", b"{}", **arguments)
    assert str(info.value) == message
    assert server.hits == before


def test_png_needs_kaleido() -> None:
    try:  # kaleido is not a dependency; skip if someone installed it
        import kaleido  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("kaleido is installed")
    plan = CapacityPlan(url="http://x/", slo_p99_ms=10, target_qps=1, headroom=0.8, cpus_per_replica=1, points=[],
                        max_qps_per_replica=None, replicas=None, cpus=None, reason="r")
    with pytest.raises(InvalidInput) as info:
        write_plot(plan, "curve.png")
    assert str(info.value) == (
        "writing the plot as PNG (curve.png) needs the kaleido package, which is not installed; pip install kaleido, "
        "or give a .html path"
    )


def test_table_caption_says_the_recommendation() -> None:
    from rich.console import Console

    from aiforge.serve.sizing.planner import CapacityPoint

    point = CapacityPoint(offered_rps=100, achieved_rps=99.5, p50=2, p90=3, p99=4, error_rate=0, within_slo=True,
                          verdict="ok")
    plan = CapacityPlan(url="http://x/", slo_p99_ms=10, target_qps=500, headroom=0.8, cpus_per_replica=2,
                        points=[point], max_qps_per_replica=100, replicas=7, cpus=14, limited_by="p99")
    console = Console(width=200, record=True)
    console.print(plan.table())
    text = " ".join(console.export_text().split())  # the caption wraps to the table's width
    assert "max 100.0 req/s per replica within the SLO (limited by p99); for 500 req/s at 80% headroom: 7 " \
           "replica(s), 14 CPU(s)" in text
    assert "99.5" in text


def test_cli_json_and_table(server: Server, tmp_path: Path) -> None:
    payload = tmp_path / "request.json"
    payload.write_text('{"x": [1.0]}')
    args = ["capacity", f"{server.url}/limited", "--payload", str(payload), "--slo-p99-ms", "200", "--target-qps",
            "100", "--step-s", str(STEP_S), "--max-qps", "40", "--cpus-per-replica", "0.5"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"points", "max_qps_per_replica", "replicas", "cpus", "slo_p99_ms", "target_qps", "reason"} <= set(data)
    assert (data["max_qps_per_replica"], data["replicas"], data["cpus"]) == (40, 4, 2.0)
    plot = tmp_path / "c.html"
    result = runner.invoke(app, [*args, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "for 100 req/s at 80% headroom: 4 replica(s), 2 CPU(s)" in " ".join(result.stdout.split())
    assert result.stdout.endswith(f"Plot: {plot}\n")
    assert plot.exists()
    result = runner.invoke(app, [*args, "--plot", str(tmp_path / "c.pdf")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: plot must be a .html file")
    result = runner.invoke(app, ["capacity", "--help"])
    assert "Example: aiforge capacity" in result.output


def test_a_plan_without_points_still_plots_its_reason(tmp_path: Path) -> None:
    plan = CapacityPlan(url="http://x/", slo_p99_ms=10, target_qps=1, headroom=0.8, cpus_per_replica=1, points=[],
                        max_qps_per_replica=None, replicas=None, cpus=None, reason="too slow")
    path = write_plot(plan, tmp_path / "empty.html")
    assert path == tmp_path / "empty.html"
    assert "SLO cannot be met: too slow" in path.read_text()


def test_the_plot_is_written_to_the_path_the_user_names(tmp_path: Path) -> None:
    plan = CapacityPlan(url="http://x/", slo_p99_ms=10, target_qps=1, headroom=0.8, cpus_per_replica=1, points=[],
                        max_qps_per_replica=None, replicas=None, cpus=None, reason="too slow")
    target = tmp_path / "site" / "capacity.html"
    target.parent.mkdir()
    link = tmp_path / "latest.html"
    link.symlink_to(target)
    assert write_plot(plan, link) == link
    assert link.is_symlink() and "SLO cannot be met: too slow" in target.read_text()
    # a regular file is replaced whole, never truncated and rewritten under a reader's feet
    plain = tmp_path / "plain.html"
    plain.write_text("old")
    with plain.open() as reader:
        write_plot(plan, plain)
        assert reader.read() == "old"
    assert "too slow" in plain.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.html", "plain.html", "site"]
