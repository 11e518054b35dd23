"""Commands: loadtest (throughput, latency percentiles and errors of an HTTP endpoint) and capacity (the highest QPS
one replica sustains within a p99 SLO, and the replicas and CPUs a target QPS needs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiforge.cli._app import app, print_json
from aiforge.errors import ServiceError

PayloadOption = Annotated[
    Path | None,
    typer.Option("--payload", "-p", help="File with the request body, sent as is (JSON when it starts with { or [)."),
]
HeaderOption = Annotated[
    list[str] | None, typer.Option("--header", "-H", help="Extra request header 'Name: value' (repeatable).")
]
MethodOption = Annotated[str, typer.Option("--method", "-X", help="HTTP method.")]


@app.command("loadtest")
def loadtest_command(
    url: Annotated[str, typer.Argument(help="The endpoint, e.g. http://127.0.0.1:8000/predict.")],
    payload: PayloadOption = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Closed loop: N clients sending back to back.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", "-r", help="Open loop: requests per second on a fixed schedule (latency counts from "
                                          "the scheduled time)."),
    ] = None,
    duration: Annotated[float, typer.Option("--duration", "-d", help="Seconds of measured load.")] = 10.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before a request counts as a timeout.")] = 5.0,
    header: HeaderOption = None,
    warmup: Annotated[float, typer.Option("--warmup", help="Seconds of load sent first and not counted.")] = 0.0,
    method: MethodOption = "POST",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Load an HTTP endpoint: throughput, p50/p90/p99/max latency and errors by kind.

    Give exactly one of --concurrency and --rate. Exits with code 1 when no request succeeded (after printing the
    result); otherwise 0, even with some errors: read the error rows.

    Example: aiforge loadtest http://127.0.0.1:8000/predict --payload request.json --concurrency 16 --duration 10
    """
    from aiforge.serve.sizing.load import loadtest, parse_headers

    result = loadtest(
        url, payload, concurrency=concurrency, rate=rate, duration_s=duration, timeout_s=timeout,
        headers=parse_headers(header), warmup_s=warmup, progress=not as_json, method=method,
    )
    if as_json:
        print_json(result.to_dict())
    else:
        from rich.console import Console

        Console().print(result.table())
    if result.requests and not result.ok:
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in result.errors.items())
        raise ServiceError(
            f"none of the {result.requests:,} requests to {url} succeeded ({kinds}); check that the server is up and "
            "the URL, method and payload are right"
        )


@app.command("capacity")
def capacity_command(
    url: Annotated[str, typer.Argument(help="The endpoint of ONE replica, e.g. http://127.0.0.1:8000/predict.")],
    slo_p99_ms: Annotated[float, typer.Option("--slo-p99-ms", help="The latency objective: p99 in milliseconds.")],
    target_qps: Annotated[float, typer.Option("--target-qps", help="Requests per second the deployment must serve.")],
    payload: PayloadOption = None,
    step_s: Annotated[float, typer.Option("--step-s", help="Seconds of load per step of the sweep.")] = 5.0,
    cpus_per_replica: Annotated[
        float, typer.Option("--cpus-per-replica", help="CPUs the measured replica has.")
    ] = 1.0,
    headroom: Annotated[
        float, typer.Option("--headroom", help="Run replicas at this fraction of their measured capacity.")
    ] = 0.8,
    max_qps: Annotated[float | None, typer.Option("--max-qps", help="Never offer more than this rate.")] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write the latency/throughput curves here (.html; .png needs kaleido)."),
    ] = None,
    header: HeaderOption = None,
    method: MethodOption = "POST",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Find the highest QPS one replica sustains within a p99 SLO, and the replicas and CPUs for a target QPS.

    Sweeps open-loop rates (about 8 steps of --step-s seconds each). When the SLO cannot be met even at the lightest
    load, the plan says why, with no replica count.

    Example: aiforge capacity http://127.0.0.1:8000/predict --payload request.json --slo-p99-ms 50 --target-qps 2000
    """
    from aiforge.serve.sizing.load import parse_headers
    from aiforge.serve.sizing.planner import capacity

    plan = capacity(
        url, payload, slo_p99_ms=slo_p99_ms, target_qps=target_qps, step_s=step_s, cpus_per_replica=cpus_per_replica,
        headroom=headroom, max_qps=max_qps, plot=plot, progress=not as_json, headers=parse_headers(header),
        method=method,
    )
    if as_json:
        print_json(plan.to_dict())
        return
    from rich.console import Console

    Console().print(plan.table())
    if plot is not None:
        typer.echo(f"Plot: {plot}")
