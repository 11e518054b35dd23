"""loadtest(): exact counts by error kind against a real HTTP server on loopback, closed and open loop, warm-up,
dropped requests, payload encodings, bad input and the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aiforge.cli import app
from aiforge.errors import InvalidInput
from aiforge.serve.sizing.load import LoadTestResult, Payload, encode_payload, loadtest, parse_headers
from conftest import BackgroundHTTPServer

runner = CliRunner()


class Server(BackgroundHTTPServer):
    """/ok echoes, /slow?ms=N sleeps, /fail 500, /busy 503, /bad 400."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}
        self.bodies: list[tuple[bytes, str]] = []

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        route = request.path.strip("/")
        self.hits[route] = self.hits.get(route, 0) + 1
        body = await request.read()
        if route == "ok":
            self.bodies.append((body, request.headers.get("Content-Type", "")))
            return web.Response(body=body)
        if route == "slow":
            await asyncio.sleep(int(request.query.get("ms", "10")) / 1000)
            return web.Response(text="late")
        if route == "fail":
            return web.json_response({"error": "boom"}, status=500)
        if route == "busy":
            return web.json_response({"error": "queue full"}, status=503, headers={"Retry-After": "1"})
        return web.json_response({"error": "bad input"}, status=400)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nobody listens once the socket is closed


def test_closed_loop_counts_every_request_as_ok(server: Server) -> None:
    before = server.hits.get("ok", 0)
    result = loadtest(f"{server.url}/ok", b"x", concurrency=4, duration_s=0.3)
    assert isinstance(result, LoadTestResult)
    assert (result.mode, result.concurrency, result.rate) == ("closed", 4, None)
    assert result.requests > 0
    assert (result.ok, result.errors, result.error_rate) == (result.requests, {}, 0.0)
    assert server.hits["ok"] - before == result.requests
    assert result.throughput_rps == pytest.approx(result.ok / result.duration_s)
    lat = result.latency_ms
    assert lat["p50"] is not None and lat["p90"] is not None and lat["p99"] is not None and lat["max"] is not None
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


@pytest.mark.parametrize(
    ("route", "kind"), [("fail", "http_5xx"), ("busy", "http_503"), ("bad", "http_4xx")]
)
def test_http_errors_are_counted_by_kind(server: Server, route: str, kind: str) -> None:
    result = loadtest(f"{server.url}/{route}", b"{}", concurrency=2, duration_s=0.2)
    assert result.requests > 0
    assert (result.ok, result.errors) == (0, {kind: result.requests})
    assert result.error_rate == 1.0
    assert result.latency_ms == {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    assert result.throughput_rps == 0.0


def test_a_slow_server_gives_timeouts(server: Server) -> None:
    result = loadtest(f"{server.url}/slow?ms=1000", b"", concurrency=2, duration_s=0.2, timeout_s=0.1)
    assert result.requests >= 2
    assert (result.ok, result.errors) == (0, {"timeout": result.requests})


def test_a_closed_port_gives_connection_errors(closed_port: int) -> None:
    result = loadtest(f"http://127.0.0.1:{closed_port}/", b"", concurrency=2, duration_s=0.2)
    assert result.requests >= 2
    assert (result.ok, result.errors) == (0, {"connection": result.requests})


def test_open_loop_schedules_rate_times_duration_requests(server: Server) -> None:
    before = server.hits.get("ok", 0)
    result = loadtest(f"{server.url}/ok", {"x": 1}, rate=100, duration_s=0.5)
    assert (result.mode, result.concurrency, result.rate) == ("open", None, 100)
    assert (result.requests, result.ok, result.errors) == (50, 50, {})
    assert server.hits["ok"] - before == 50


def test_warm_up_requests_are_sent_but_not_counted(server: Server) -> None:
    before = server.hits.get("ok", 0)
    result = loadtest(f"{server.url}/ok", b"x", rate=100, duration_s=0.3, warmup_s=0.2)
    assert (result.requests, result.ok) == (30, 30)
    assert server.hits["ok"] - before == 50

    before = server.hits["ok"]
    result = loadtest(f"{server.url}/ok", b"x", concurrency=2, duration_s=0.2, warmup_s=0.1)
    assert server.hits["ok"] - before > result.requests == result.ok


def test_open_loop_drops_requests_beyond_the_in_flight_cap(server: Server) -> None:
    # 30 requests scheduled over 0.3 s; the first 5 take 1 s each, so the other 25 find the cap reached.
    result = loadtest(f"{server.url}/slow?ms=1000", b"", rate=100, duration_s=0.3, timeout_s=3, max_in_flight=5)
    assert (result.requests, result.ok, result.errors) == (30, 5, {"dropped": 25})
    # latency counts from the scheduled time, so it is at least the server's 1 s
    assert result.latency_ms["p50"] is not None and result.latency_ms["p50"] >= 1000


def test_payload_kinds_are_encoded_once_with_their_content_type(server: Server, tmp_path: Path) -> None:
    file = tmp_path / "request.json"
    file.write_bytes(b'{"inputs": []}')
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x00\x01")
    cases: list[tuple[Payload, tuple[bytes, str]]] = [
        ({"a": [1, 2]}, (b'{"a":[1,2]}', "application/json")),
        (file, (b'{"inputs": []}', "application/json")),
        (binary, (b"\x00\x01", "application/octet-stream")),
        ("[1]", (b"[1]", "application/json")),
        (b"raw", (b"raw", "application/octet-stream")),
    ]
    for payload, expected in cases:
        assert encode_payload(payload) == expected
        server.bodies.clear()
        loadtest(f"{server.url}/ok", payload, rate=20, duration_s=0.1)
        assert server.bodies == [expected, expected]
    server.bodies.clear()
    loadtest(f"{server.url}/ok", b"raw", rate=10, duration_s=0.1, headers={"content-type": "text/plain"})
    assert server.bodies == [(b"raw", "text/plain")]


def test_get_without_a_body(server: Server) -> None:
    result = loadtest(f"{server.url}/ok", None, rate=10, duration_s=0.2, method="get")
    assert (result.method, result.requests, result.ok) == ("GET", 2, 2)


def test_the_table_names_every_error_kind(server: Server) -> None:
    from rich.console import Console

    result = loadtest(f"{server.url}/busy", b"", rate=10, duration_s=0.2)
    console = Console(width=100, record=True)
    console.print(result.table())
    text = console.export_text()
    assert "errors: http_503" in text
    assert "open loop, rate 10/s" in text
    assert set(result.to_dict()) == {
        "url", "method", "mode", "concurrency", "rate", "requests", "ok", "errors", "duration_s", "throughput_rps",
        "latency_ms", "error_rate",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one of concurrency (closed loop: N clients sending back to back) or rate (open loop: "
             "requests per second), got neither"),
        ({"concurrency": 2, "rate": 5.0}, "give exactly one of concurrency (closed loop: N clients sending back to "
                                          "back) or rate (open loop: requests per second), got both"),
        ({"concurrency": 0}, "concurrency must be a positive integer; got 0"),
        ({"concurrency": 2.0}, "concurrency must be a positive integer; got 2.0"),
        ({"rate": -1.0}, "rate must be a number with 0 < rate < inf; got -1.0"),
        ({"rate": float("inf")}, "rate must be a number with 0 < rate < inf; got inf"),
        ({"concurrency": 1, "duration_s": -1.0}, "duration_s must be a number with 0 < duration_s < inf; got -1.0"),
        ({"concurrency": 1, "timeout_s": 0}, "timeout_s must be a number with 0 < timeout_s < inf; got 0"),
        ({"concurrency": 1, "warmup_s": -2}, "warmup_s must be a number with 0 <= warmup_s < inf; got -2"),
        ({"rate": 5.0, "max_in_flight": 0}, "max_in_flight must be a positive integer or None; got 0"),
        ({"rate": 0.1, "duration_s": 1.0}, "rate=0.1/s over duration_s=1 schedules no request; raise the rate or "
                                           "the duration"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        loadtest("http://127.0.0.1:1/", b"", **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_bad_url_payload_and_headers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^url must start with http:// or https://, got 'localhost:8000'$"):
        loadtest("localhost:8000", b"", concurrency=1)
    missing = tmp_path / "nope.json"
    with pytest.raises(InvalidInput) as info:
        loadtest("http://127.0.0.1:1/", missing, concurrency=1)
    assert str(info.value) == (
        f"payload file {missing} cannot be read (No such file or directory); give an existing file with the request "
        "body, for example a JSON file"
    )
    assert parse_headers(["A: b: c", "X-Y:  z "]) == {"A": "b: c", "X-Y": "z"}
    with pytest.raises(InvalidInput, match=r"^header 'nocolon' must look like 'Name: value', for example"):
        parse_headers(["nocolon"])


def test_cli_json(server: Server, tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text('{"x": 1}')
    result = runner.invoke(app, ["loadtest", f"{server.url}/ok", "--payload", str(payload), "--rate", "20",
                                 "--duration", "0.2", "--header", "X-Trace: 1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["requests"], data["ok"], data["errors"], data["mode"]) == (4, 4, {}, "open")
    assert set(data["latency_ms"]) == {"p50", "p90", "p99", "max", "mean"}


def test_cli_table_and_exit_code_when_nothing_succeeds(server: Server, closed_port: int) -> None:
    result = runner.invoke(app, ["loadtest", f"{server.url}/ok", "-c", "2", "-d", "0.1"])
    assert result.exit_code == 0, result.output
    assert "latency p99" in result.stdout
    result = runner.invoke(app, ["loadtest", f"http://127.0.0.1:{closed_port}/", "-r", "20", "-d", "0.1"])
    assert result.exit_code == 1
    assert "errors: connection" in result.stdout
    assert result.stderr == (
        f"Error: none of the 2 requests to http://127.0.0.1:{closed_port}/ succeeded (connection 2); check that "
        "the server is up and the URL, method and payload are right\n"
    )


def test_cli_usage_errors(server: Server) -> None:
    result = runner.invoke(app, ["loadtest", f"{server.url}/ok", "-d", "0.1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: give exactly one of concurrency")
    result = runner.invoke(app, ["loadtest", "--help"])
    assert result.exit_code == 0
    assert "Example: aiforge loadtest" in result.output
