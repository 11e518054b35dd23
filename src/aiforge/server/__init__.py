"""The server kit every aiforge server is built from (inference, APS, NLP API).

One place for what a server needs besides its own routes, so that every server answers the same way:

- answers: :func:`json_response`; errors ``{"error": "..."}`` with the status of the error table in
  :mod:`aiforge.errors` (:func:`error_response`, :func:`error_parts` for raw ASGI paths, :func:`grpc_abort` for
  gRPC); a bounded body reader (:func:`read_body`, 413 past the limit);
- :class:`BearerAuth`: optional bearer token on REST and gRPC; health checks stay open, and ``/metrics`` too unless
  ``metrics_public=False`` (every server takes that choice and hands it to :class:`BearerAuth`);
- :class:`ServerMetrics`: Prometheus metrics in the server's own registry;
- :func:`add_server_routes`: ``/health/live``, ``/health/ready`` and ``/metrics``;
- :class:`InFlightLimit`: at most N requests at once, the next ones get 503 + ``Retry-After`` (gRPC
  ``UNAVAILABLE`` + ``retry-after``) at once;
- :func:`serve` / :func:`run` / :class:`ServerThread`: uvicorn (+ grpc.aio) with graceful SIGTERM shutdown, in a
  process or a background thread; :data:`READY_PREFIX` starts the line a server prints once it accepts requests.
"""

from __future__ import annotations

from aiforge.server.auth import BearerAuth
from aiforge.server.limits import InFlightLimit
from aiforge.server.metrics import ServerMetrics
from aiforge.server.responses import (
    TOO_LARGE,
    error_message,
    error_parts,
    error_response,
    json_response,
    read_body,
    retry_after,
    send_json,
    too_large_parts,
)
from aiforge.server.routes import add_server_routes
from aiforge.server.rpc import grpc_abort, grpc_status
from aiforge.server.runner import READY_PREFIX, ServerThread, loop_factory, open_socket, run, serve

__all__ = [
    "READY_PREFIX",
    "TOO_LARGE",
    "BearerAuth",
    "InFlightLimit",
    "ServerMetrics",
    "ServerThread",
    "add_server_routes",
    "error_message",
    "error_parts",
    "error_response",
    "grpc_abort",
    "grpc_status",
    "json_response",
    "loop_factory",
    "open_socket",
    "read_body",
    "retry_after",
    "run",
    "send_json",
    "serve",
    "too_large_parts",
]
