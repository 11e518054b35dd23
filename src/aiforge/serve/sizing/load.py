"""A small, lean HTTP load generator: closed loop (N clients back to back) or open loop (a fixed request rate).

The open loop measures every latency from the moment the request *was scheduled* to be sent, not from when it was
actually sent, so a server that stalls cannot hide its queueing delay from the measurement (coordinated omission).
The generator usually shares the machine's cores with the servers it measures, so the hot path is kept tiny: one
:class:`aiohttp.ClientSession` with a keep-alive pool, the body encoded once, latencies appended to a flat array.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiforge import reprs
from aiforge.errors import InvalidInput
from aiforge.progress import Progress
from aiforge.progress import progress as progress_bar
from aiforge.validation import Hidden, Interval, validate_params

if TYPE_CHECKING:
    import aiohttp
    from rich.table import Table

__all__ = ["ERROR_KINDS", "LoadTestResult", "Payload", "encode_payload", "loadtest", "parse_headers"]

ERROR_KINDS = ("http_4xx", "http_503", "http_5xx", "timeout", "connection", "dropped")
"""How a failed request is counted: HTTP 4xx, HTTP 503 (overloaded), any other 5xx, no answer within the timeout,
the connection failed (refused, reset), or (open loop only) not sent because too many requests were in flight."""

Payload = bytes | str | Path | Mapping[str, Any] | None
_T = TypeVar("_T")
_MAX_CONNECTIONS = 512  # open loop: beyond this, requests wait for a pooled connection (time that still counts)
# Open loop: event-loop timers have millisecond resolution, so waiting for a sub-millisecond gap would spin. Requests
# due within the next millisecond go now; a request sent early is timed from its real send time, a late one from its
# scheduled time (so the generator's own lateness is never hidden).
_EARLY_S = 0.001
_FINITE_POSITIVE = Interval(Real, 0, math.inf, closed="neither")
_CONSTRAINTS: dict[str, list[Any]] = {
    # None means "the other loop"; exactly one of the two is checked apart, so None is not offered in messages
    "concurrency": [Interval(Integral, 1, None, closed="left"), Hidden(None)],
    "rate": [_FINITE_POSITIVE, Hidden(None)],
    "duration_s": [_FINITE_POSITIVE],
    "timeout_s": [_FINITE_POSITIVE],
    "warmup_s": [Interval(Real, 0, math.inf, closed="left")],
    "max_in_flight": [Interval(Integral, 1, None, closed="left"), None],
}


@dataclass
class LoadTestResult:
    """What one load test measured. Warm-up requests are not in any of these numbers.

    Attributes
    ----------
    url, method : str
        The target.
    mode : str
        ``"closed"`` (``concurrency`` clients, each sending back to back) or ``"open"`` (``rate`` requests per second
        on a fixed schedule).
    requests : int
        Requests counted: ``ok`` plus every error (dropped ones included).
    ok : int
        Answers with a status below 400.
    errors : dict of str to int
        Failed requests by kind (see :data:`ERROR_KINDS`); kinds that did not happen are left out.
    duration_s : float
        From the first counted request to the last counted answer (never less than the requested duration).
    throughput_rps : float
        ``ok / duration_s``.
    latency_ms : dict of str to float or None
        ``p50``, ``p90``, ``p99``, ``max`` and ``mean`` over the successful requests, in milliseconds (None when none
        succeeded). In the open loop, from each request's scheduled send time.
    """

    url: str
    method: str
    mode: str
    concurrency: int | None
    rate: float | None
    requests: int
    ok: int
    errors: dict[str, int]
    duration_s: float
    throughput_rps: float
    latency_ms: dict[str, float | None] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        """Failed requests over all counted requests (0 when nothing was counted)."""
        return (self.requests - self.ok) / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able dict (with ``error_rate``)."""
        return {**asdict(self), "error_rate": self.error_rate}

    def _repr_html_(self) -> str:
        """A compact summary for Jupyter: the facts of :meth:`table`."""
        load = f"concurrency {self.concurrency}" if self.mode == "closed" else f"rate {self.rate:g}/s"
        facts: list[tuple[str, object]] = [("requests", self.requests), ("ok", self.ok)]
        facts += [(f"errors: {kind}", self.errors[kind]) for kind in ERROR_KINDS if kind in self.errors]
        facts += [("error rate", f"{100 * self.error_rate:.2f}%"), ("duration", f"{self.duration_s:.2f} s"),
                  ("throughput", f"{self.throughput_rps:,.1f} req/s")]
        for name in ("p50", "p90", "p99", "max", "mean"):
            value = self.latency_ms.get(name)
            facts.append((f"latency {name}", None if value is None else f"{value:.2f} ms"))
        return reprs.summary(f"{self.method} {self.url} ({self.mode} loop, {load})", facts)

    def table(self) -> Table:
        """A rich table of the result, for a terminal."""
        from rich.table import Table

        load = f"concurrency {self.concurrency}" if self.mode == "closed" else f"rate {self.rate:g}/s"
        table = Table(title=f"{self.method} {self.url} ({self.mode} loop, {load})", show_header=False)
        table.add_column("metric", style="bold")
        table.add_column("value", justify="right")
        table.add_row("requests", f"{self.requests:,}")
        table.add_row("ok", f"{self.ok:,}")
        for kind in ERROR_KINDS:
            if kind in self.errors:
                table.add_row(f"errors: {kind}", f"{self.errors[kind]:,}", style="red")
        if not self.errors:
            table.add_row("errors", "0")
        table.add_row("duration", f"{self.duration_s:.2f} s")
        table.add_row("throughput", f"{self.throughput_rps:,.1f} req/s")
        for name in ("p50", "p90", "p99", "max", "mean"):
            value = self.latency_ms.get(name)
            table.add_row(f"latency {name}", "-" if value is None else f"{value:.2f} ms")
        return table


def parse_headers(lines: list[str] | None) -> dict[str, str]:
    """``['Name: value', ...]`` (curl's ``-H`` form) as a dict.

    Examples
    --------
    >>> parse_headers(["Authorization: Bearer abc", "X-Id:7"])
    {'Authorization': 'Bearer abc', 'X-Id': '7'}
    """
    headers: dict[str, str] = {}
    for line in lines or []:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise InvalidInput(f"header {line!r} must look like 'Name: value', for example 'Authorization: Bearer T'")
        headers[name.strip()] = value.strip()
    return headers


def encode_payload(payload: Payload) -> tuple[bytes, str]:
    """The request body and its content type: a dict is JSON (orjson), a Path is the file's bytes, str is UTF-8.

    Examples
    --------
    >>> encode_payload({"x": [1, 2]})
    (b'{"x":[1,2]}', 'application/json')
    """
    if payload is None:
        return b"", "application/octet-stream"
    if isinstance(payload, Mapping):
        import orjson

        try:
            return orjson.dumps(dict(payload), option=orjson.OPT_SERIALIZE_NUMPY), "application/json"
        except TypeError as exc:
            raise InvalidInput(f"payload dict cannot be encoded as JSON: {exc}; pass JSON-able values") from exc
    if isinstance(payload, Path):
        try:
            body = payload.read_bytes()
        except OSError as exc:
            raise InvalidInput(
                f"payload file {payload} cannot be read ({exc.strerror or exc}); give an existing file with the "
                "request body, for example a JSON file"
            ) from exc
        is_json = payload.suffix.lower() == ".json" or body.lstrip()[:1] in (b"{", b"[")
        return body, "application/json" if is_json else "application/octet-stream"
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    return body, "application/json" if body.lstrip()[:1] in (b"{", b"[") else "application/octet-stream"


def loadtest(
    url: str,
    payload: Payload,
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    duration_s: float = 10.0,
    timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
    warmup_s: float = 0.0,
    progress: bool = False,
    method: str = "POST",
    max_in_flight: int | None = None,
) -> LoadTestResult:
    """Send requests to ``url`` for ``duration_s`` seconds and measure throughput, latency and errors.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    payload : bytes, str, Path, dict or None
        The body of every request: sent as is, UTF-8, the file's bytes (read once), or JSON (encoded once). A body
        starting with ``{`` or ``[`` (or a ``.json`` file, or a dict) is sent as ``application/json``.
    concurrency : int, optional
        Closed loop: this many clients, each sending its next request when the previous one is answered.
    rate : float, optional
        Open loop: requests per second, sent at fixed times ``i / rate`` whether or not earlier ones were answered.
        Give exactly one of ``concurrency`` and ``rate``.
    duration_s : float
        How long to measure, after the warm-up.
    timeout_s : float
        A request not answered within this many seconds (connection included) counts as ``"timeout"``.
    headers : dict, optional
        Extra request headers (they override the default Content-Type).
    warmup_s : float
        Send load for this long first, without counting it (connections, caches, JIT).
    progress : bool
        A progress bar on stderr (when it is a terminal).
    method : str
        HTTP method.
    max_in_flight : int, optional
        Open loop: a scheduled request that finds this many requests unanswered is not sent and counts as
        ``"dropped"``, so memory stays bounded. Default ``max(64, 2 * rate * timeout_s)``.

    Returns
    -------
    LoadTestResult

    Examples
    --------
    >>> result = loadtest("http://127.0.0.1:8000/predict", {"x": [1.0]}, concurrency=8, duration_s=5)  # doctest: +SKIP
    >>> result.latency_ms["p99"], result.errors  # doctest: +SKIP
    (4.1, {})
    """
    # which loop to run: a rule between two parameters, which the declared constraints cannot say
    if (concurrency is None) == (rate is None):
        got = "both" if concurrency is not None else "neither"
        raise InvalidInput(
            f"give exactly one of concurrency (closed loop: N clients sending back to back) or rate (open loop: "
            f"requests per second), got {got}"
        )
    validate_params({"concurrency": concurrency, "rate": rate, "duration_s": duration_s, "timeout_s": timeout_s,
                     "warmup_s": warmup_s, "max_in_flight": max_in_flight}, _CONSTRAINTS)
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"url must start with http:// or https://, got {url!r}")
    if rate is not None and round(rate * duration_s) < 1:
        raise InvalidInput(
            f"rate={rate:g}/s over duration_s={duration_s:g} schedules no request; raise the rate or the duration"
        )
    body, content_type = encode_payload(payload)
    all_headers = {"Content-Type": content_type} if body else {}
    for key, text in (headers or {}).items():
        all_headers = {k: v for k, v in all_headers.items() if k.lower() != key.lower()} | {key: text}

    run = _Run(url, method.upper(), body, all_headers, timeout_s)
    total = warmup_s + duration_s
    with progress_bar(f"{run.method} {url}", total=round(total, 1), enabled=progress, unit="s") as bar:
        if concurrency is not None:
            _run_sync(lambda: run.closed(concurrency, warmup_s, duration_s, bar))
        else:
            per_s = float(rate or 0.0)  # not None: checked above
            cap = max_in_flight or max(64, math.ceil(2 * per_s * timeout_s))
            _run_sync(lambda: run.open(per_s, warmup_s, duration_s, cap, bar))
    return run.result(concurrency, rate, duration_s)


class _Run:
    """The state of one load test: the request, the counters, the latencies (seconds, successful requests only)."""

    def __init__(self, url: str, method: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
        self.url, self.method, self.body, self.headers, self.timeout_s = url, method, body, headers, timeout_s
        self.latencies = array("d")
        self.errors: dict[str, int] = {}
        self.measure_start = 0.0
        self.last_done = 0.0

    def _session(self, limit: int) -> aiohttp.ClientSession:
        import aiohttp

        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, force_close=False, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )

    def _sender(self, session: aiohttp.ClientSession) -> Callable[[], Awaitable[str | None]]:
        import aiohttp

        request, url, body, headers = session.request, self.url, self.body or None, self.headers
        method = self.method

        async def send() -> str | None:
            try:
                async with request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except TimeoutError:  # before ClientError: aiohttp's ServerTimeoutError is both
                return "timeout"
            except (aiohttp.ClientError, OSError):
                return "connection"
            if status < 400:
                return None
            return "http_503" if status == 503 else "http_5xx" if status >= 500 else "http_4xx"

        return send

    def _record(self, kind: str | None, latency: float, done: float) -> None:
        if kind is None:
            self.latencies.append(latency)
        else:
            self.errors[kind] = self.errors.get(kind, 0) + 1
        if done > self.last_done:
            self.last_done = done

    async def _ticker(self, bar: Progress, start: float, stop: asyncio.Event) -> None:
        shown = 0.0
        while not stop.is_set():
            elapsed = round(time.perf_counter() - start, 1)
            bar.advance(elapsed - shown)
            bar.update(description=f"{self.method} {self.url}: {len(self.latencies):,} ok, "
                                   f"{sum(self.errors.values()):,} errors")
            shown = elapsed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    async def closed(self, concurrency: int, warmup_s: float, duration_s: float, bar: Progress) -> None:
        async with self._session(concurrency) as session:
            send, clock, record = self._sender(session), time.perf_counter, self._record
            start = clock()
            self.measure_start = measure = start + warmup_s
            end = measure + duration_s

            async def worker() -> None:
                while True:
                    sent = clock()
                    if sent >= end:
                        return
                    kind = await send()
                    if sent >= measure:
                        done = clock()
                        record(kind, done - sent, done)

            stop = asyncio.Event()
            ticker = asyncio.ensure_future(self._ticker(bar, start, stop))
            try:
                await asyncio.gather(*(worker() for _ in range(concurrency)))
            finally:
                stop.set()
                await ticker

    async def open(self, rate: float, warmup_s: float, duration_s: float, cap: int, bar: Progress) -> None:
        n_warm, n = round(rate * warmup_s), round(rate * duration_s)
        interval = 1.0 / rate
        async with self._session(min(cap, _MAX_CONNECTIONS)) as session:
            send, clock, record = self._sender(session), time.perf_counter, self._record
            in_flight = 0
            tasks: set[asyncio.Task[None]] = set()

            async def fire(scheduled: float, counted: bool) -> None:
                nonlocal in_flight
                in_flight += 1
                try:
                    kind = await send()
                finally:
                    in_flight -= 1
                if counted:
                    done = clock()
                    record(kind, done - scheduled, done)

            start = clock() + 0.001
            self.measure_start = start + n_warm * interval
            stop = asyncio.Event()
            ticker = asyncio.ensure_future(self._ticker(bar, start, stop))
            try:
                i = 0
                while i < n_warm + n:
                    now = clock()
                    due = start + i * interval
                    if due > now + _EARLY_S:
                        await asyncio.sleep(due - now)
                        continue
                    while i < n_warm + n and due <= now + _EARLY_S:  # everything due: late ones and the next ms
                        counted = i >= n_warm
                        if in_flight >= cap:
                            if counted:
                                self.errors["dropped"] = self.errors.get("dropped", 0) + 1
                        else:
                            task = asyncio.ensure_future(fire(min(due, now), counted))
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                        i += 1
                        due = start + i * interval
                if tasks:
                    await asyncio.gather(*tasks)
            finally:
                stop.set()
                await ticker

    def result(self, concurrency: int | None, rate: float | None, duration_s: float) -> LoadTestResult:
        import numpy as np

        ok = len(self.latencies)
        requests = ok + sum(self.errors.values())
        measured = max(duration_s, self.last_done - self.measure_start)
        latency: dict[str, float | None] = dict.fromkeys(("p50", "p90", "p99", "max", "mean"))
        if ok:
            ms = np.frombuffer(self.latencies, dtype=np.float64) * 1000.0
            p50, p90, p99 = np.percentile(ms, [50, 90, 99])
            latency = {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(ms.max()),
                       "mean": float(ms.mean())}
        return LoadTestResult(
            url=self.url, method=self.method, mode="closed" if concurrency is not None else "open",
            concurrency=concurrency, rate=rate, requests=requests, ok=ok,
            errors={kind: self.errors[kind] for kind in ERROR_KINDS if kind in self.errors},
            duration_s=measured, throughput_rps=ok / measured, latency_ms=latency,
        )


def _run_sync(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a fresh (uvloop when available) event loop, in a worker thread if this
    thread already runs one (Jupyter, an async caller)."""

    def run() -> _T:
        factory = None
        if sys.platform != "win32":
            try:
                import uvloop

                factory = uvloop.new_event_loop
            except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
                pass
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(make())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()
