"""Parsing intervals and interval sets from their string form.

The grammar accepted by :func:`parse_interval` is the one produced by
``str(interval)``::

    interval  := "empty" | LBRACKET endpoint "," endpoint RBRACKET
               | "[" endpoint "]"                 (a single point)
    LBRACKET  := "[" | "("
    RBRACKET  := "]" | ")"
    endpoint  := integer | decimal | ["+" | "-"] ("inf" | "infinity" | "∞")

Whitespace around tokens is ignored and the infinity spellings are
case-insensitive.  An interval set is written as intervals joined by ``|``
(or ``∪``), or as ``empty``.
"""

from __future__ import annotations

import math
import re
from typing import Callable

from .errors import IntervalError, IntervalParseError
from .interval import Interval, Number
from .intervalset import IntervalSet

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_INFINITY = {"inf", "infinity", "\u221e"}
_EMPTY = {"empty", "\u2205", "{}"}


def _parse_endpoint(token: str, text: str, position: int, convert: Callable[[str], Number] | None) -> Number:
    stripped = token.strip()
    offset = position + (len(token) - len(token.lstrip()))
    if not stripped:
        raise IntervalParseError("missing endpoint", text, offset)
    lowered = stripped.lower()
    sign = 1
    if lowered[0] in "+-":
        sign = -1 if lowered[0] == "-" else 1
        lowered = lowered[1:].lstrip()
    if lowered in _INFINITY:
        return sign * math.inf
    if convert is not None:
        try:
            return convert(stripped)
        except (ValueError, ArithmeticError) as exc:
            raise IntervalParseError(f"invalid endpoint {stripped!r}: {exc}", text, offset) from None
    if _INTEGER.fullmatch(stripped):
        return int(stripped)
    if _DECIMAL.fullmatch(stripped):
        return float(stripped)
    raise IntervalParseError(f"invalid endpoint {stripped!r}", text, offset)


def parse_interval(text: str, *, convert: Callable[[str], Number] | None = None) -> Interval:
    """Parse a string such as ``"[1, 5)"`` or ``"(-inf, 3]"``.

    ``convert``, if given, turns each finite endpoint string into a number
    (for example :class:`decimal.Decimal` or :class:`fractions.Fraction`);
    by default integers become ``int`` and everything else ``float``.

    Raises :class:`~intervals.IntervalParseError` on malformed input.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, not {type(text).__name__}")
    body = text.strip()
    start = len(text) - len(text.lstrip())
    if body.lower() in _EMPTY:
        return Interval.empty()
    if not body or body[0] not in "[(":
        raise IntervalParseError("expected '[' or '('", text, start)
    if body[-1] not in "])":
        raise IntervalParseError("expected ']' or ')'", text, start + len(body) - 1)
    inner = body[1:-1]
    inner_start = start + 1
    parts = inner.split(",")
    if len(parts) == 1:
        if body[0] != "[" or body[-1] != "]":
            raise IntervalParseError("a single point must be written as '[x]'", text, start)
        value = _parse_endpoint(parts[0], text, inner_start, convert)
        try:
            return Interval.point(value)
        except IntervalError as exc:
            raise IntervalParseError(str(exc), text, start) from None
    if len(parts) != 2:
        comma = inner_start + len(parts[0]) + 1 + len(parts[1])
        raise IntervalParseError("expected exactly two endpoints", text, comma)
    lower = _parse_endpoint(parts[0], text, inner_start, convert)
    upper = _parse_endpoint(parts[1], text, inner_start + len(parts[0]) + 1, convert)
    try:
        return Interval(lower, upper, body[0] + body[-1])
    except IntervalError as exc:
        raise IntervalParseError(str(exc), text, start) from None


def parse_interval_set(text: str, *, convert: Callable[[str], Number] | None = None) -> IntervalSet:
    """Parse a string such as ``"[1, 2) | (3, +inf)"`` into an :class:`IntervalSet`."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string, not {type(text).__name__}")
    if text.strip().lower() in _EMPTY:
        return IntervalSet()
    pieces = []
    position = 0
    for chunk in re.split(r"[|\u222a]", text):
        if not chunk.strip():
            raise IntervalParseError("empty component", text, position)
        try:
            pieces.append(parse_interval(chunk, convert=convert))
        except IntervalParseError as exc:
            raise IntervalParseError(exc.reason, text, position + exc.position) from None
        position += len(chunk) + 1
    return IntervalSet(pieces)
