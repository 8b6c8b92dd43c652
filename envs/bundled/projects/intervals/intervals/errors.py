"""Exception types raised by the :mod:`intervals` package."""

from __future__ import annotations


class IntervalError(ValueError):
    """Base class for errors raised when building or combining intervals."""


class IntervalParseError(IntervalError):
    """Raised when a string cannot be parsed as an interval or interval set.

    Attributes:
        reason: a short description of the problem.
        text: the full string that was being parsed.
        position: zero-based offset in ``text`` where the problem was found.
    """

    def __init__(self, message: str, text: str, position: int) -> None:
        super().__init__(f"{message} (at position {position} in {text!r})")
        self.reason = message
        self.text = text
        self.position = position
