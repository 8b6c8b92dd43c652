"""Applying durations to dates and datetimes, with end-of-month clamping."""

from __future__ import annotations

import calendar
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta
from typing import TypeVar

from .duration import Duration

__all__ = [
    "days_in_month",
    "add_months",
    "add_duration",
    "subtract_duration",
    "duration_between",
]

D = TypeVar("D", date, datetime)


def days_in_month(year: int, month: int) -> int:
    """Number of days in *month* of *year* (leap years included)."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be in 1..12, not {month}")
    return calendar.monthrange(year, month)[1]


def add_months(value: D, months: int) -> D:
    """Shift *value* by a whole number of months.

    When the target month is shorter than the day of *value*, the day is
    clamped to the last day of that month, so January 31 plus one month is
    February 28 (or 29 in a leap year).  The time of day and tzinfo of a
    datetime are kept.
    """
    index = value.month - 1 + months
    year = value.year + index // 12
    month = index % 12 + 1
    if not MINYEAR <= year <= MAXYEAR:
        raise OverflowError(f"year {year} is out of range")
    day = min(value.day, days_in_month(year, month))
    return value.replace(year=year, month=month, day=day)


def add_duration(value: D, duration: Duration) -> D:
    """Return *value* shifted by *duration*.

    Years and months are applied first (with end-of-month clamping), then
    days, then seconds, which is the order used by most calendar libraries.
    Adding to an aware datetime is wall-clock arithmetic, as with
    ``datetime + timedelta``.

    :raises ValueError: if *value* is a plain date and *duration* has a
        time-of-day part.
    """
    if not isinstance(value, date):
        raise TypeError(f"expected a date or datetime, not {type(value).__name__}")
    if not isinstance(duration, Duration):
        raise TypeError(f"expected a Duration, not {type(duration).__name__}")
    if duration.seconds and not isinstance(value, datetime):
        raise ValueError(f"cannot add {duration} to a date: it has a time part")

    result = add_months(value, duration.years * 12 + duration.months)
    if duration.days:
        result = result + timedelta(days=duration.days)
    if duration.seconds:
        result = result + timedelta(seconds=duration.seconds)
    return result


def subtract_duration(value: D, duration: Duration) -> D:
    """Return *value* shifted back by *duration*.

    Because of clamping this is not always the inverse of
    :func:`add_duration`: March 31 minus one month is February 29 (2024),
    and adding the month back gives March 29.
    """
    return add_duration(value, -duration)


def duration_between(start: D, end: D) -> Duration:
    """The calendar duration from *start* to *end*.

    The result uses as many whole months as fit, then days, then seconds, so
    that ``add_duration(start, duration_between(start, end)) == end`` when
    *start* <= *end*.  When *end* is earlier, the result is the negated
    duration from *end* to *start*.
    """
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise TypeError("start and end must both be dates or both be datetimes")
    if end < start:
        return -duration_between(end, start)

    months = (end.year - start.year) * 12 + end.month - start.month
    if add_months(start, months) > end:
        months -= 1
    rest = end - add_months(start, months)
    years, months = divmod(months, 12)
    return Duration(
        years=years,
        months=months,
        days=rest.days,
        seconds=rest.seconds + rest.microseconds / 1_000_000,
    )
