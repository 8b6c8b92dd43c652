"""The :class:`Duration` type and ISO 8601 duration parsing and formatting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Duration", "DurationParseError", "parse_duration", "format_duration"]

_FRACTION = r"\d+(?:[.,]\d+)?"
_PATTERN = re.compile(
    r"(?P<sign>[-+])?P"
    r"(?:(?P<years>\d+)Y)?"
    r"(?:(?P<months>\d+)M)?"
    r"(?:(?P<weeks>\d+)W)?"
    r"(?:(?P<days>\d+)D)?"
    rf"(?:T(?:(?P<hours>{_FRACTION})H)?"
    rf"(?:(?P<minutes>{_FRACTION})M)?"
    rf"(?:(?P<seconds>{_FRACTION})S)?)?"
)
_FIELDS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
_MICROS_PER_SECOND = 1_000_000


class DurationParseError(ValueError):
    """Raised when a string is not a valid ISO 8601 duration."""


@dataclass(frozen=True)
class Duration:
    """A calendar-aware span of time.

    Years and months are kept apart from days and seconds because their
    length depends on the date they are applied to.  A negative duration has
    every non-zero part negative.  Mixed signs can arise from arithmetic and
    are allowed, but such a duration has no ISO 8601 representation.

    ``seconds`` holds the whole time-of-day part (hours and minutes included)
    and is kept at microsecond resolution, like :class:`datetime.timedelta`.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("years", "months", "days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)):
            raise TypeError(f"seconds must be a number, not {type(self.seconds).__name__}")
        # ``+ 0.0`` turns a negative zero into a plain zero.
        object.__setattr__(self, "seconds", round(float(self.seconds), 6) + 0.0)

    @classmethod
    def from_timedelta(cls, delta: timedelta) -> Duration:
        """Build an exact duration (days and seconds only) from a timedelta."""
        micros = (delta.days * 86_400 + delta.seconds) * _MICROS_PER_SECOND + delta.microseconds
        sign = -1 if micros < 0 else 1
        days, rest = divmod(abs(micros), 86_400 * _MICROS_PER_SECOND)
        return cls(days=sign * days, seconds=sign * rest / _MICROS_PER_SECOND)

    @property
    def is_exact(self) -> bool:
        """True when the duration has no year or month part."""
        return self.years == 0 and self.months == 0

    def to_timedelta(self) -> timedelta:
        """Convert to a timedelta; only possible for exact durations."""
        if not self.is_exact:
            raise ValueError(f"{self!r} has a year or month part and no fixed length")
        return timedelta(days=self.days, seconds=self.seconds)

    def total_seconds(self) -> float:
        """Length in seconds; only possible for exact durations."""
        return self.to_timedelta().total_seconds()

    def __bool__(self) -> bool:
        return any((self.years, self.months, self.days, self.seconds))

    def __neg__(self) -> Duration:
        return Duration(-self.years, -self.months, -self.days, -self.seconds)

    def __add__(self, other: object) -> Duration:
        if not isinstance(other, Duration):
            return NotImplemented
        return Duration(
            self.years + other.years,
            self.months + other.months,
            self.days + other.days,
            self.seconds + other.seconds,
        )

    def __sub__(self, other: object) -> Duration:
        if not isinstance(other, Duration):
            return NotImplemented
        return self + (-other)

    def __mul__(self, factor: object) -> Duration:
        if isinstance(factor, bool) or not isinstance(factor, int):
            return NotImplemented
        return Duration(
            self.years * factor, self.months * factor, self.days * factor, self.seconds * factor
        )

    __rmul__ = __mul__

    def __str__(self) -> str:
        return format_duration(self)


def _number(text: str | None) -> float:
    return float(text.replace(",", ".")) if text else 0.0


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration such as ``"P1Y2M10DT2H30M"`` or ``"-PT0.5S"``.

    Weeks (``"P2W"``) are converted to days.  Fractions (with ``.`` or ``,``)
    are accepted on the hour, minute and second parts only.  A leading ``-``
    negates every part.

    :raises DurationParseError: if *text* is not a valid duration.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, not {type(text).__name__}")
    stripped = text.strip()
    match = _PATTERN.fullmatch(stripped)
    if (
        match is None
        or stripped.endswith("T")
        or all(match[field] is None for field in _FIELDS)
    ):
        raise DurationParseError(f"invalid ISO 8601 duration: {text!r}")

    sign = -1 if match["sign"] == "-" else 1
    years, months, weeks, days = (
        sign * int(match[field] or 0) for field in ("years", "months", "weeks", "days")
    )
    seconds = (
        _number(match["hours"]) * 3600 + _number(match["minutes"]) * 60 + _number(match["seconds"])
    )
    return Duration(years, months, days + 7 * weeks, sign * seconds)


def format_duration(duration: Duration) -> str:
    """Render *duration* in canonical ISO 8601 form.

    The time part is split into hours, minutes and seconds; fractional
    seconds keep up to microsecond precision.  The zero duration is
    ``"PT0S"``.

    :raises ValueError: if the parts do not all share the same sign.
    """
    parts = (duration.years, duration.months, duration.days, duration.seconds)
    negative = any(part < 0 for part in parts)
    if negative and any(part > 0 for part in parts):
        raise ValueError(f"cannot format a duration with mixed signs: {duration!r}")
    if negative:
        duration = -duration
    if not duration:
        return "PT0S"

    out = ["-P" if negative else "P"]
    for value, unit in ((duration.years, "Y"), (duration.months, "M"), (duration.days, "D")):
        if value:
            out.append(f"{value}{unit}")

    micros = round(duration.seconds * _MICROS_PER_SECOND)
    if micros:
        out.append("T")
        hours, micros = divmod(micros, 3600 * _MICROS_PER_SECOND)
        minutes, micros = divmod(micros, 60 * _MICROS_PER_SECOND)
        seconds, fraction = divmod(micros, _MICROS_PER_SECOND)
        if hours:
            out.append(f"{hours}H")
        if minutes:
            out.append(f"{minutes}M")
        if seconds or fraction:
            text = str(seconds)
            if fraction:
                text += f".{fraction:06d}".rstrip("0")
            out.append(f"{text}S")
    return "".join(out)
