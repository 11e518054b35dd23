"""The server kit (aiforge.server) on real uvicorn and grpc.aio servers on 127.0.0.1: the error table and its
inverse, health routes, bearer auth, the in-flight limit, the body limit and graceful shutdown."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response

from aiforge import errors
from aiforge.server import (
    BearerAuth,
    InFlightLimit,
    ServerMetrics,
    ServerThread,
    add_server_routes,
    error_response,
    grpc_abort,
    json_response,
    open_socket,
    read_body,
    too_large_parts,
)

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# What /fail/{kind} raises, and the answer every aiforge server gives it.
FAILURES: dict[str, tuple[BaseException, int, str, str]] = {
    "invalid": (errors.InvalidInput("column 'x' is not numeric"), 400, "INVALID_ARGUMENT",
                "column 'x' is not numeric"),
    "model": (errors.ModelNotFound("model 'nope' is not in the repository"), 404, "NOT_FOUND",
              "model 'nope' is not in the repository"),
    "conflict": (errors.Conflict("snapshot users@v3 was written by another process"), 409, "ABORTED",
                 "snapshot users@v3 was written by another process"),
    "down": (errors.ServiceError("the inference server is down"), 503, "UNAVAILABLE",
             "the inference server is down"),
    "full": (errors.Overloaded("the queue is full", 2.5), 503, "UNAVAILABLE", "the queue is full"),
    "workspace": (errors.WorkspaceError("disk full"), 500, "INTERNAL", "disk full"),
    "bug": (KeyError("k"), 500, "INTERNAL", "internal server error: KeyError: 'k'"),
}


class Kit:
    """A small server built only from the kit: REST and gRPC on free ports of 127.0.0.1."""

    def __init__(self, *, token: str | None = None, max_in_flight: int = 1, metrics_public: bool = True) -> None:
        self.ready = True
        self.broken: str | None = None
        self.release = threading.Event()
        self.limit = InFlightLimit(max_in_flight, name="the kit server")
        self.metrics = ServerMetrics("aiforge_kit")
        self.shut_down = False
        self.grpc_port = free_port()
        self.token = token
        self.metrics_public = metrics_public
        self.app = self._app()

    def _is_ready(self) -> bool:
        if self.broken:
            raise errors.ServiceError(self.broken)
        return self.ready

    async def _wait(self) -> None:
        while not self.release.is_set():
            await asyncio.sleep(0.005)

    def _app(self) -> FastAPI:
        app = FastAPI()
        add_server_routes(app, ready=self._is_ready, metrics=self.metrics)

        @app.get("/fail/{kind}")
        async def fail(kind: str) -> Response:
            return error_response(FAILURES[kind][0])

        @app.post("/slow")
        async def slow() -> Response:
            try:
                with self.limit:
                    await self._wait()
            except errors.AiforgeError as exc:
                return error_response(exc)
            return json_response({"done": True})

        @app.post("/echo")
        async def echo(request: Request) -> Response:
            body = await read_body(request.scope, request.receive, 64)
            if body is None:
                status, payload, _ = too_large_parts(64, "send less")
                return Response(payload, status, media_type="application/json")
            return json_response({"bytes": len(body)})

        app.add_middleware(BearerAuth, token=self.token, metrics_public=self.metrics_public)
        return app

    def grpc_server(self) -> Any:
        auth = BearerAuth(None, self.token)

        async def call(request: bytes, context: Any) -> bytes:
            await auth.check_grpc(context)
            kind = request.decode()
            try:
                if kind == "slow":
                    with self.limit:
                        await self._wait()
                    return b"done"
                raise FAILURES[kind][0]
            except Exception as exc:
                await grpc_abort(context, exc)

        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler("test.Kit", {"Call": grpc.unary_unary_rpc_method_handler(call)})
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
        return server

    def on_shutdown(self) -> None:
        self.shut_down = True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Any) -> None:
    for _ in range(3000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not met within 30 s")


@pytest.fixture
def kit() -> Iterator[tuple[Kit, ServerThread]]:
    server = Kit(token=TOKEN)
    with ServerThread(server.app, grpc_server=server.grpc_server, grpc_port=server.grpc_port, grace_s=5.0,
                      on_shutdown=server.on_shutdown) as thread:
        try:
            yield server, thread
        finally:
            server.release.set()


def grpc_call(kit: Kit, kind: str, token: str | None = TOKEN) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{kit.grpc_port}") as channel:
        call = channel.unary_unary("/test.Kit/Call")
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        return bytes(call(kind.encode(), timeout=30, metadata=metadata))


# --- the error table, over HTTP and gRPC ------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_errors_are_answered_from_the_table(kit: tuple[Kit, ServerThread], kind: str) -> None:
    server, thread = kit
    _, status, code, message = FAILURES[kind]
    reply = httpx.get(f"{thread.url}/fail/{kind}", headers=AUTH)
    assert (reply.status_code, reply.json()) == (status, {"error": message})
    assert reply.headers.get("retry-after") == ("3" if kind == "full" else None)  # whole seconds, rounded up
    with pytest.raises(grpc.RpcError) as info:
        grpc_call(server, kind)
    assert (info.value.code().name, info.value.details()) == (code, message)
    trailers = dict(info.value.trailing_metadata() or ())
    assert trailers.get("retry-after") == ("3" if kind == "full" else None)


@pytest.mark.parametrize("kind", ["invalid", "model", "conflict", "down", "full"])
def test_a_client_gets_the_servers_error_back(kit: tuple[Kit, ServerThread], kind: str) -> None:
    server, thread = kit
    exc, _, _, message = FAILURES[kind]
    reply = httpx.get(f"{thread.url}/fail/{kind}", headers=AUTH)
    retry = reply.headers.get("retry-after")
    over_http = errors.error_for_status(reply.status_code, reply.json()["error"],
                                        retry_after=float(retry) if retry else None, prefer=(errors.ModelNotFound,))
    with pytest.raises(grpc.RpcError) as info:
        grpc_call(server, kind)
    trailers = dict(info.value.trailing_metadata() or ())
    over_grpc = errors.error_for_status(info.value.code().name, info.value.details(),
                                        retry_after=float(trailers["retry-after"]) if "retry-after" in trailers
                                        else None, prefer=(errors.ModelNotFound,))
    for error in (over_http, over_grpc):
        assert type(error) is type(exc)
        assert str(error) == message
        if isinstance(error, errors.Overloaded):
            assert error.retry_after_s == 3.0


# --- health, metrics, auth ----------------------------------------------------------------------------------


def test_health_routes_follow_ready(kit: tuple[Kit, ServerThread]) -> None:
    server, thread = kit
    live = httpx.get(thread.url + "/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = httpx.get(thread.url + "/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    server.ready = False
    waiting = httpx.get(thread.url + "/health/ready")
    assert (waiting.status_code, waiting.headers["retry-after"], waiting.json()) == (503, "1", {"ready": False})
    server.broken = "the model failed to load: bad file"
    broken = httpx.get(thread.url + "/health/ready")
    assert (broken.status_code, broken.json()) == (503, {"error": "the model failed to load: bad file"})
    assert "retry-after" not in broken.headers


def test_bearer_auth_guards_everything_but_health_and_metrics(kit: tuple[Kit, ServerThread]) -> None:
    server, thread = kit
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = httpx.get(thread.url + "/fail/invalid", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json() == {
            "error": "missing or wrong bearer token; send the header 'Authorization: Bearer <token>'"}
    assert httpx.get(thread.url + "/fail/invalid", headers=AUTH).status_code == 400
    assert httpx.get(thread.url + "/health/live").status_code == 200
    assert httpx.get(thread.url + "/health/ready").status_code == 200
    metrics = httpx.get(thread.url + "/metrics")
    assert metrics.status_code == 200 and "aiforge_kit_requests_total" in metrics.text
    for token in (None, "wrong"):
        with pytest.raises(grpc.RpcError) as info:
            grpc_call(server, "invalid", token=token)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert info.value.details() == ("missing or wrong bearer token; send the metadata 'authorization: "
                                        "Bearer <token>'")


def test_metrics_can_require_the_token_too() -> None:
    server = Kit(token=TOKEN, metrics_public=False)
    with ServerThread(server.app) as thread:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = httpx.get(thread.url + "/metrics", headers=headers)
            assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer")
        metrics = httpx.get(thread.url + "/metrics", headers=AUTH)
        assert metrics.status_code == 200 and "aiforge_kit_requests_total" in metrics.text
        assert httpx.get(thread.url + "/health/live").status_code == 200  # health stays open, always
        assert httpx.get(thread.url + "/health/ready").status_code == 200
    assert BearerAuth(None, "t", metrics_public=False).open_path("/health/ready")
    assert not BearerAuth(None, "t", metrics_public=False).open_path("/metrics")
    assert BearerAuth(None, "t").open_path("/metrics") and not BearerAuth(None, "t").open_path("/metrics/x")


# --- limits -------------------------------------------------------------------------------------------------


def test_in_flight_limit_is_503_with_retry_after_then_frees_up(kit: tuple[Kit, ServerThread]) -> None:
    server, thread = kit
    first: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: first.append(httpx.post(thread.url + "/slow", headers=AUTH, timeout=30)))
    worker.start()
    wait_until(lambda: server.limit.in_flight == 1)
    refused = httpx.post(thread.url + "/slow", headers=AUTH)
    with pytest.raises(grpc.RpcError) as info:
        grpc_call(server, "slow")
    server.release.set()
    worker.join(30)
    message = "the kit server is at its limit of 1 requests in flight; retry after the Retry-After seconds"
    assert (refused.status_code, refused.headers["retry-after"], refused.json()) == (503, "1", {"error": message})
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == message
    assert dict(info.value.trailing_metadata())["retry-after"] == "1"
    assert first[0].status_code == 200 and first[0].json() == {"done": True}
    assert server.limit.in_flight == 0
    assert httpx.post(thread.url + "/slow", headers=AUTH).status_code == 200
    assert grpc_call(server, "slow") == b"done"


def test_in_flight_limit_counts_and_refuses() -> None:
    limit = InFlightLimit(2, name="the test")
    with limit, limit:
        assert limit.in_flight == 2
        with pytest.raises(errors.Overloaded, match=r"^the test is at its limit of 2 requests in flight; ") as info:
            limit.acquire()
        assert info.value.retry_after_s == 1.0
    assert limit.in_flight == 0
    for bad in (0, -1, 1.5, True):
        with pytest.raises(errors.InvalidInput, match=rf"^limit must be a positive integer; got {bad}$"):
            InFlightLimit(bad)  # type: ignore[arg-type]


def test_a_body_over_the_limit_is_413(kit: tuple[Kit, ServerThread]) -> None:
    _, thread = kit
    assert httpx.post(thread.url + "/echo", content=b"x" * 64, headers=AUTH).json() == {"bytes": 64}
    declared = httpx.post(thread.url + "/echo", content=b"x" * 65, headers=AUTH)
    streamed = httpx.post(thread.url + "/echo", content=iter([b"x" * 40, b"x" * 40]), headers=AUTH)  # chunked
    for reply in (declared, streamed):
        assert reply.status_code == 413
        assert reply.json() == {"error": "the request body is larger than 64 bytes; send less"}
    assert too_large_parts(64 * 2**20, "hint")[1] == b'{"error":"the request body is larger than 64 MiB; hint"}'


# --- running --------------------------------------------------------------------------------------------------


def test_stop_lets_requests_in_flight_finish_then_shuts_down() -> None:
    server = Kit()
    thread = ServerThread(server.app, grace_s=5.0, on_shutdown=server.on_shutdown).start()
    first: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: first.append(httpx.post(thread.url + "/slow", timeout=30)))
    worker.start()
    wait_until(lambda: server.limit.in_flight == 1)
    stopper = threading.Thread(target=thread.stop)
    stopper.start()
    wait_until(lambda: not _accepts(thread.url))  # no new connections while the request finishes
    assert not server.shut_down
    server.release.set()
    worker.join(30)
    stopper.join(30)
    assert first[0].status_code == 200 and first[0].json() == {"done": True}
    assert server.shut_down and not thread.running


def _accepts(url: str) -> bool:
    try:
        httpx.get(url + "/health/live", timeout=1)
    except httpx.TransportError:
        return False
    return True


def test_a_port_in_use_is_a_service_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(errors.ServiceError, match=rf"^cannot listen on 127.0.0.1:{port}: .*; pick another port$"):
            open_socket("127.0.0.1", port)
        with pytest.raises(errors.ServiceError, match=rf"^cannot listen on 127.0.0.1:{port}"):
            ServerThread(FastAPI(), port=port).start()
