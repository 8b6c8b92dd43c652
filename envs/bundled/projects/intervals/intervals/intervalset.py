"""The :class:`IntervalSet` type: a union of disjoint intervals.

An interval set is kept in a normal form: its components are non-empty,
sorted, pairwise disjoint and never adjacent, so ``[1, 2)`` and ``[2, 3]``
are stored as the single component ``[1, 3]``.  Two sets describing the
same points therefore always compare equal.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Iterable, Iterator

from .interval import Interval, Number


def _normalise(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort ``intervals`` and merge those that overlap or touch."""
    items = []
    for item in intervals:
        if not isinstance(item, Interval):
            raise TypeError(f"IntervalSet components must be Interval objects, not {type(item).__name__}")
        if not item.is_empty:
            items.append(item)
    items.sort(key=Interval.sort_key)
    merged: list[Interval] = []
    for item in items:
        if merged and merged[-1].is_connected(item):
            merged[-1] = merged[-1].hull(item)
        else:
            merged.append(item)
    return merged


def _as_set(value: IntervalSet | Interval) -> IntervalSet:
    if isinstance(value, IntervalSet):
        return value
    if isinstance(value, Interval):
        return IntervalSet([value])
    raise TypeError(f"expected an Interval or IntervalSet, not {type(value).__name__}")


class IntervalSet:
    """A mutable, normalised union of intervals.

    >>> s = IntervalSet([Interval(1, 2, "[)"), Interval(2, 3)])
    >>> list(s)
    [Interval(1, 3, '[]')]
    >>> 2.5 in s
    True
    """

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self._intervals: list[Interval] = _normalise(intervals)
        self._starts: list[Number] | None = None

    @classmethod
    def _from_normalised(cls, intervals: list[Interval]) -> IntervalSet:
        new = cls.__new__(cls)
        new._intervals = intervals
        new._starts = None
        return new

    # -- mutation ------------------------------------------------------------

    def add(self, interval: Interval) -> None:
        """Add every point of ``interval`` to the set."""
        self._intervals = _normalise([*self._intervals, interval])
        self._starts = None

    def update(self, intervals: Iterable[Interval]) -> None:
        """Add several intervals at once."""
        self._intervals = _normalise([*self._intervals, *intervals])
        self._starts = None

    def remove(self, interval: Interval) -> None:
        """Remove every point of ``interval`` from the set.

        Points of ``interval`` that are not in the set are ignored.
        """
        pieces: list[Interval] = []
        for component in self._intervals:
            pieces.extend(component.difference(interval))
        self._intervals = pieces
        self._starts = None

    def copy(self) -> IntervalSet:
        return IntervalSet._from_normalised(list(self._intervals))

    # -- queries -------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return not self._intervals

    def span(self) -> Interval:
        """The smallest single interval covering the whole set."""
        if not self._intervals:
            return Interval.empty()
        return self._intervals[0].hull(self._intervals[-1])

    def measure(self) -> Number:
        """Total length of all components."""
        return sum((component.length for component in self._intervals), 0)

    def _component_index(self, point: Number) -> int:
        """Index of the component that could contain ``point``, or -1."""
        if self._starts is None:
            self._starts = [component.lower for component in self._intervals]
        return bisect_right(self._starts, point) - 1

    def contains(self, item: Number | Interval) -> bool:
        """Whether a point, or a whole interval, lies in the set."""
        if isinstance(item, Interval):
            return item.is_empty or any(component.contains(item) for component in self._intervals)
        if item != item:  # NaN
            return False
        index = self._component_index(item)
        return index >= 0 and self._intervals[index].contains(item)

    def __contains__(self, item: Number | Interval) -> bool:
        return self.contains(item)

    # -- set algebra ---------------------------------------------------------

    def union(self, other: IntervalSet | Interval) -> IntervalSet:
        return IntervalSet([*self._intervals, *_as_set(other)._intervals])

    def intersection(self, other: IntervalSet | Interval) -> IntervalSet:
        other_items = _as_set(other)._intervals
        result: list[Interval] = []
        i = j = 0
        while i < len(self._intervals) and j < len(other_items):
            a, b = self._intervals[i], other_items[j]
            common = a & b
            if not common.is_empty:
                result.append(common)
            # Advance whichever component finishes first.
            if a.upper_key() <= b.upper_key():
                i += 1
            else:
                j += 1
        return IntervalSet._from_normalised(result)

    def difference(self, other: IntervalSet | Interval) -> IntervalSet:
        result = self.copy()
        for component in _as_set(other)._intervals:
            result.remove(component)
        return result

    def complement(self) -> IntervalSet:
        """Every number not in the set."""
        if not self._intervals:
            return IntervalSet([Interval.all()])
        first, last = self._intervals[0], self._intervals[-1]
        gaps = [Interval.from_flags(-math.inf, first.lower, False, not first.left_closed)]
        for before, after in zip(self._intervals, self._intervals[1:]):
            gaps.append(Interval.from_flags(before.upper, after.lower, not before.right_closed, not after.left_closed))
        gaps.append(Interval.from_flags(last.upper, math.inf, not last.right_closed, False))
        return IntervalSet._from_normalised([gap for gap in gaps if not gap.is_empty])

    __or__ = union
    __and__ = intersection
    __sub__ = difference
    __invert__ = complement

    def __ior__(self, other: IntervalSet | Interval) -> IntervalSet:
        self.update(_as_set(other)._intervals)
        return self

    def __isub__(self, other: IntervalSet | Interval) -> IntervalSet:
        for component in _as_set(other)._intervals:
            self.remove(component)
        return self

    # -- container protocol --------------------------------------------------

    def __iter__(self) -> Iterator[Interval]:
        return iter(list(self._intervals))

    def __len__(self) -> int:
        return len(self._intervals)

    def __bool__(self) -> bool:
        return bool(self._intervals)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Interval):
            other = IntervalSet([other])
        if not isinstance(other, IntervalSet):
            return NotImplemented
        return self._intervals == other._intervals

    def __repr__(self) -> str:
        return f"IntervalSet({self._intervals!r})"

    def __str__(self) -> str:
        if not self._intervals:
            return "empty"
        return " | ".join(str(component) for component in self._intervals)
