"""When a training job must be done: deadlines and durations as a job spec writes them.

A deadline is a duration from now (``"2h"``), a number of seconds, an ISO time, or the cron line of the next refresh
(``"0 3 * * *"``: the next 03:00); ``reserve`` and ``timeout`` are durations::

    >>> from datetime import datetime, timezone
    >>> parse_deadline("0 3 * * *", now=datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)).isoformat()
    '2026-12-03T03:00:00+00:00'
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from aiforge.errors import InvalidInput

__all__ = ["parse_deadline", "parse_duration"]

_FORMS = (
    "a duration ('90s', '30m', '2h', '1h30m', '1d'), a number of seconds, an ISO time ('2026-12-02T06:00:00+00:00') "
    "or a 5-field cron expression of the next refresh ('0 6 * * *')"
)


_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)\s*([dhms]))\s*", re.IGNORECASE)
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def _duration_s(text: str) -> float | None:
    """Seconds in ``"1h30m"`` or in a plain number such as ``"90"``; ``None`` when ``text`` is neither."""
    pos, total, parts = 0, 0.0, 0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None:
            break
        total += float(match[1]) * _UNIT_S[match[2].lower()]
        pos, parts = match.end(), parts + 1
    if parts and pos == len(text):
        return total
    try:
        return float(text)
    except ValueError:
        return None


def parse_duration(duration: str | float) -> float:
    """Seconds in a duration: ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"``, ``"0s"`` or a number of seconds.

    Raises
    ------
    InvalidInput
        Not a duration, or a negative one.

    Examples
    --------
    >>> parse_duration("1h30m")
    5400.0
    """
    seconds: float | None = None
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        seconds = float(duration)
    elif isinstance(duration, str):
        seconds = _duration_s(duration.strip())
    if seconds is None or not math.isfinite(seconds):
        raise InvalidInput(
            f"cannot read the duration {duration!r}: expected a number of seconds or a duration such as '90s', "
            "'30m', '2h', '1h30m' or '1d'"
        )
    if seconds < 0:
        raise InvalidInput(f"the duration {duration!r} is negative; give a time of 0 seconds or more such as '10m'")
    return seconds


def parse_deadline(deadline: str | float | datetime, *, now: datetime | None = None) -> datetime:
    """The moment a job must be done by, as a timezone-aware datetime.

    Parameters
    ----------
    deadline : str, float or datetime
        A duration from ``now`` (``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"``), a number of seconds from
        ``now``, an ISO time or datetime (naive means local time), or a 5-field cron expression of the refresh
        schedule, read as the next refresh after ``now`` in the time zone of ``now`` (``"0 6 * * *"``: 06:00).
    now : datetime, optional
        The current time (default: now, in the local time zone); naive means local time.

    Raises
    ------
    InvalidInput
        ``deadline`` is none of these forms (the message lists them), or it has already passed.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> parse_deadline("1h30m", now=datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)).isoformat()
    '2026-12-02T07:30:00+00:00'
    """
    now = now if now is not None and now.tzinfo is not None else (now or datetime.now()).astimezone()
    when: datetime | None = None
    if isinstance(deadline, datetime):
        when = deadline.astimezone()
    elif isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
        if math.isfinite(deadline):
            when = now + timedelta(seconds=float(deadline))
    elif isinstance(deadline, str):
        when = _parse_text(deadline.strip(), now)
    if when is None:
        raise InvalidInput(f"cannot read the deadline {deadline!r}: expected {_FORMS}")
    if when <= now:
        raise InvalidInput(
            f"the deadline {deadline!r} has already passed: it is {when.isoformat(timespec='seconds')} and now is "
            f"{now.isoformat(timespec='seconds')}; give a later time, a duration such as '2h', or the refresh schedule "
            "as a cron expression"
        )
    return when


def _parse_text(text: str, now: datetime) -> datetime | None:
    seconds = _duration_s(text)
    if seconds is not None:  # a negative number is a deadline that has passed, not a typo
        return now + timedelta(seconds=seconds) if math.isfinite(seconds) else None
    try:
        return datetime.fromisoformat(text).astimezone(now.tzinfo)
    except ValueError:
        pass
    if len(text.split()) == 5:
        from croniter import croniter

        if croniter.is_valid(text):
            nxt: datetime = croniter(text, now).get_next(datetime)
            return nxt
    return None
