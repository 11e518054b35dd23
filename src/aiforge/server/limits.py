"""A bounded number of requests in flight: past it a request is refused at once, so memory stays flat."""

from __future__ import annotations

from numbers import Integral
from types import TracebackType

from aiforge.errors import Overloaded
from aiforge.validation import Interval, validate_params

__all__ = ["InFlightLimit"]


class InFlightLimit:
    """At most ``limit`` requests at once; one more raises :class:`~aiforge.errors.Overloaded` instead of queueing.

    The error table answers it with 503 and ``Retry-After`` over HTTP and ``UNAVAILABLE`` with a ``retry-after``
    trailer over gRPC. Use it from the event loop's thread only (it is a plain counter, no lock)::

        limit = InFlightLimit(256, name="the APS")
        with limit:          # raises Overloaded when 256 requests are already inside
            ...

    Parameters
    ----------
    limit : int
        Requests allowed at once, >= 1.
    name : str
        Who refuses, for the message: "NAME is at its limit of LIMIT requests in flight; ...".
    retry_after_s : float
        What the refusal tells the client to wait.

    Examples
    --------
    >>> limit = InFlightLimit(1, name="the service")
    >>> with limit:
    ...     limit.in_flight
    1
    """

    def __init__(self, limit: int, *, name: str = "the server", retry_after_s: float = 1.0) -> None:
        validate_params({"limit": limit}, {"limit": [Interval(Integral, 1, None, closed="left")]})
        self.limit = limit
        self.name = name
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self._message = (f"{name} is at its limit of {limit} requests in flight; retry after the Retry-After "
                         "seconds")

    def __repr__(self) -> str:
        return f"InFlightLimit({self.limit}, name={self.name!r}, in_flight={self.in_flight})"

    def acquire(self) -> None:
        """Take a place, or raise :class:`~aiforge.errors.Overloaded` when all ``limit`` places are taken."""
        if self.in_flight >= self.limit:
            raise Overloaded(self._message, self.retry_after_s)
        self.in_flight += 1

    def release(self) -> None:
        """Give a place back (once per successful :meth:`acquire`)."""
        self.in_flight -= 1

    def __enter__(self) -> InFlightLimit:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
