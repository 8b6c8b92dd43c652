"""Exception hierarchy.

Every error raised by the library derives from :class:`UnitError`, which is
itself a :class:`ValueError`, so callers can catch either.
"""

from __future__ import annotations


class UnitError(ValueError):
    """Base class for all errors raised by unitconv."""


class UndefinedUnitError(UnitError):
    """A unit name is not known to the registry."""

    def __init__(self, name: str) -> None:
        super().__init__(f"undefined unit {name!r}")
        self.name = name


class ParseError(UnitError):
    """A quantity or unit expression could not be parsed."""


class DimensionalityError(UnitError):
    """An operation mixed quantities whose dimensions are incompatible."""


class OffsetUnitError(UnitError):
    """An operation is ambiguous for units with a shifted zero point (degC, degF)."""


class RedefinitionError(UnitError):
    """A unit name is already taken in the registry."""
