"""Optional bearer-token auth: ASGI middleware for REST, a check for gRPC; health checks stay open, and so does
``/metrics`` unless the server is told otherwise (``metrics_public=False``)."""

from __future__ import annotations

import hmac
from typing import Any

import orjson

__all__ = ["BearerAuth"]

_OPEN_PREFIXES = ("/health", "/v2/health")
_UNAUTHORIZED = orjson.dumps(
    {"error": "missing or wrong bearer token; send the header 'Authorization: Bearer <token>'"}
)
_UNAUTHENTICATED = "missing or wrong bearer token; send the metadata 'authorization: Bearer <token>'"


class BearerAuth:
    """ASGI middleware that requires ``Authorization: Bearer <token>`` on every route but health checks (and
    ``/metrics`` while it is public).

    Without the token the answer is 401 ``{"error": ...}`` with ``WWW-Authenticate: Bearer``; over gRPC,
    :meth:`check_grpc` aborts with ``UNAUTHENTICATED``. The comparison takes constant time.

    Parameters
    ----------
    app : ASGI application or None
        The application to protect (``None`` when only :meth:`allowed` or :meth:`check_grpc` is used).
    token : str or None
        The expected token; ``None`` (or empty) turns auth off.
    metrics_public : bool, default True
        Whether ``GET /metrics`` answers without the token. Public by default, as KServe's model servers leave it:
        Prometheus scrapers are often set up without credentials, and the page holds counts, latencies and model
        names, never request data. ``False`` asks the token there too (give the scraper an ``authorization``
        credential). Health checks are always open: probes carry no token.

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.add_middleware(BearerAuth, token="s3cret")
    >>> BearerAuth(None, "s3cret").allowed("Bearer s3cret"), BearerAuth(None, "s3cret").allowed(None)
    (True, False)
    """

    def __init__(self, app: Any, token: str | None = None, *, metrics_public: bool = True) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self.metrics_public = metrics_public

    def open_path(self, path: str) -> bool:
        """Whether ``path`` answers without the token: the health routes, and ``/metrics`` while it is public."""
        return path.startswith(_OPEN_PREFIXES) or (self.metrics_public and path == "/metrics")

    @property
    def enabled(self) -> bool:
        """Whether a token is required."""
        return self._expected is not None

    def allowed(self, value: bytes | str | None) -> bool:
        """Whether an ``Authorization`` header value carries the token (always true when auth is off)."""
        if self._expected is None:
            return True
        if value is None:
            return False
        if isinstance(value, str):
            value = value.encode()
        return hmac.compare_digest(value, self._expected)

    def allows_scope(self, scope: dict[str, Any]) -> bool:
        """Whether an ASGI HTTP request carries the token (or needs none)."""
        if self._expected is None:
            return True
        return self.allowed(next((v for k, v in scope["headers"] if k == b"authorization"), None))

    async def refuse(self, send: Any) -> None:
        """Answer 401 on a raw ASGI ``send``."""
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(_UNAUTHORIZED)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]})
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})

    async def check_grpc(self, context: Any) -> None:
        """Abort a gRPC call with ``UNAUTHENTICATED`` unless its ``authorization`` metadata carries the token."""
        if self._expected is None:
            return
        value = next((v for k, v in context.invocation_metadata() or () if k == "authorization"), None)
        if not self.allowed(value):
            import grpc

            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._expected is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.open_path(path) or self.allows_scope(scope):
            await self.app(scope, receive, send)
            return
        await self.refuse(send)
