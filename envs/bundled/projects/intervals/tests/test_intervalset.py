import math

import pytest

from intervals import Interval, IntervalSet

inf = math.inf


def test_components_are_sorted_and_merged():
    s = IntervalSet([Interval(5, 6), Interval(1, 2), Interval(1.5, 3, "[)")])
    assert list(s) == [Interval(1, 3, "[)"), Interval(5, 6)]
    assert len(s) == 2


def test_adjacent_components_merge():
    s = IntervalSet([Interval(1, 2, "[)"), Interval(2, 3)])
    assert list(s) == [Interval(1, 3)]
    s = IntervalSet([Interval(1, 2), Interval(2, 3, "(]"), Interval(3, 4)])
    assert list(s) == [Interval(1, 4)]


def test_empty_components_are_dropped():
    s = IntervalSet([Interval.empty(), Interval(4, 4, "[)")])
    assert not s
    assert s.is_empty
    assert list(s) == []
    with pytest.raises(TypeError):
        IntervalSet([(1, 2)])


def test_add():
    s = IntervalSet()
    s.add(Interval(10, 20))
    s.add(Interval(0, 5, "[)"))
    s.add(Interval(5, 10, "[)"))
    assert list(s) == [Interval(0, 20)]


def test_remove_splits_component():
    s = IntervalSet([Interval(0, 10)])
    s.remove(Interval(3, 4))
    assert list(s) == [Interval(0, 3, "[)"), Interval(4, 10, "(]")]


def test_remove_across_components():
    s = IntervalSet([Interval(0, 2), Interval(4, 6), Interval(8, 10)])
    s.remove(Interval(1, 9, "()"))
    assert list(s) == [Interval(0, 1), Interval(9, 10)]


def test_remove_missing_points_is_a_no_op():
    s = IntervalSet([Interval(0, 2)])
    s.remove(Interval(5, 6))
    assert list(s) == [Interval(0, 2)]


@pytest.mark.parametrize("point, expected", [
    (-1, False), (0, True), (1.5, True), (2, False), (2.5, False),
    (3, False), (3.5, True), (4, True), (100, True), (math.nan, False),
])
def test_point_membership(point, expected):
    s = IntervalSet([Interval(0, 2, "[)"), Interval(3, 4, "(]"), Interval(50, inf)])
    assert (point in s) is expected


def test_interval_membership():
    s = IntervalSet([Interval(0, 5), Interval(10, 20)])
    assert Interval(1, 2) in s
    assert Interval(11, 20, "(]") in s
    assert Interval(4, 11) not in s
    assert Interval.empty() in s


def test_union_and_operator():
    a = IntervalSet([Interval(0, 1)])
    b = IntervalSet([Interval(1, 2, "(]"), Interval(5, 6)])
    assert list(a | b) == [Interval(0, 2), Interval(5, 6)]
    assert a.union(Interval(8, 9)) == IntervalSet([Interval(0, 1), Interval(8, 9)])


def test_intersection():
    a = IntervalSet([Interval(0, 5), Interval(10, 15)])
    b = IntervalSet([Interval(3, 12, "()"), Interval(14, 20)])
    assert list(a & b) == [Interval(3, 5, "(]"), Interval(10, 12, "[)"), Interval(14, 15)]


def test_difference():
    a = IntervalSet([Interval(0, 10)])
    b = IntervalSet([Interval(2, 3), Interval(6, 7, "()")])
    assert list(a - b) == [Interval(0, 2, "[)"), Interval(3, 6, "(]"), Interval(7, 10)]
    assert list(a) == [Interval(0, 10)]


def test_complement():
    s = IntervalSet([Interval(0, 1, "[)"), Interval(2, 3)])
    assert list(~s) == [
        Interval(-inf, 0, "()"),
        Interval(1, 2, "[)"),
        Interval(3, inf, "()"),
    ]


def test_complement_of_unbounded_set():
    s = IntervalSet([Interval(-inf, 0, "(]"), Interval(5, inf, "()")])
    assert list(s.complement()) == [Interval(0, 5, "(]")]
    assert IntervalSet([Interval.all()]).complement().is_empty


def test_double_complement_round_trips():
    s = IntervalSet([Interval(-3, -1), Interval(0, 1, "()"), Interval(4, inf, "[)")])
    assert ~~s == s


def test_in_place_operators():
    s = IntervalSet([Interval(0, 10)])
    s |= Interval(20, 30)
    s -= IntervalSet([Interval(5, 25)])
    assert list(s) == [Interval(0, 5, "[)"), Interval(25, 30, "(]")]


def test_span_and_measure():
    s = IntervalSet([Interval(1, 2), Interval(4, 7, "()")])
    assert s.span() == Interval(1, 7, "[)")
    assert s.measure() == 4
    assert IntervalSet().span() == Interval.empty()
    assert IntervalSet().measure() == 0


def test_copy_is_independent():
    s = IntervalSet([Interval(0, 1)])
    c = s.copy()
    c.add(Interval(5, 6))
    assert list(s) == [Interval(0, 1)]
    assert len(c) == 2


def test_equality_and_str():
    s = IntervalSet([Interval(2, 3), Interval(0, 1, "[)")])
    assert s == IntervalSet([Interval(0, 1, "[)"), Interval(2, 3)])
    assert IntervalSet([Interval(0, 1)]) == Interval(0, 1)
    assert str(s) == "[0, 1) | [2, 3]"
    assert str(IntervalSet()) == "empty"
    with pytest.raises(TypeError):
        hash(s)

