"""Numeric intervals with open, closed and infinite bounds, and interval sets.

>>> from intervals import Interval, IntervalSet, parse_interval
>>> a = parse_interval("[1, 5)")
>>> 5 in a
False
>>> s = IntervalSet([a, Interval(5, 8)])
>>> str(s)
'[1, 8]'
"""

from .errors import IntervalError, IntervalParseError
from .interval import Interval, format_endpoint
from .intervalset import IntervalSet
from .parsing import parse_interval, parse_interval_set

__all__ = [
    "Interval",
    "IntervalError",
    "IntervalParseError",
    "IntervalSet",
    "format_endpoint",
    "parse_interval",
    "parse_interval_set",
]

__version__ = "0.4.1"
