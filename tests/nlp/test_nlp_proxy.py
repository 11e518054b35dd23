"""The throttling proxy: the nginx config, and a real nginx with limit_req in front of a real NLP service."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiforge.errors import InvalidInput, ServiceError
from aiforge.nlp import (
    NginxProxy,
    NlpClient,
    NlpServer,
    create_nlp_app,
    find_nginx,
    parse_rate,
    tokenize,
    write_nginx_config,
)
from aiforge.nlp import _proxy as _nlp_proxy

try:
    find_nginx()
    HAVE_NGINX = True
except ServiceError:
    HAVE_NGINX = False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upstream_requests(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(n) for n in re.findall(r"^aiforge_nlp_requests_total\{[^}]*\} (\S+)$", text, flags=re.M))


# --- config, no nginx needed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("200/s", (200, "s")), ("30/m", (30, "m")), ("5r/s", (5, "s")), (" 7 / s ", (7, "s"))],
)
def test_parse_rate(rate: str, parsed: tuple[int, str]) -> None:
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["200", "0/s", "1.5/s", "10/h", "-3/s", "fast", ""])
def test_parse_rate_rejects_bad_values(rate: str) -> None:
    with pytest.raises(InvalidInput, match=rf"^invalid rate {re.escape(repr(rate))}; expected N/s or N/m"):
        parse_rate(rate)


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m"]))
def test_parse_rate_round_trips(count: int, unit: str) -> None:
    assert parse_rate(f"{count}/{unit}") == (count, unit)


def test_config_throttles_and_keeps_files_under_workdir(tmp_path: Path) -> None:
    conf = write_nginx_config("http://127.0.0.1:8000", "30/m", 7, 9090, tmp_path / "nginx")
    text = conf.read_text()
    root = str((tmp_path / "nginx").resolve())
    assert conf == tmp_path.resolve() / "nginx" / "nginx.conf"
    assert "limit_req_zone $server_name zone=aiforge_nlp:1m rate=30r/m;" in text
    assert "limit_req zone=aiforge_nlp burst=7;" in text
    assert "limit_req_status 429;" in text
    assert "daemon off;" in text
    assert "listen 127.0.0.1:9090;" in text
    assert "server 127.0.0.1:8000;" in text
    for directive in ("pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path"):
        (path,) = re.findall(rf"^\s*{directive} (\S+?)[ ;]", text, flags=re.M)
        assert path.startswith(root), directive
    assert "/etc/nginx" not in text and "/var/" not in text
    per_client = write_nginx_config("127.0.0.1:8000", "5/s", 0, 9090, tmp_path, per_client=True, nodelay=True)
    assert "limit_req_zone $binary_remote_addr" in per_client.read_text()
    assert "burst=0 nodelay;" in per_client.read_text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": "200"}, r"invalid rate '200'; expected N/s or N/m with a positive integer N, e.g. '200/s'"),
        ({"burst": -1}, r"^burst must be an integer >= 0; got -1$"),
        ({"burst": 2.5}, r"^burst must be an integer >= 0; got 2.5$"),
        ({"port": 70000}, r"^port must be an integer with 1 <= port <= 65535; got 70000$"),
        ({"port": 0}, r"^port must be an integer with 1 <= port <= 65535; got 0$"),
        ({"upstream": "ftp://x:1"}, r"invalid upstream 'ftp://x:1'; expected http://HOST:PORT"),
        ({"upstream": "http://x:1/api"}, r"invalid upstream 'http://x:1/api'"),
        ({"upstream": "http://x:99999"}, r"invalid upstream 'http://x:99999'"),
    ],
)
def test_config_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"upstream": "http://127.0.0.1:8000", "rate": "5/s", "burst": 1, "port": 9000}
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=message):
        write_nginx_config(workdir=tmp_path, **args)  # type: ignore[arg-type]


def test_missing_nginx_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_nlp_proxy.shutil, "which", lambda name: None)
    monkeypatch.setattr(_nlp_proxy.os, "access", lambda path, mode: False)
    with pytest.raises(ServiceError, match=r"^nginx is not installed; .*`apt-get install nginx`$"):
        find_nginx()
    with pytest.raises(ServiceError, match="apt-get install nginx"):
        NginxProxy("http://127.0.0.1:1", workdir=Path("/tmp/unused-aiforge-proxy")).start()


# --- a real nginx in front of a real service -------------------------------------------------------------

RATE, BURST = 5, 1


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with NlpServer(create_nlp_app(max_texts=100)) as server:
        yield server.url


@pytest.fixture
def proxy(service: str, tmp_path: Path) -> Iterator[NginxProxy]:
    with NginxProxy(service, f"{RATE}/s", BURST, free_port(), tmp_path / "nginx") as running:
        yield running


@pytest.mark.nginx
@pytest.mark.skipif(not HAVE_NGINX, reason="nginx is not installed (apt-get install nginx)")
def test_burst_through_nginx_gets_429s(proxy: NginxProxy) -> None:
    def post(_: int) -> httpx.Response:
        return httpx.post(proxy.url + "/v1/tokenize", json={"texts": ["hello"]}, timeout=30)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(429) >= 10  # 20 requests at once, 5/s with a queue of 1: most are turned away
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.json() == {"error": "rate limit of 5/s exceeded; retry with backoff"}
    assert all(r.json() == {"tokens": [["hello"]]} for r in responses if r.status_code == 200)
    logged = re.findall(r" (\d{3}) \S+ \"POST /v1/tokenize", proxy.access_log.read_text())
    assert sorted(map(int, logged)) == sorted(statuses)


@pytest.mark.nginx
@pytest.mark.skipif(not HAVE_NGINX, reason="nginx is not installed (apt-get install nginx)")
@pytest.mark.parametrize("client_rate", [f"{RATE}/s", None], ids=["client-limiter", "retries-only"])
def test_client_through_nginx_is_correct_and_within_the_rate(
    proxy: NginxProxy, service: str, client_rate: str | None
) -> None:
    texts = [f"나는 {i}번 학교에 간다" if i % 3 else f"row number {i}" for i in range(24)]
    before = upstream_requests(service)
    start = time.monotonic()
    with NlpClient(
        proxy.url, batch_size=3, max_concurrency=4, rate=client_rate, retries=20, backoff=0.1
    ) as client:
        result = client.tokenize(texts)
    duration = time.monotonic() - start
    seen = upstream_requests(service) - before
    assert result == tokenize(texts)
    assert seen == 8  # one request per batch of 3 reached the service: nothing lost, nothing doubled
    assert seen <= RATE * duration + BURST
    statuses = client.stats.statuses
    assert set(statuses) <= {200, 429} and statuses[200] == 8
    assert client.stats.requests == 8 + statuses.get(429, 0)
    if client_rate is None:
        assert statuses.get(429, 0) > 0  # without its limiter, the client leans on retry and backoff


@pytest.mark.nginx
@pytest.mark.skipif(not HAVE_NGINX, reason="nginx is not installed (apt-get install nginx)")
def test_client_raises_clear_error_when_upstream_is_down(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with NginxProxy(dead, "100/s", 10, free_port(), tmp_path) as proxy:
        assert httpx.post(proxy.url + "/v1/tokenize", json={"texts": ["x"]}).json() == {
            "error": f"the NLP API at {dead} is not answering"
        }
        with NlpClient(proxy.url, retries=2, backoff=0.01) as client, pytest.raises(ServiceError) as info:
            client.tokenize(["x", "y"])
    assert str(info.value).startswith(
        f"NLP API at {proxy.url}/v1/tokenize failed after 3 attempts; last status 502: "
        f'{{"error": "the NLP API at {dead} is not answering"}}.'
    )
    assert client.stats.statuses == {502: 3}


@pytest.mark.nginx
@pytest.mark.skipif(not HAVE_NGINX, reason="nginx is not installed (apt-get install nginx)")
def test_proxy_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ServiceError, match=rf"nginx exited while starting on port {port}: .*Address already in use"
        ):
            NginxProxy("http://127.0.0.1:1", port=port, workdir=tmp_path).start()


@pytest.mark.nginx
@pytest.mark.skipif(not HAVE_NGINX, reason="nginx is not installed (apt-get install nginx)")
def test_run_proxy_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import sys; from aiforge.nlp import run_proxy; "
        f"sys.exit(run_proxy('http://127.0.0.1:1', '10/s', 5, {port}, {str(tmp_path)!r}))"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(200):  # bounded: 10 s
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_aiforge/proxy-health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            pytest.fail("the proxy did not start")
        pid = int((tmp_path / "nginx.pid").read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_aiforge/proxy-health", timeout=1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
