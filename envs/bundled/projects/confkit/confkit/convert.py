"""Conversion of raw string values to Python types."""

from __future__ import annotations

import re
from datetime import timedelta

BOOLEAN_STATES: dict[str, bool] = {
    "1": True,
    "yes": True,
    "true": True,
    "on": True,
    "0": False,
    "no": False,
    "false": False,
    "off": False,
}

DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)", re.IGNORECASE)


def to_int(text: str) -> int:
    """Parse an integer; ``0x``, ``0o`` and ``0b`` prefixes and ``_`` are allowed."""
    s = text.strip()
    if s.lstrip("+-")[:2].lower() in ("0x", "0o", "0b"):
        return int(s, 0)
    return int(s, 10)


def to_float(text: str) -> float:
    """Parse a floating point number."""
    return float(text.strip())


def to_bool(text: str) -> bool:
    """Parse ``yes/no``, ``on/off``, ``true/false`` or ``1/0`` (any case)."""
    try:
        return BOOLEAN_STATES[text.strip().lower()]
    except KeyError:
        raise ValueError(f"not a boolean: {text!r}") from None


def to_list(text: str, sep: str | None = ",") -> list[str]:
    """Split *text* into a list of stripped, non-empty items.

    Newlines always separate items, so a multi-line value is a list with one
    item per line.  With ``sep=None`` (or a whitespace separator) items are
    split on any run of whitespace.
    """
    items: list[str] = []
    for line in text.split("\n"):
        if sep is None or not sep.strip():
            items.extend(line.split())
        else:
            items.extend(part.strip() for part in line.split(sep))
    return [item for item in items if item]


def to_duration(text: str) -> timedelta:
    """Parse a duration such as ``90s``, ``1h30m``, ``1.5d`` or ``-2m 30s``.

    A bare number is a number of seconds.  Units are ``ms``, ``s``, ``m``,
    ``h``, ``d`` and ``w``; a leading sign applies to the whole duration.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    if _NUMBER.fullmatch(s):
        return timedelta(seconds=float(s))

    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]

    total = 0.0
    pos = 0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        if match is None:
            if s[pos:].strip():
                raise ValueError(f"invalid duration: {text!r}")
            break
        total += float(match.group(1)) * DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"invalid duration: {text!r}")
    return timedelta(seconds=sign * total)
