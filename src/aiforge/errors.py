"""The exceptions aiforge raises.

Every error a user can cause or meet is an :class:`AiforgeError`; each subclass also inherits the builtin that
matches it, so ``except ValueError`` keeps working for callers who do not know aiforge::

    AiforgeError
    ├── InvalidInput (ValueError)         a bad argument, option, spec or name
    │   ├── InvalidParameter              an argument outside what its declared constraint accepts (a usage error)
    │   └── UnknownSource                 a SOURCE that is neither a known URL scheme nor a readable path
    ├── NotFound (LookupError)
    │   ├── SnapshotNotFound              NAME or NAME@vN is not in the catalog
    │   ├── ColumnNotFound                a column that the data does not have
    │   └── ModelNotFound                 a model name or version that the model repository does not hold
    ├── SourceError (OSError)             a source that cannot be reached or read (database down, bad file)
    │   ├── QueryError                    the source rejected the query; carries its own message and the query
    │   └── EmptyResult                   the query returned no rows, so there is nothing to snapshot
    ├── ServiceError (OSError)            a service aiforge runs or calls cannot be started or reached
    │   └── Overloaded                    refused before any work (queue full, upstream down); retry after a while
    ├── Conflict                          a write lost a race: another writer changed the same thing first
    ├── WorkspaceError (OSError)          the workspace cannot be written (disk full, permissions)
    ├── JobFailed                         a training job's own code failed, was killed or passed its limits
    └── NotFittedError (AttributeError)   a fitted object used before ``fit``

The CLI prints ``Error: <message>`` for any of these and exits with code 1, or 2 for an :class:`InvalidParameter`
(a usage error, like an option Typer itself refuses). Servers answer them from one table,
:data:`STATUS`, with a JSON body ``{"error": "<message>"}``; an error takes the row of its most specific class::

    class            HTTP   gRPC
    InvalidInput     400    INVALID_ARGUMENT
    NotFound         404    NOT_FOUND
    Conflict         409    ABORTED
    ServiceError     503    UNAVAILABLE
    Overloaded       503    UNAVAILABLE       + ``Retry-After`` header / ``retry-after`` trailer
    anything else    500    INTERNAL          (SourceError, WorkspaceError, NotFittedError, bugs)

:func:`http_status` and :func:`grpc_code` read the table for servers; :func:`error_for_status` reads it backwards
for clients, turning a status and a message from a server back into the error it stands for.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "STATUS",
    "AiforgeError",
    "ColumnNotFound",
    "Conflict",
    "EmptyResult",
    "InvalidInput",
    "InvalidParameter",
    "JobFailed",
    "ModelNotFound",
    "NotFittedError",
    "NotFound",
    "Overloaded",
    "QueryError",
    "ServiceError",
    "SnapshotNotFound",
    "SourceError",
    "UnknownSource",
    "WorkspaceError",
    "error_for_status",
    "grpc_code",
    "http_status",
]


class AiforgeError(Exception):
    """Base class of every error aiforge raises on purpose."""


class InvalidInput(AiforgeError, ValueError):
    """An argument, option, spec or name is not acceptable."""


class InvalidParameter(InvalidInput):
    """An argument is outside what its declared constraint accepts (``aiforge.validation``): the caller's mistake
    in how a function or command was called, so the CLI exits with 2, as for any usage error."""


class UnknownSource(InvalidInput):
    """SOURCE is neither a supported database URL nor an existing Parquet/CSV path or glob."""


class NotFound(AiforgeError, LookupError):
    """Something named by the user does not exist."""

    def __str__(self) -> str:  # LookupError/KeyError would quote the message; keep it readable
        return str(self.args[0]) if self.args else ""


class SnapshotNotFound(NotFound):
    """A snapshot reference does not resolve to a snapshot in the catalog."""


class ColumnNotFound(NotFound):
    """A column that the data does not have."""


class ModelNotFound(NotFound):
    """A model name or version that the model repository does not hold."""


class SourceError(AiforgeError, OSError):
    """A source (database, file) cannot be reached or read."""


class QueryError(SourceError):
    """The source rejected the query.

    Parameters
    ----------
    message : str
        The database's own error message.
    query : str
        The query that failed.
    """

    def __init__(self, message: str, query: str) -> None:
        super().__init__(f"{message}\n  query: {query}")
        self.message = message
        self.query = query

    def __str__(self) -> str:
        return f"{self.message}\n  query: {self.query}"


class EmptyResult(SourceError):
    """A query returned no rows."""


class ServiceError(AiforgeError, OSError):
    """A service that aiforge runs or calls (an API, a proxy, a server) cannot be started, reached or used."""


class Overloaded(ServiceError):
    """A request was refused before any work was done, so retrying it is safe: a server's bounded queue or
    in-flight limit is full, or the server it forwards to cannot be reached. Retry after ``retry_after_s`` seconds.

    Servers answer it with HTTP 503 and a ``Retry-After`` header, or gRPC ``UNAVAILABLE``.
    """

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Conflict(AiforgeError):
    """A write lost a race: another writer changed or created the same thing first (e.g. the same version).

    Nothing was written; read the current state again and retry. Servers answer it with HTTP 409 or gRPC
    ``ABORTED``.
    """


class WorkspaceError(AiforgeError, OSError):
    """The workspace cannot be read or written."""


class JobFailed(AiforgeError):
    """A job that aiforge ran (a TRAIN run) did not succeed: the user's code raised, exited non-zero, was killed, ran
    out of its memory limit or its time. ``run_id`` names the run (``aiforge runs logs RUN_ID`` shows its log)."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class NotFittedError(AiforgeError, AttributeError):
    """A fitted object was used before ``fit`` was called."""


# ---------------------------------------------------------------------------------------------------- the table

#: Each error class -> (HTTP status, gRPC status code name). An error takes the row of the most specific class it
#: inherits (``ModelNotFound`` -> ``NotFound``'s row); an exception that is no :class:`AiforgeError` is a 500.
STATUS: Mapping[type[AiforgeError], tuple[int, str]] = MappingProxyType({
    AiforgeError: (500, "INTERNAL"),
    InvalidInput: (400, "INVALID_ARGUMENT"),
    NotFound: (404, "NOT_FOUND"),
    Conflict: (409, "ABORTED"),
    ServiceError: (503, "UNAVAILABLE"),
    Overloaded: (503, "UNAVAILABLE"),
    SourceError: (500, "INTERNAL"),
    WorkspaceError: (500, "INTERNAL"),
    NotFittedError: (500, "INTERNAL"),
})

_INTERNAL = (500, "INTERNAL")
# Statuses no aiforge error is answered with, but that a client meets (a rate-limiting proxy, gRPC's own limits).
_CLIENT_ALIASES: dict[int | str, type[AiforgeError]] = {429: Overloaded, "RESOURCE_EXHAUSTED": Overloaded}


_ROWS: dict[type, tuple[int, str]] = {}  # the row of each class met so far (an MRO walk per class, not per error)


def _row(kind: type) -> tuple[int, str]:
    row = _ROWS.get(kind)
    if row is None:
        row = next((STATUS[k] for k in kind.__mro__ if k in STATUS), _INTERNAL)
        _ROWS[kind] = row
    return row


def http_status(exc: BaseException) -> int:
    """The HTTP status a server answers ``exc`` with (see :data:`STATUS`).

    Examples
    --------
    >>> http_status(ModelNotFound("model 'x' is not in the repository"))
    404
    >>> http_status(KeyError("a bug"))
    500
    """
    return _row(type(exc))[0]


def grpc_code(exc: BaseException) -> str:
    """The name of the ``grpc.StatusCode`` a server answers ``exc`` with (see :data:`STATUS`).

    A name, so that this module needs no gRPC: ``getattr(grpc.StatusCode, grpc_code(exc))``.

    Examples
    --------
    >>> grpc_code(Conflict("snapshot users@v3 was written by another process"))
    'ABORTED'
    """
    return _row(type(exc))[1]


def _inverse() -> dict[int | str, type[AiforgeError]]:
    inverse: dict[int | str, type[AiforgeError]] = {}
    for klass, (http, code) in STATUS.items():
        if (http, code) != _INTERNAL:  # a server's own failure: the client sees a ServiceError
            inverse.setdefault(http, klass)
            inverse.setdefault(code, klass)
    return {**_CLIENT_ALIASES, **inverse}


_FROM_STATUS = _inverse()


def error_for_status(
    status: int | str,
    message: str,
    *,
    retry_after: float | None = None,
    prefer: tuple[type[AiforgeError], ...] = (),
) -> AiforgeError:
    """The error a client raises for a server's answer: :data:`STATUS` read backwards.

    Parameters
    ----------
    status : int or str
        The HTTP status (``404``) or the gRPC status code name (``"NOT_FOUND"``) the server answered.
    message : str
        The message of the error (usually the server's ``{"error": ...}`` or gRPC details).
    retry_after : float, optional
        The server's ``Retry-After`` (seconds); with a 503/``UNAVAILABLE`` it makes the error :class:`Overloaded`.
    prefer : tuple of AiforgeError classes
        More specific classes to raise when they fit the status, e.g. ``(ModelNotFound,)`` for a 404.

    Returns
    -------
    AiforgeError
        400 -> :class:`InvalidInput`, 404 -> :class:`NotFound`, 409 -> :class:`Conflict`, 503 ->
        :class:`ServiceError` (:class:`Overloaded` with ``retry_after``), 429 or ``RESOURCE_EXHAUSTED`` ->
        :class:`Overloaded`; anything else (500, 401, a gateway's 502, ``DEADLINE_EXCEEDED``...) is a failure of the
        service, so a :class:`ServiceError`.

    Examples
    --------
    >>> error_for_status(409, "snapshot users@v3 was taken by another writer")
    Conflict('snapshot users@v3 was taken by another writer')
    >>> error_for_status("UNAVAILABLE", "queue full", retry_after=2.0).retry_after_s
    2.0
    >>> type(error_for_status("NOT_FOUND", "no model 'x'", prefer=(ModelNotFound,))).__name__
    'ModelNotFound'
    """
    kind = _FROM_STATUS.get(status, ServiceError)
    if retry_after is not None and issubclass(Overloaded, kind):
        kind = Overloaded
    kind = next((wanted for wanted in prefer if issubclass(wanted, kind)), kind)
    if issubclass(kind, Overloaded):
        return kind(message, 1.0 if retry_after is None else retry_after)
    return kind(message)
