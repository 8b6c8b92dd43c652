"""Business-day arithmetic with configurable weekends and holidays."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import TypeVar

__all__ = ["BusinessCalendar", "add_business_days", "business_days_between"]

D = TypeVar("D", date, datetime)

_ROLL_CONVENTIONS = ("following", "preceding", "modified_following", "modified_preceding")


def _as_date(value: date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"expected a date or datetime, not {type(value).__name__}")


class BusinessCalendar:
    """A set of non-working days: weekend weekdays plus explicit holidays.

    *weekend* holds weekday numbers as returned by :meth:`date.weekday`
    (Monday is 0, Sunday is 6); the default is Saturday and Sunday.
    Calendars are immutable; :meth:`with_holidays` returns a new one.
    """

    def __init__(self, holidays: Iterable[date] = (), weekend: Iterable[int] = (5, 6)) -> None:
        weekend_days = frozenset(weekend)
        for day in weekend_days:
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                raise ValueError(f"weekend days must be integers in 0..6, got {day!r}")
        if len(weekend_days) == 7:
            raise ValueError("a calendar needs at least one working weekday")
        self._weekend = weekend_days
        self._holidays = frozenset(_as_date(day) for day in holidays)
        self._sorted_holidays = sorted(self._holidays)

    @property
    def weekend(self) -> frozenset[int]:
        return self._weekend

    @property
    def holidays(self) -> frozenset[date]:
        return self._holidays

    def __repr__(self) -> str:
        return (
            f"BusinessCalendar(holidays={len(self._holidays)} days, "
            f"weekend={sorted(self._weekend)})"
        )

    def with_holidays(self, *days: date) -> BusinessCalendar:
        """A copy of this calendar with extra holidays."""
        return BusinessCalendar(self._holidays.union(map(_as_date, days)), self._weekend)

    def is_business_day(self, value: date) -> bool:
        day = _as_date(value)
        return day.weekday() not in self._weekend and day not in self._holidays

    def roll(self, value: D, convention: str = "following") -> D:
        """Move *value* onto a business day if it is not one already.

        ``following`` moves forward, ``preceding`` backward.  The
        ``modified_`` variants do the same unless that would leave the month,
        in which case they move the other way.
        """
        if convention not in _ROLL_CONVENTIONS:
            raise ValueError(
                f"unknown roll convention {convention!r}; expected one of {_ROLL_CONVENTIONS}"
            )
        if self.is_business_day(value):
            return value
        step = -1 if convention.endswith("preceding") else 1
        rolled = self._step_to_business_day(value, step)
        if convention.startswith("modified_") and rolled.month != value.month:
            rolled = self._step_to_business_day(value, -step)
        return rolled

    def _step_to_business_day(self, value: D, step: int) -> D:
        current = value
        while True:
            current = current + timedelta(days=step)
            if self.is_business_day(current):
                return current

    def add_business_days(self, start: D, n: int) -> D:
        """Move *n* business days from *start* (backward when *n* < 0).

        Every business day stepped onto counts, so one business day after a
        Friday or a Saturday is the following Monday.  With ``n == 0`` the
        result is *start* rolled forward to a business day.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if n == 0:
            return self.roll(start, "following")
        current = start
        step = 1 if n > 0 else -1
        for _ in range(abs(n)):
            current = self._step_to_business_day(current, step)
        return current

    def business_days_between(self, start: date, end: date) -> int:
        """Count business days in the half-open range ``[start, end)``.

        The count is negative when *end* is before *start*, so that
        ``business_days_between(a, b) == -business_days_between(b, a)``.
        """
        first, last = _as_date(start), _as_date(end)
        if last < first:
            return -self.business_days_between(last, first)

        weeks, extra = divmod((last - first).days, 7)
        count = weeks * (7 - len(self._weekend))
        weekday = first.weekday()
        count += sum(1 for offset in range(extra) if (weekday + offset) % 7 not in self._weekend)

        lo = bisect_left(self._sorted_holidays, first)
        hi = bisect_left(self._sorted_holidays, last)
        count -= sum(
            1 for holiday in self._sorted_holidays[lo:hi] if holiday.weekday() not in self._weekend
        )
        return count


_DEFAULT_CALENDAR = BusinessCalendar()


def add_business_days(start: D, n: int, calendar: BusinessCalendar | None = None) -> D:
    """Shortcut for :meth:`BusinessCalendar.add_business_days`.

    Without a *calendar*, Monday to Friday are business days and there are
    no holidays.
    """
    return (calendar or _DEFAULT_CALENDAR).add_business_days(start, n)


def business_days_between(
    start: date, end: date, calendar: BusinessCalendar | None = None
) -> int:
    """Shortcut for :meth:`BusinessCalendar.business_days_between`."""
    return (calendar or _DEFAULT_CALENDAR).business_days_between(start, end)
