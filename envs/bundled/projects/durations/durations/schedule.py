"""Recurring schedules: weekly, monthly on a day, monthly on the n-th weekday."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from itertools import islice

from .arith import add_months, days_in_month

__all__ = ["Schedule", "Weekly", "MonthlyByDay", "MonthlyByWeekday", "parse_schedule"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
    "fourth": 4, "4th": 4, "fifth": 5, "5th": 5, "last": -1,
}


def _check_interval(interval: int) -> int:
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be a positive integer, not {interval!r}")
    return interval


def _start_date(start: date) -> date:
    return start.date() if isinstance(start, datetime) else start


class Schedule(ABC):
    """A rule producing an increasing, unbounded sequence of dates."""

    @abstractmethod
    def iter_from(self, start: date) -> Iterator[date]:
        """Yield occurrences on or after *start*, in order, without end."""

    def occurrences(self, start: date, count: int) -> list[date]:
        """The first *count* occurrences on or after *start*."""
        if count < 0:
            raise ValueError("count must not be negative")
        return list(islice(self.iter_from(_start_date(start)), count))

    def next_after(self, moment: date) -> date:
        """The first occurrence strictly after *moment*."""
        return next(self.iter_from(_start_date(moment) + timedelta(days=1)))


class Weekly(Schedule):
    """Every *interval* weeks on the given weekdays (0 = Monday).

    Weeks start on Monday and are counted from the week containing the
    start date, so ``Weekly([1], interval=2)`` is "every other Tuesday"
    starting with the start date's week.
    """

    def __init__(self, weekdays: Iterable[int], interval: int = 1) -> None:
        days = sorted(set(weekdays))
        if not days or any(not 0 <= day <= 6 for day in days):
            raise ValueError("weekdays must be a non-empty collection of integers in 0..6")
        self.weekdays = tuple(days)
        self.interval = _check_interval(interval)

    def __repr__(self) -> str:
        return f"Weekly({list(self.weekdays)}, interval={self.interval})"

    def iter_from(self, start: date) -> Iterator[date]:
        week = start - timedelta(days=start.weekday())
        while True:
            for weekday in self.weekdays:
                day = week + timedelta(days=weekday)
                if day >= start:
                    yield day
            week += timedelta(weeks=self.interval)


class MonthlyByDay(Schedule):
    """Day *day* of every *interval* months, clamped to the month's end.

    ``MonthlyByDay(31)`` falls on January 31, February 28/29, March 31,
    April 30 and so on: a short month never shifts later occurrences.
    """

    def __init__(self, day: int, interval: int = 1) -> None:
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
            raise ValueError(f"day must be in 1..31, not {day!r}")
        self.day = day
        self.interval = _check_interval(interval)

    def __repr__(self) -> str:
        return f"MonthlyByDay({self.day}, interval={self.interval})"

    def _in_month(self, month: date) -> date:
        return month.replace(day=min(self.day, days_in_month(month.year, month.month)))

    def iter_from(self, start: date) -> Iterator[date]:
        month = start.replace(day=1)
        if self._in_month(month) < start:
            month = add_months(month, self.interval)
        while True:
            yield self._in_month(month)
            month = add_months(month, self.interval)


class MonthlyByWeekday(Schedule):
    """The *nth* *weekday* of every *interval* months.

    *nth* is 1 to 5 counting from the start of the month, or -1 to -5
    counting from its end (-1 is the last).  Months without such a day (a
    fifth Friday, say) are skipped.
    """

    def __init__(self, weekday: int, nth: int, interval: int = 1) -> None:
        if not 0 <= weekday <= 6:
            raise ValueError(f"weekday must be in 0..6, not {weekday!r}")
        if nth == 0 or not -5 <= nth <= 5:
            raise ValueError(f"nth must be in 1..5 or -5..-1, not {nth!r}")
        self.weekday = weekday
        self.nth = nth
        self.interval = _check_interval(interval)

    def __repr__(self) -> str:
        return f"MonthlyByWeekday({self.weekday}, {self.nth}, interval={self.interval})"

    def _in_month(self, year: int, month: int) -> date | None:
        length = days_in_month(year, month)
        if self.nth > 0:
            offset = (self.weekday - date(year, month, 1).weekday()) % 7
            day = 1 + offset + 7 * (self.nth - 1)
        else:
            offset = (date(year, month, length).weekday() - self.weekday) % 7
            day = length - offset - 7 * (-self.nth - 1)
        return date(year, month, day) if 1 <= day <= length else None

    def iter_from(self, start: date) -> Iterator[date]:
        month = start.replace(day=1)
        while True:
            day = self._in_month(month.year, month.month)
            if day is not None and day >= start:
                yield day
            month = add_months(month, self.interval)


_WEEKDAY = "|".join(WEEKDAYS)
_NTH_WEEKDAY = re.compile(rf"every (?P<nth>{'|'.join(_ORDINALS)}) (?P<weekday>{_WEEKDAY})")
_WEEKLY = re.compile(
    rf"every (?:(?P<other>other) |(?P<n>\d+) weeks on )?"
    rf"(?P<days>(?:{_WEEKDAY})(?:(?:, | and |, and )(?:{_WEEKDAY}))*)"
)
_MONTHLY = re.compile(r"(?:monthly|every month|every (?P<n>\d+) months) on day (?P<day>\d+)")


def parse_schedule(text: str) -> Schedule:
    """Build a schedule from a short English phrase (case-insensitive).

    Supported forms::

        every 2nd tuesday            -> MonthlyByWeekday(1, 2)
        every last friday            -> MonthlyByWeekday(4, -1)
        every monday and thursday    -> Weekly([0, 3])
        every other wednesday        -> Weekly([2], interval=2)
        every 3 weeks on monday      -> Weekly([0], interval=3)
        monthly on day 31            -> MonthlyByDay(31)
        every 2 months on day 15     -> MonthlyByDay(15, interval=2)
    """
    phrase = " ".join(text.lower().split())
    if match := _NTH_WEEKDAY.fullmatch(phrase):
        return MonthlyByWeekday(WEEKDAYS.index(match["weekday"]), _ORDINALS[match["nth"]])
    if match := _WEEKLY.fullmatch(phrase):
        interval = 2 if match["other"] else int(match["n"] or 1)
        days = re.findall(_WEEKDAY, match["days"])
        return Weekly([WEEKDAYS.index(day) for day in days], interval=interval)
    if match := _MONTHLY.fullmatch(phrase):
        return MonthlyByDay(int(match["day"]), interval=int(match["n"] or 1))
    raise ValueError(f"unrecognised schedule: {text!r}")
