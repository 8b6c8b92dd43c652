import math

import pytest

from intervals import Interval, IntervalError

inf = math.inf


def test_default_bounds_are_closed():
    iv = Interval(1, 5)
    assert iv.left_closed and iv.right_closed
    assert iv.bounds == "[]"
    assert (iv.lower, iv.upper) == (1, 5)


def test_infinite_endpoints_are_always_open():
    iv = Interval(-inf, inf, "[]")
    assert iv.bounds == "()"
    assert iv == Interval.all()
    assert not iv.is_bounded


@pytest.mark.parametrize("args", [(5, 1), (0, 1, "[["), (math.nan, 1), (0, math.nan)])
def test_invalid_construction(args):
    with pytest.raises(IntervalError):
        Interval(*args)
    with pytest.raises(ValueError):
        Interval(*args)


def test_empty_intervals_compare_equal():
    assert Interval(3, 3, "[)") == Interval.empty()
    assert Interval(7, 7, "()") == Interval(1, 1, "(]")
    assert hash(Interval(3, 3, "[)")) == hash(Interval.empty())
    assert not Interval.empty()
    assert Interval.empty().length == 0


def test_point_interval():
    p = Interval.point(4)
    assert p.is_degenerate and not p.is_empty
    assert 4 in p and 4.0001 not in p
    assert p.length == 0
    with pytest.raises(IntervalError):
        Interval.point(inf)


@pytest.mark.parametrize("iv, expected", [
    (Interval(1, 5, "[)"), 4),
    (Interval(0.5, 2.0), 1.5),
    (Interval(-inf, 0, "(]"), inf),
    (Interval(2, inf, "[)"), inf),
])
def test_length(iv, expected):
    assert iv.length == expected


@pytest.mark.parametrize("point, expected", [
    (0, False), (1, True), (3, True), (4.999, True), (5, False), (6, False), (math.nan, False),
])
def test_contains_point(point, expected):
    assert Interval(1, 5, "[)").contains(point) is expected


def test_contains_interval():
    outer = Interval(0, 10)
    assert Interval(2, 3) in outer
    assert Interval(0, 4, "()") in outer
    assert Interval(-1, 4) not in outer
    assert Interval(0, 4) not in Interval(0, 10, "(]")
    assert Interval.empty() in outer
    assert Interval(1, 2) not in Interval.empty()
    assert 1 not in Interval(1, 5, "(]") and 5 in Interval(1, 5, "(]")


def test_unbounded_contains_everything_finite():
    everything = Interval.all()
    assert 1e300 in everything and -1e300 in everything
    assert inf not in everything
    assert Interval(-5, 5) in everything


@pytest.mark.parametrize("a, b, expected", [
    (Interval(1, 3), Interval(2, 4), True),
    (Interval(1, 2), Interval(2, 3), True),
    (Interval(1, 2, "[)"), Interval(2, 3), False),
    (Interval(1, 2), Interval(3, 4), False),
    (Interval(-inf, 0, "()"), Interval(-1, 1), True),
    (Interval.empty(), Interval(0, 1), False),
])
def test_overlaps(a, b, expected):
    assert a.overlaps(b) is expected
    assert b.overlaps(a) is expected


@pytest.mark.parametrize("a, b, expected", [
    (Interval(1, 2, "[)"), Interval(2, 3), True),
    (Interval(1, 2), Interval(2, 3, "(]"), True),
    (Interval(1, 2), Interval(2, 3), False),
    (Interval(1, 2), Interval(3, 4), False),
    (Interval(-inf, 0, "()"), Interval(0, inf, "[)"), True),
    (Interval.empty(), Interval(0, 1), False),
])
def test_is_adjacent(a, b, expected):
    assert a.is_adjacent(b) is expected
    assert b.is_adjacent(a) is expected


@pytest.mark.parametrize("a, b, expected", [
    (Interval(1, 5), Interval(3, 8), Interval(3, 5)),
    (Interval(1, 5, "()"), Interval(3, 8, "[]"), Interval(3, 5, "[)")),
    (Interval(1, 5), Interval(1, 3, "(]"), Interval(1, 3, "(]")),
    (Interval(1, 2), Interval(2, 3), Interval.point(2)),
    (Interval(1, 2, "[)"), Interval(2, 3), Interval.empty()),
    (Interval(-inf, 4, "()"), Interval(0, inf, "[)"), Interval(0, 4, "[)")),
])
def test_intersection(a, b, expected):
    assert a.intersection(b) == expected
    assert (b & a) == expected


def test_hull():
    assert Interval(1, 2).hull(Interval(5, 6, "()")) == Interval(1, 6, "[)")
    assert Interval(3, 4, "(]").hull(Interval(-inf, 0, "()")) == Interval(-inf, 4, "(]")
    assert Interval(1, 2).hull(Interval.empty()) == Interval(1, 2)
    assert Interval.empty().hull(Interval(1, 2)) == Interval(1, 2)


def test_union_of_connected_intervals():
    assert Interval(1, 3, "[)").union(Interval(3, 5, "[]")) == Interval(1, 5)
    assert Interval(1, 4).union(Interval(2, 6, "()")) == Interval(1, 6, "[)")


def test_union_of_disjoint_intervals_raises():
    with pytest.raises(IntervalError, match="disjoint"):
        Interval(1, 2).union(Interval(3, 4))


@pytest.mark.parametrize("a, b, expected", [
    (Interval(1, 10), Interval(3, 5), [Interval(1, 3, "[)"), Interval(5, 10, "(]")]),
    (Interval(1, 10), Interval(3, 5, "()"), [Interval(1, 3), Interval(5, 10)]),
    (Interval(1, 10), Interval(0, 4), [Interval(4, 10, "(]")]),
    (Interval(1, 10), Interval(20, 30), [Interval(1, 10)]),
    (Interval(1, 10), Interval(0, 20), []),
    (Interval(-inf, inf), Interval(0, 1, "[)"), [Interval(-inf, 0, "()"), Interval(1, inf, "[)")]),
    (Interval.empty(), Interval(0, 1), []),
])
def test_difference(a, b, expected):
    assert a.difference(b) == expected


@pytest.mark.parametrize("iv, text", [
    (Interval(1, 5, "[)"), "[1, 5)"),
    (Interval(-inf, 3, "(]"), "(-inf, 3]"),
    (Interval(0.5, 2.25, "()"), "(0.5, 2.25)"),
    (Interval(-3, inf), "[-3, +inf)"),
    (Interval.empty(), "empty"),
])
def test_str(iv, text):
    assert str(iv) == text


def test_repr():
    assert str(Interval(1, 5, "[)")) == "[1, 5)"
    assert repr(Interval(1, 5, "[)")) == "Interval(1, 5, '[)')"
    assert repr(Interval(2, 2, "()")) == "Interval.empty()"


def test_mixed_numeric_types():
    from fractions import Fraction

    iv = Interval(Fraction(1, 3), 1)
    assert 0.5 in iv
    assert iv.length == Fraction(2, 3)
    assert Interval(1, 2) == Interval(1.0, 2.0)
