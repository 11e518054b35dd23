"""JSON answers, error answers from the error table, and a bounded body reader, for routes and raw ASGI paths."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

from aiforge.errors import AiforgeError, Overloaded, ServiceError, http_status

__all__ = [
    "TOO_LARGE", "error_message", "error_parts", "error_response", "json_response", "read_body", "retry_after",
    "send_json", "too_large_parts",
]

logger = logging.getLogger("aiforge.server")

#: The HTTP status of a body over the server's limit: refused by the transport before any error is built.
TOO_LARGE = 413

Headers = list[tuple[bytes, bytes]]


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (numpy arrays allowed)."""
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status_code, headers,
                    media_type="application/json")


def retry_after(exc: Overloaded) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) of an :class:`~aiforge.errors.Overloaded` error."""
    return str(max(1, math.ceil(exc.retry_after_s)))


def error_message(exc: BaseException) -> str:
    """What a client is told about ``exc``: an aiforge error's own message, or the type of an internal failure.

    Internal failures (anything that is no :class:`~aiforge.errors.AiforgeError`) are logged with their traceback.
    """
    if isinstance(exc, AiforgeError):
        return str(exc)
    logger.error("internal error", exc_info=exc)
    return f"internal server error: {type(exc).__name__}: {exc}"


def error_parts(exc: BaseException) -> tuple[int, bytes, Headers]:
    """``(status, body, extra headers)`` of the answer to ``exc``: status from :func:`aiforge.errors.http_status`,
    body ``{"error": "..."}``, and ``retry-after`` when ``exc`` is :class:`~aiforge.errors.Overloaded`."""
    headers: Headers = [(b"retry-after", retry_after(exc).encode())] if isinstance(exc, Overloaded) else []
    return http_status(exc), orjson.dumps({"error": error_message(exc)}), headers


def error_response(exc: BaseException) -> Response:
    """The JSON error response of :func:`error_parts`, as a starlette response.

    Examples
    --------
    >>> from aiforge.errors import Conflict
    >>> response = error_response(Conflict("version 3 was taken"))
    >>> response.status_code, response.body
    (409, b'{"error":"version 3 was taken"}')
    """
    status, body, headers = error_parts(exc)
    return Response(body, status, {k.decode(): v.decode() for k, v in headers}, media_type="application/json")


def too_large_parts(max_bytes: int, hint: str) -> tuple[int, bytes, Headers]:
    """The 413 answer to a body over ``max_bytes``: ``{"error": "the request body is larger than ...; HINT"}``."""
    size = f"{max_bytes // 2**20} MiB" if max_bytes % 2**20 == 0 else f"{max_bytes} bytes"
    return TOO_LARGE, orjson.dumps({"error": f"the request body is larger than {size}; {hint}"}), []


async def read_body(scope: Mapping[str, Any], receive: Any, max_bytes: int | None = None) -> bytes | None:
    """The whole request body, or ``None`` as soon as it is known to exceed ``max_bytes`` (the rest is not read).

    Raises
    ------
    ServiceError
        The client disconnected before sending the whole body.
    """
    if max_bytes is not None:
        for key, value in scope["headers"]:
            if key == b"content-length":
                if value.isdigit() and int(value) > max_bytes:
                    return None
                break
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return None if max_bytes is not None and len(body) > max_bytes else body
    chunks, size = [body], len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ServiceError("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def send_json(send: Any, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Send a whole JSON answer on a raw ASGI ``send`` (the hot paths skip starlette's Response)."""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
