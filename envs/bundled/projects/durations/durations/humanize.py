"""Human-readable relative times: "2 hours ago", "in 3 days"."""

from __future__ import annotations

from datetime import date, datetime, timedelta

__all__ = ["humanize"]

# Approximate unit lengths in seconds, largest first.  Months and years are
# nominal (30 and 365 days): humanized output is deliberately coarse.
_UNITS = (
    ("year", 365 * 86_400),
    ("month", 30 * 86_400),
    ("week", 7 * 86_400),
    ("day", 86_400),
    ("hour", 3_600),
    ("minute", 60),
    ("second", 1),
)


def humanize(
    moment: datetime | date | timedelta,
    *,
    now: datetime | date | None = None,
    just_now: float = 10.0,
) -> str:
    """Describe *moment* relative to *now*.

    *moment* is either a point in time, compared with the explicit *now*,
    or a timedelta (positive means the future).  The largest unit with at
    least one whole unit elapsed is used, and the count is the number of
    whole units, so 90 minutes is "1 hour" in either direction.  Spans
    shorter than *just_now* seconds are rendered as ``"just now"``.

    >>> humanize(datetime(2024, 5, 1, 10), now=datetime(2024, 5, 1, 12))
    '2 hours ago'
    >>> humanize(timedelta(days=3))
    'in 3 days'
    """
    if isinstance(moment, timedelta):
        delta = moment
    else:
        if now is None:
            raise TypeError("humanize() needs an explicit 'now' to compare a date with")
        if isinstance(moment, datetime) != isinstance(now, datetime):
            raise TypeError("moment and now must both be dates or both be datetimes")
        delta = moment - now

    seconds = delta.total_seconds()
    magnitude = abs(seconds)
    if magnitude < just_now:
        return "just now"

    for unit, size in _UNITS:
        if magnitude >= size:
            count = int(magnitude // size)
            break
    else:  # only reachable with just_now < 1
        return "just now"

    label = f"{count} {unit}" + ("" if count == 1 else "s")
    return f"in {label}" if seconds > 0 else f"{label} ago"
