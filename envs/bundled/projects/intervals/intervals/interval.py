"""The :class:`Interval` type: a connected range of numbers.

An interval is described by two endpoints and whether each endpoint is
included (closed, ``[`` / ``]``) or excluded (open, ``(`` / ``)``).
Endpoints may be infinite (``-math.inf`` / ``math.inf``); an infinite
endpoint is always open, whatever bounds were requested.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import IntervalError

Number = Any  # int, float, Fraction, Decimal: anything totally ordered

_BOUNDS = {"[]": (True, True), "[)": (True, False), "(]": (False, True), "()": (False, False)}


def _is_infinite(value: Number) -> bool:
    return value == math.inf or value == -math.inf


def _is_nan(value: Number) -> bool:
    return value != value


def format_endpoint(value: Number) -> str:
    """Format a single endpoint the way :func:`str` on an interval does."""
    if value == math.inf:
        return "+inf"
    if value == -math.inf:
        return "-inf"
    return str(value)


def _bounds_string(left_closed: bool, right_closed: bool) -> str:
    return ("[" if left_closed else "(") + ("]" if right_closed else ")")


class Interval:
    """A connected set of numbers between ``lower`` and ``upper``.

    ``bounds`` is one of ``"[]"`` (the default), ``"[)"``, ``"(]"`` or ``"()"``
    and says which endpoints belong to the interval.

    >>> Interval(1, 5, "[)").contains(5)
    False

    An interval whose endpoints are equal and not both closed contains no
    points; all such empty intervals compare equal to :meth:`Interval.empty`.
    A lower endpoint greater than the upper endpoint is an error.
    """

    __slots__ = ("_lower", "_upper", "_left_closed", "_right_closed")

    def __init__(self, lower: Number, upper: Number, bounds: str = "[]") -> None:
        try:
            left_closed, right_closed = _BOUNDS[bounds]
        except (KeyError, TypeError):
            raise IntervalError(
                f"bounds must be one of {', '.join(repr(b) for b in _BOUNDS)}, got {bounds!r}"
            ) from None
        if _is_nan(lower) or _is_nan(upper):
            raise IntervalError("interval endpoints must not be NaN")
        if lower > upper:
            raise IntervalError(f"lower endpoint {lower!r} is greater than upper endpoint {upper!r}")
        self._lower = lower
        self._upper = upper
        self._left_closed = left_closed and not _is_infinite(lower)
        self._right_closed = right_closed and not _is_infinite(upper)

    # -- alternative constructors -------------------------------------------

    @classmethod
    def from_flags(cls, lower: Number, upper: Number, left_closed: bool, right_closed: bool) -> Interval:
        """Build an interval from boolean closedness flags."""
        return cls(lower, upper, _bounds_string(left_closed, right_closed))

    @classmethod
    def point(cls, value: Number) -> Interval:
        """The degenerate interval ``[value, value]``."""
        if _is_infinite(value):
            raise IntervalError("a single point must be finite")
        return cls(value, value, "[]")

    @classmethod
    def empty(cls) -> Interval:
        """The empty interval."""
        return cls(0, 0, "()")

    @classmethod
    def all(cls) -> Interval:
        """The interval ``(-inf, +inf)`` containing every number."""
        return cls(-math.inf, math.inf, "()")

    # -- attributes ----------------------------------------------------------

    @property
    def lower(self) -> Number:
        return self._lower

    @property
    def upper(self) -> Number:
        return self._upper

    @property
    def left_closed(self) -> bool:
        return self._left_closed

    @property
    def right_closed(self) -> bool:
        return self._right_closed

    @property
    def bounds(self) -> str:
        return _bounds_string(self._left_closed, self._right_closed)

    @property
    def is_empty(self) -> bool:
        return self._lower == self._upper and not (self._left_closed and self._right_closed)

    @property
    def is_degenerate(self) -> bool:
        """True for a single-point interval ``[x, x]``."""
        return self._lower == self._upper and self._left_closed and self._right_closed

    @property
    def is_bounded(self) -> bool:
        return not (_is_infinite(self._lower) or _is_infinite(self._upper))

    @property
    def length(self) -> Number:
        """``upper - lower``; ``0`` for empty intervals, ``inf`` if unbounded."""
        if self.is_empty:
            return 0
        return self._upper - self._lower

    def lower_key(self) -> tuple:
        """Sort key of the lower bound: smaller means the interval starts earlier."""
        return (self._lower, 0 if self._left_closed else 1)

    def upper_key(self) -> tuple:
        """Sort key of the upper bound: larger means the interval ends later."""
        return (self._upper, 1 if self._right_closed else 0)

    def sort_key(self) -> tuple:
        return (self.lower_key(), self.upper_key())

    # -- predicates ----------------------------------------------------------

    def contains(self, item: Number | Interval) -> bool:
        """Whether a point, or every point of another interval, lies in this one."""
        if isinstance(item, Interval):
            if item.is_empty:
                return True
            if self.is_empty:
                return False
            return self.lower_key() <= item.lower_key() and item.upper_key() <= self.upper_key()
        if self.is_empty or _is_nan(item):
            return False
        if self._lower < item < self._upper:
            return True
        return (item == self._lower and self._left_closed) or (item == self._upper and self._right_closed)

    def __contains__(self, item: Number | Interval) -> bool:
        return self.contains(item)

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share at least one point."""
        return not self.intersection(other).is_empty

    def is_adjacent(self, other: Interval) -> bool:
        """Whether the intervals are disjoint but their union has no gap.

        ``[1, 2)`` and ``[2, 3]`` are adjacent; ``[1, 2]`` and ``[2, 3]``
        overlap instead, and ``[1, 2)`` and ``(2, 3]`` leave ``2`` out.
        """
        if self.is_empty or other.is_empty:
            return False
        if self._upper == other._lower:
            return self._right_closed != other._left_closed
        if other._upper == self._lower:
            return other._right_closed != self._left_closed
        return False

    def is_connected(self, other: Interval) -> bool:
        """Whether the union of the two intervals is itself an interval."""
        return self.overlaps(other) or self.is_adjacent(other)

    # -- combinations --------------------------------------------------------

    def intersection(self, other: Interval) -> Interval:
        """The points in both intervals (possibly the empty interval)."""
        if self.is_empty or other.is_empty:
            return Interval.empty()
        start = max(self, other, key=Interval.lower_key)
        end = min(self, other, key=Interval.upper_key)
        if start._lower > end._upper:
            return Interval.empty()
        return Interval.from_flags(start._lower, end._upper, start._left_closed, end._right_closed)

    def __and__(self, other: Interval) -> Interval:
        if not isinstance(other, Interval):
            return NotImplemented
        return self.intersection(other)

    def hull(self, other: Interval) -> Interval:
        """The smallest interval containing both intervals."""
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        start = min(self, other, key=Interval.lower_key)
        end = max(self, other, key=Interval.upper_key)
        return Interval.from_flags(start._lower, end._upper, start._left_closed, end._right_closed)

    def union(self, other: Interval) -> Interval:
        """The union of two connected intervals.

        Raises :class:`IntervalError` if the intervals are separated by a gap;
        use :meth:`hull` or :class:`~intervals.IntervalSet` in that case.
        """
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        if not self.is_connected(other):
            raise IntervalError(f"cannot take the union of disjoint intervals {self} and {other}")
        return self.hull(other)

    def difference(self, other: Interval) -> list[Interval]:
        """The parts of this interval not in ``other``: zero, one or two intervals."""
        common = self.intersection(other)
        if common.is_empty:
            return [] if self.is_empty else [self]
        pieces = [
            Interval.from_flags(self._lower, common._lower, self._left_closed, not common._left_closed),
            Interval.from_flags(common._upper, self._upper, not common._right_closed, self._right_closed),
        ]
        return [piece for piece in pieces if not piece.is_empty]

    # -- dunder protocol -----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interval):
            return NotImplemented
        if self.is_empty or other.is_empty:
            return self.is_empty and other.is_empty
        return (
            self._lower == other._lower
            and self._upper == other._upper
            and self._left_closed == other._left_closed
            and self._right_closed == other._right_closed
        )

    def __hash__(self) -> int:
        if self.is_empty:
            return hash((Interval, "empty"))
        return hash((self._lower, self._upper, self._left_closed, self._right_closed))

    def __bool__(self) -> bool:
        return not self.is_empty

    def __repr__(self) -> str:
        if self.is_empty:
            return "Interval.empty()"
        return f"Interval({self._lower!r}, {self._upper!r}, {self.bounds!r})"

    def __str__(self) -> str:
        if self.is_empty:
            return "empty"
        left = "[" if self._left_closed else "("
        right = "]" if self._right_closed else ")"
        return f"{left}{format_endpoint(self._lower)}, {format_endpoint(self._upper)}{right}"
