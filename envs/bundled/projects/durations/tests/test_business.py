from datetime import date, datetime

import pytest

from durations import BusinessCalendar, add_business_days, business_days_between

# Memorial Day and Independence Day 2024 (a Monday and a Thursday).
US_2024 = BusinessCalendar(holidays=[date(2024, 5, 27), date(2024, 7, 4)])


def test_is_business_day():
    assert US_2024.is_business_day(date(2024, 5, 24))  # Friday
    assert not US_2024.is_business_day(date(2024, 5, 25))  # Saturday
    assert not US_2024.is_business_day(date(2024, 5, 27))  # holiday
    assert not US_2024.is_business_day(datetime(2024, 7, 4, 9, 0))


@pytest.mark.parametrize(
    "start, n, expected",
    [
        (date(2024, 5, 22), 1, date(2024, 5, 23)),
        (date(2024, 5, 24), 1, date(2024, 5, 28)),  # over the weekend and the holiday
        (date(2024, 5, 25), 1, date(2024, 5, 28)),  # from a Saturday
        (date(2024, 5, 28), -1, date(2024, 5, 24)),
        (date(2024, 7, 1), 5, date(2024, 7, 9)),
        (date(2024, 5, 25), 0, date(2024, 5, 28)),
        (date(2024, 5, 22), 0, date(2024, 5, 22)),
    ],
)
def test_add_business_days(start, n, expected):
    assert US_2024.add_business_days(start, n) == expected


def test_add_business_days_keeps_time_and_checks_n():
    assert US_2024.add_business_days(datetime(2024, 5, 24, 17, 30), 1) == datetime(2024, 5, 28, 17, 30)
    with pytest.raises(TypeError):
        US_2024.add_business_days(date(2024, 5, 24), 1.0)


def test_default_calendar():
    assert add_business_days(date(2024, 5, 24), 1) == date(2024, 5, 27)
    assert business_days_between(date(2024, 5, 20), date(2024, 6, 3)) == 10


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (date(2024, 5, 20), date(2024, 5, 20), 0),
        (date(2024, 5, 20), date(2024, 5, 21), 1),
        (date(2024, 5, 20), date(2024, 5, 25), 5),
        (date(2024, 5, 25), date(2024, 5, 27), 0),  # weekend only
        (date(2024, 5, 20), date(2024, 6, 3), 9),  # includes Memorial Day
        (date(2024, 5, 27), date(2024, 5, 28), 0),
        (date(2024, 1, 1), date(2025, 1, 1), 260),
        (date(2024, 6, 3), date(2024, 5, 20), -9),
    ],
)
def test_business_days_between(start, end, expected):
    assert US_2024.business_days_between(start, end) == expected


def test_between_agrees_with_add():
    start = date(2024, 5, 1)
    for n in range(1, 60):
        end = US_2024.add_business_days(start, n)
        assert US_2024.business_days_between(start, end) == n


def test_custom_weekend():
    # Friday/Saturday weekend.
    gulf = BusinessCalendar(weekend=(4, 5))
    assert gulf.is_business_day(date(2024, 5, 26))  # Sunday
    assert gulf.add_business_days(date(2024, 5, 23), 1) == date(2024, 5, 26)
    assert gulf.business_days_between(date(2024, 5, 20), date(2024, 6, 3)) == 10


@pytest.mark.parametrize("weekend", [(0, 1, 2, 3, 4, 5, 6), (7,), (-1,)])
def test_invalid_weekend(weekend):
    with pytest.raises(ValueError):
        BusinessCalendar(weekend=weekend)


@pytest.mark.parametrize(
    "day, convention, expected",
    [
        (date(2024, 6, 1), "following", date(2024, 6, 3)),
        (date(2024, 6, 1), "preceding", date(2024, 5, 31)),
        (date(2024, 8, 31), "modified_following", date(2024, 8, 30)),
        (date(2024, 6, 1), "modified_preceding", date(2024, 6, 3)),
        (date(2024, 6, 15), "modified_following", date(2024, 6, 17)),
        (date(2024, 6, 14), "preceding", date(2024, 6, 14)),
    ],
)
def test_roll(day, convention, expected):
    assert US_2024.roll(day, convention) == expected
    assert US_2024.roll(expected, convention) == expected


def test_roll_unknown_convention():
    with pytest.raises(ValueError):
        US_2024.roll(date(2024, 6, 1), "nearest")


def test_with_holidays_returns_new_calendar():
    extended = US_2024.with_holidays(date(2024, 5, 28))
    assert extended.add_business_days(date(2024, 5, 24), 1) == date(2024, 5, 29)
    assert US_2024.add_business_days(date(2024, 5, 24), 1) == date(2024, 5, 28)
    assert extended.weekend == US_2024.weekend
