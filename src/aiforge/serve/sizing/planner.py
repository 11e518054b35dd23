"""Capacity planning: find the highest request rate one replica sustains within a p99 latency SLO, and size a
deployment for a target QPS.

The sweep uses the open loop of :func:`~aiforge.serve.loadtest` (requests on a fixed schedule, latency from
the scheduled time), because a closed loop slows down with the server and so never shows the queue that builds up
past saturation. Two short closed-loop probes (concurrency 1 and 16) first estimate the service rate, so the sweep
starts near the answer; then the rate doubles until a step fails, and bisects between the best good and the first
bad rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiforge import reprs
from aiforge.errors import InvalidInput, WorkspaceError
from aiforge.progress import progress as progress_bar
from aiforge.serve.sizing.load import LoadTestResult, Payload, loadtest
from aiforge.validation import Interval, validate_params
from aiforge.workspace import write_output

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["CapacityPlan", "CapacityPoint", "capacity", "write_plot"]

MAX_ERROR_RATE = 0.001
"""A step with more failed requests than this (0.1%) is over capacity."""
MIN_ACHIEVED = 0.95
"""A step that answers less than this fraction of the offered rate is over capacity."""
_MAX_STEPS = 8
_RESOLUTION = 1.05  # stop bisecting once the first bad rate is within 5% of the best good one
_FINITE_POSITIVE = Interval(Real, 0, math.inf, closed="neither")
_CONSTRAINTS: dict[str, list[Any]] = {
    "slo_p99_ms": [_FINITE_POSITIVE],
    "target_qps": [_FINITE_POSITIVE],
    "step_s": [_FINITE_POSITIVE],
    "cpus_per_replica": [_FINITE_POSITIVE],
    "headroom": [Interval(Real, 0, 1, closed="right")],
    "max_qps": [Interval(Real, 0, None, closed="neither"), None],
}


@dataclass
class CapacityPoint:
    """One open-loop step of the sweep. Latencies in milliseconds (None when no request succeeded)."""

    offered_rps: float
    achieved_rps: float
    p50: float | None
    p90: float | None
    p99: float | None
    error_rate: float
    within_slo: bool
    verdict: str


@dataclass
class CapacityPlan:
    """The sweep and what it recommends.

    Attributes
    ----------
    points : list of CapacityPoint
        Every open-loop step, in the order they ran.
    max_qps_per_replica : float or None
        The highest offered rate that stayed within the SLO; None when none did.
    replicas : int or None
        ``ceil(target_qps / (max_qps_per_replica * headroom))``; None when the SLO cannot be met (see ``reason``).
    cpus : float or None
        ``replicas * cpus_per_replica``.
    limited_by : str or None
        What stopped the sweep above ``max_qps_per_replica``: ``"p99"``, ``"errors"``, ``"throughput"`` (the server
        fell behind), ``"max_qps"`` (the cap given) or ``"steps"`` (still good at the last step: a lower bound).
    reason : str or None
        Why no plan could be made, in words.
    probes : dict
        The closed-loop probes, ``{"concurrency_1": {...}, "concurrency_16": {...}}`` (LoadTestResult dicts).
    """

    url: str
    slo_p99_ms: float
    target_qps: float
    headroom: float
    cpus_per_replica: float
    points: list[CapacityPoint]
    max_qps_per_replica: float | None
    replicas: int | None
    cpus: float | None
    limited_by: str | None = None
    reason: str | None = None
    probes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The plan as a JSON-able dict."""
        return asdict(self)

    def _repr_html_(self) -> str:
        """A compact summary for Jupyter: the recommendation, then one row per step (sorted by offered rate)."""
        if self.replicas is None:
            facts: list[tuple[str, object]] = [("plan", f"SLO cannot be met: {self.reason}")]
        else:
            facts = [("replicas", self.replicas), ("CPUs", f"{self.cpus:g} ({self.cpus_per_replica:g} per replica)"),
                     ("max per replica", f"{self.max_qps_per_replica:,.1f} req/s (limited by {self.limited_by})")]
        facts += [("target", f"{self.target_qps:,g} req/s at {100 * self.headroom:.0f}% headroom")]
        steps = sorted(self.points, key=lambda p: p.offered_rps)
        rows = ((f"{p.offered_rps:,.1f}", f"{p.achieved_rps:,.1f}", _ms(p.p50), _ms(p.p99),
                 f"{100 * p.error_rate:.2f}%", p.verdict) for p in steps)
        table = reprs.table(("offered req/s", "achieved req/s", "p50 ms", "p99 ms", "errors", "verdict"), rows,
                            total=len(steps), noun="steps")
        return reprs.summary(f"Capacity of {self.url} (SLO p99 <= {self.slo_p99_ms:g} ms)", facts, table)

    def table(self) -> Table:
        """A rich table: one row per step (sorted by offered rate), the recommendation as the caption."""
        from rich.table import Table

        table = Table(title=f"Capacity of {self.url} (SLO p99 <= {self.slo_p99_ms:g} ms)")
        for name in ("offered req/s", "achieved req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "verdict"):
            table.add_column(name, justify="left" if name == "verdict" else "right")
        for p in sorted(self.points, key=lambda p: p.offered_rps):
            table.add_row(
                f"{p.offered_rps:,.1f}", f"{p.achieved_rps:,.1f}", _ms(p.p50), _ms(p.p90), _ms(p.p99),
                f"{100 * p.error_rate:.2f}%", p.verdict, style=None if p.within_slo else "red",
            )
        if self.replicas is None:
            table.caption = f"SLO cannot be met: {self.reason}"
        else:
            table.caption = (
                f"max {self.max_qps_per_replica:,.1f} req/s per replica within the SLO (limited by {self.limited_by}); "
                f"for {self.target_qps:,g} req/s at {100 * self.headroom:.0f}% headroom: {self.replicas} replica(s), "
                f"{self.cpus:g} CPU(s)"
            )
        return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def capacity(
    url: str,
    payload: Payload,
    *,
    slo_p99_ms: float,
    target_qps: float,
    step_s: float = 5.0,
    cpus_per_replica: float = 1.0,
    headroom: float = 0.8,
    max_qps: float | None = None,
    plot: str | Path | None = None,
    progress: bool = False,
    timeout_s: float | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> CapacityPlan:
    """Sweep open-loop request rates against one replica and recommend replicas and CPUs for ``target_qps``.

    A step is within the SLO when its p99 latency is at most ``slo_p99_ms``, at most 0.1% of its requests failed,
    and the server answered at least 95% of the offered rate (allowing for the last answers arriving up to
    ``slo_p99_ms`` after the step's schedule ends).

    Parameters
    ----------
    url, payload
        As for :func:`~aiforge.serve.loadtest`.
    slo_p99_ms : float
        The latency objective: p99 in milliseconds.
    target_qps : float
        The request rate the deployment must serve.
    step_s : float
        How long each step of the sweep sends load (each probe takes half). Make it at least ~20x the SLO.
    cpus_per_replica : float
        CPUs one replica was given while measured.
    headroom : float
        Plan to run each replica at this fraction of its measured capacity, in (0, 1].
    max_qps : float, optional
        Never offer more than this (the sweep then reports ``limited_by="max_qps"``).
    plot : str or Path, optional
        Write the latency and throughput curves here (see :func:`write_plot`).
    progress : bool
        A progress bar on stderr (when it is a terminal).
    timeout_s : float, optional
        Per-request timeout; default ``max(1, 5 * slo_p99_ms / 1000)``.
    headers : dict, optional
        Extra request headers.
    method : str
        HTTP method.

    Returns
    -------
    CapacityPlan
        When even the lightest load misses the SLO, ``replicas`` and ``cpus`` are None and ``reason`` says why.

    Examples
    --------
    >>> plan = capacity("http://127.0.0.1:8000/predict", {"x": [1.0]}, slo_p99_ms=50, target_qps=2000)  # doctest: +SKIP
    >>> plan.max_qps_per_replica, plan.replicas, plan.cpus  # doctest: +SKIP
    (812.5, 4, 4.0)
    """
    validate_params({"slo_p99_ms": slo_p99_ms, "target_qps": target_qps, "step_s": step_s,
                     "cpus_per_replica": cpus_per_replica, "headroom": headroom, "max_qps": max_qps}, _CONSTRAINTS)
    plot_path = _check_plot_path(plot) if plot is not None else None
    timeout = timeout_s if timeout_s is not None else max(1.0, 5 * slo_p99_ms / 1000)
    common: dict[str, Any] = {"timeout_s": timeout, "headers": headers, "method": method}
    plan = CapacityPlan(url=url, slo_p99_ms=slo_p99_ms, target_qps=target_qps, headroom=headroom,
                        cpus_per_replica=cpus_per_replica, points=[], max_qps_per_replica=None, replicas=None,
                        cpus=None)

    with progress_bar(f"capacity {url}", total=_MAX_STEPS + 2, enabled=progress, unit="steps") as bar:
        single = loadtest(url, payload, concurrency=1, duration_s=step_s / 2, **common)
        bar.advance()
        many = loadtest(url, payload, concurrency=16, duration_s=step_s / 2, warmup_s=min(0.5, step_s / 10), **common)
        bar.advance()
        plan.probes = {"concurrency_1": single.to_dict(), "concurrency_16": many.to_dict()}
        if single.ok == 0 and many.ok == 0:
            errors = {k: single.errors.get(k, 0) + many.errors.get(k, 0) for k in single.errors | many.errors}
            kinds = ", ".join(f"{k} {v:,}" for k, v in errors.items())
            plan.reason = f"no request succeeded while probing ({kinds}); check the URL, payload and server"
            return _finish(plan, plot_path)
        lightest = single.latency_ms["p99"]
        if lightest is not None and lightest > slo_p99_ms:
            plan.reason = (
                f"p99 latency is {lightest:.2f} ms with one request at a time, above the SLO of {slo_p99_ms:g} ms, so "
                "one replica cannot meet it at any load; make a request faster or relax the SLO"
            )
            return _finish(plan, plot_path)

        service_rate = max(many.throughput_rps, single.throughput_rps)
        rate = 0.5 * service_rate if max_qps is None else min(0.5 * service_rate, max_qps)
        min_rate = 20 / step_s  # fewer than ~20 requests per step say nothing about a p99
        good: float | None = None
        bad: float | None = None
        at_cap = False
        for _ in range(_MAX_STEPS):
            point = _step(url, payload, rate, step_s, slo_p99_ms, common)
            plan.points.append(point)
            bar.advance()
            bar.update(description=f"capacity {url}: {rate:,.0f} req/s {point.verdict}")
            if point.within_slo:
                good = rate  # bisection keeps every new rate between the best good and the first bad one
            else:
                bad = rate
            if bad is None:
                if max_qps is not None and rate >= max_qps:
                    at_cap = True
                    break
                rate = 2 * rate if max_qps is None else min(2 * rate, max_qps)
            elif good is None:
                rate /= 4
                if rate < min_rate:
                    break
            elif bad / good <= _RESOLUTION:
                break
            else:
                rate = (good + bad) / 2
        if good is None:
            lowest = min(plan.points, key=lambda p: p.offered_rps)
            plan.reason = (
                f"every rate tried missed the SLO, the lowest ({lowest.offered_rps:,.1f} req/s) with {lowest.verdict}; "
                "one replica cannot meet it under open-loop load: make a request faster or relax the SLO"
            )
            return _finish(plan, plot_path)
        plan.limited_by = _first_failure(plan.points, good) if bad is not None else "max_qps" if at_cap else "steps"
        plan.max_qps_per_replica = good
        plan.replicas = max(1, math.ceil(target_qps / (good * headroom)))
        plan.cpus = plan.replicas * cpus_per_replica
    return _finish(plan, plot_path)


def _step(url: str, payload: Payload, rate: float, step_s: float, slo_p99_ms: float,
          common: dict[str, Any]) -> CapacityPoint:
    result: LoadTestResult = loadtest(url, payload, rate=rate, duration_s=step_s, warmup_s=min(1.0, step_s / 10),
                                      **common)
    lat = result.latency_ms
    p99 = lat["p99"]
    # The last answers of a good step arrive up to ~p99 after the schedule ends; do not count that as falling behind.
    expected = MIN_ACHIEVED * rate * step_s / (step_s + slo_p99_ms / 1000)
    if result.error_rate > MAX_ERROR_RATE:
        verdict = f"errors {100 * result.error_rate:.2f}% > {100 * MAX_ERROR_RATE:g}%"
    elif p99 is None or p99 > slo_p99_ms:
        verdict = f"p99 {p99:.2f} ms > {slo_p99_ms:g} ms" if p99 is not None else "p99 unknown"
    elif result.throughput_rps < expected:
        verdict = f"throughput {result.throughput_rps:,.1f} < {100 * MIN_ACHIEVED:g}% of offered"
    else:
        verdict = "ok"
    return CapacityPoint(
        offered_rps=rate, achieved_rps=result.throughput_rps, p50=lat["p50"], p90=lat["p90"], p99=p99,
        error_rate=result.error_rate, within_slo=verdict == "ok", verdict=verdict,
    )


def _first_failure(points: list[CapacityPoint], good: float) -> str:
    above = [p for p in points if not p.within_slo and p.offered_rps > good]
    return min(above, key=lambda p: p.offered_rps).verdict.split(" ", 1)[0] if above else "steps"


def _finish(plan: CapacityPlan, plot: Path | None) -> CapacityPlan:
    if plot is not None:
        write_plot(plan, plot)
    return plan


def _check_plot_path(path: str | Path) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        try:
            import kaleido  # noqa: F401
        except ImportError as exc:
            raise InvalidInput(
                f"writing the plot as PNG ({path}) needs the kaleido package, which is not installed; "
                "pip install kaleido, or give a .html path"
            ) from exc
    elif suffix != ".html":
        raise InvalidInput(f"plot must be a .html file (or .png with kaleido installed), got {str(path)!r}")
    return path


def write_plot(plan: CapacityPlan, path: str | Path) -> Path:
    """Write the sweep as a self-contained plotly page: p50/p99 latency vs offered load with the SLO line, and
    achieved vs offered throughput.

    Parameters
    ----------
    plan : CapacityPlan
    path : str or Path
        ``.html`` (plotly.js embedded, opens offline), or ``.png`` when the ``kaleido`` package is installed.

    Returns
    -------
    Path
        The file written.
    """
    path = _check_plot_path(path)
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    points = sorted(plan.points, key=lambda p: p.offered_rps)
    offered = [p.offered_rps for p in points]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Latency vs offered load", "Throughput"))
    fig.add_trace(go.Scatter(x=offered, y=[p.p50 for p in points], mode="lines+markers", name="p50"), row=1, col=1)
    fig.add_trace(go.Scatter(x=offered, y=[p.p99 for p in points], mode="lines+markers", name="p99"), row=1, col=1)
    fig.add_hline(y=plan.slo_p99_ms, line_dash="dash", line_color="red", annotation_text=f"SLO {plan.slo_p99_ms:g} ms",
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=offered, y=[p.achieved_rps for p in points], mode="lines+markers", name="achieved"),
                  row=1, col=2)
    fig.add_trace(go.Scatter(x=offered, y=offered, mode="lines", name="offered", line={"dash": "dot"}), row=1, col=2)
    if plan.max_qps_per_replica is not None:
        for col in (1, 2):
            fig.add_vline(x=plan.max_qps_per_replica, line_dash="dot", line_color="green", row=1, col=col)
    fig.update_xaxes(title_text="offered load (req/s)")
    fig.update_yaxes(title_text="latency (ms)", row=1, col=1)
    fig.update_yaxes(title_text="requests/s", row=1, col=2)
    summary = (f"{plan.replicas} replica(s), {plan.cpus:g} CPU(s) for {plan.target_qps:g} req/s"
               if plan.replicas is not None else f"SLO cannot be met: {plan.reason}")
    fig.update_layout(title=f"Capacity of {plan.url}: {summary}", template="plotly_white")
    if path.suffix.lower() == ".png":
        data: str | bytes = fig.to_image(format="png")
    else:
        data = fig.to_html(include_plotlyjs=True, full_html=True)
    try:  # written like any path a user names: staged and renamed, or through a symlink, FIFO or device
        return write_output(path, data)
    except OSError as exc:
        raise WorkspaceError(f"cannot write the plot to {path}: {exc}") from exc
