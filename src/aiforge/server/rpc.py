"""gRPC answers from the error table: the status code, the message and a ``retry-after`` trailer."""

from __future__ import annotations

from typing import Any, NoReturn

from aiforge.errors import Overloaded, grpc_code
from aiforge.server.responses import error_message, retry_after

__all__ = ["grpc_abort", "grpc_status"]


def grpc_status(exc: BaseException) -> Any:
    """The ``grpc.StatusCode`` of ``exc`` (see :func:`aiforge.errors.grpc_code`)."""
    import grpc

    return getattr(grpc.StatusCode, grpc_code(exc))


async def grpc_abort(context: Any, exc: BaseException) -> NoReturn:
    """End a gRPC call with the status the error table gives ``exc``, its message, and ``retry-after`` when it is
    :class:`~aiforge.errors.Overloaded` (``context.abort`` raises, so this never returns)."""
    trailers = (("retry-after", retry_after(exc)),) if isinstance(exc, Overloaded) else ()
    await context.abort(grpc_status(exc), error_message(exc), trailers)
    raise RuntimeError("grpc context.abort returned without raising")  # pragma: no cover
