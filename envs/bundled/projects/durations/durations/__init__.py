"""Calendar and duration arithmetic on top of :mod:`datetime`.

Every function takes its reference dates explicitly; nothing here reads the
system clock.
"""

from .arith import add_duration, add_months, days_in_month, duration_between, subtract_duration
from .business import BusinessCalendar, add_business_days, business_days_between
from .duration import Duration, DurationParseError, format_duration, parse_duration
from .humanize import humanize
from .schedule import MonthlyByDay, MonthlyByWeekday, Schedule, Weekly, parse_schedule

__version__ = "0.4.1"

__all__ = [
    "BusinessCalendar", "Duration", "DurationParseError", "MonthlyByDay", "MonthlyByWeekday",
    "Schedule", "Weekly", "add_business_days", "add_duration", "add_months",
    "business_days_between", "days_in_month", "duration_between", "format_duration",
    "humanize", "parse_duration", "parse_schedule", "subtract_duration",
]
