"""What the bad-input corpora share: the rule every answer must keep."""

from __future__ import annotations

from typing import Any

from aiforge.errors import AiforgeError


def answers_cleanly(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call and return the result; an AiforgeError is an answer too. Any other exception fails the test."""
    try:
        return call(*args, **kwargs)
    except AiforgeError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        return exc
