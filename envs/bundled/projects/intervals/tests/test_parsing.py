import math
from decimal import Decimal
from fractions import Fraction

import pytest

from intervals import Interval, IntervalParseError, IntervalSet, parse_interval, parse_interval_set

inf = math.inf


@pytest.mark.parametrize("text, expected", [
    ("[1, 5)", Interval(1, 5, "[)")),
    ("(-inf, 3]", Interval(-inf, 3, "(]")),
    ("  ( 0.5 ,2.5 )  ", Interval(0.5, 2.5, "()")),
    ("[-10,-2]", Interval(-10, -2)),
    ("[1e-3, 2E2]", Interval(0.001, 200.0)),
    ("[.5, 7.]", Interval(0.5, 7.0)),
    ("(-Infinity, +INF)", Interval.all()),
    ("[0, \u221e)", Interval(0, inf, "[)")),
    ("[4]", Interval.point(4)),
    ("empty", Interval.empty()),
])
def test_parse_interval(text, expected):
    assert parse_interval(text) == expected


def test_parse_keeps_integers_as_int():
    iv = parse_interval("[1, 5)")
    assert type(iv.lower) is int and type(iv.upper) is int
    assert type(parse_interval("[1.0, 5]").lower) is float
    assert parse_interval("[-inf, 3]").bounds == "(]"


def test_parse_with_converter():
    iv = parse_interval("[0.1, 1/3]", convert=Fraction)
    assert iv.lower == Fraction(1, 10)
    assert iv.upper == Fraction(1, 3)
    assert parse_interval("(1.10, +inf)", convert=Decimal).lower == Decimal("1.10")


@pytest.mark.parametrize("text, position", [
    ("1, 5]", 0),
    ("[1, 5", 4),
    ("[1, 2, 3]", 5),
    ("[a, 5]", 1),
    ("[1,   ]", 6),
    ("(4)", 0),
    ("[5, 1]", 0),
    ("", 0),
])
def test_parse_errors(text, position):
    with pytest.raises(IntervalParseError) as info:
        parse_interval(text)
    assert info.value.position == position
    assert info.value.text == text


def test_parse_error_is_value_error():
    with pytest.raises(ValueError):
        parse_interval("[nan, 1]")
    with pytest.raises(TypeError):
        parse_interval(5)


@pytest.mark.parametrize("iv", [
    Interval(1, 5, "[)"),
    Interval(-inf, -0.25, "(]"),
    Interval(3, inf, "()"),
    Interval.point(-7),
    Interval.empty(),
])
def test_str_round_trip(iv):
    assert parse_interval(str(iv)) == iv


def test_parse_interval_set():
    s = parse_interval_set("[0, 1) | [1, 2] \u222a (5, +inf)")
    assert s == IntervalSet([Interval(0, 2), Interval(5, inf, "()")])
    assert parse_interval_set(" empty ") == IntervalSet()


def test_interval_set_round_trip():
    s = IntervalSet([Interval(-inf, -1, "()"), Interval(0, 0.5), Interval(3, 4, "(]")])
    assert parse_interval_set(str(s)) == s


def test_parse_interval_set_error_position():
    with pytest.raises(IntervalParseError) as info:
        parse_interval_set("[0, 1] | [2, x]")
    assert info.value.position == 13
    with pytest.raises(IntervalParseError) as info:
        parse_interval_set("[0, 1] || [2, 3]")
    assert info.value.position == 8
