"""The exceptions aiforge raises.

Every error a user can cause or meet is an :class:`AiforgeError`; each subclass also inherits the builtin that
matches it, so ``except ValueError`` keeps working for callers who do not know aiforge::

    AiforgeError
    ├── InvalidInput (ValueError)         a bad argument, option, spec or name
    │   └── UnknownSource                 a SOURCE that is neither a known URL scheme nor a readable path
    ├── NotFound (LookupError)
    │   ├── SnapshotNotFound              NAME or NAME@vN is not in the catalog
    │   ├── ColumnNotFound                a column that the data does not have
    │   └── ModelNotFound                 a model name or version that the model repository does not hold
    ├── SourceError (OSError)             a source that cannot be reached or read (database down, bad file)
    │   ├── QueryError                    the source rejected the query; carries its own message and the query
    │   └── EmptyResult                   the query returned no rows, so there is nothing to snapshot
    ├── ServiceError (OSError)            a service aiforge runs or calls cannot be started or reached
    │   └── Overloaded                    a server's queue is full; retry after ``retry_after_s`` seconds
    ├── WorkspaceError (OSError)          the workspace cannot be written (disk full, permissions)
    └── NotFittedError (AttributeError)   a fitted object used before ``fit``

The CLI prints ``Error: <message>`` for any of these and exits with code 1; servers map them to HTTP statuses.
"""

from __future__ import annotations

__all__ = [
    "AiforgeError",
    "ColumnNotFound",
    "EmptyResult",
    "InvalidInput",
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
]


class AiforgeError(Exception):
    """Base class of every error aiforge raises on purpose."""


class InvalidInput(AiforgeError, ValueError):
    """An argument, option, spec or name is not acceptable."""


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
    """A server's bounded queue is full: the request was refused, not lost. Retry after ``retry_after_s`` seconds.

    Servers answer it with HTTP 503 and a ``Retry-After`` header, or gRPC ``UNAVAILABLE``.
    """

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class WorkspaceError(AiforgeError, OSError):
    """The workspace cannot be read or written."""


class NotFittedError(AiforgeError, AttributeError):
    """A fitted object was used before ``fit`` was called."""
