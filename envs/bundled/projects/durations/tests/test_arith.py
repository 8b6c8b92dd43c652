from datetime import date, datetime, timedelta, timezone

import pytest

from durations import (
    Duration,
    add_duration,
    add_months,
    days_in_month,
    duration_between,
    parse_duration,
    subtract_duration,
)


@pytest.mark.parametrize(
    "year, month, expected",
    [(2023, 2, 28), (2024, 2, 29), (1900, 2, 28), (2000, 2, 29), (2024, 4, 30), (2024, 12, 31)],
)
def test_days_in_month(year, month, expected):
    assert days_in_month(year, month) == expected
    with pytest.raises(ValueError):
        days_in_month(year, 13)


@pytest.mark.parametrize(
    "start, months, expected",
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 5, 15), 20, date(2026, 1, 15)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 2, 10), -13, date(2023, 1, 10)),
        (date(2024, 7, 4), 0, date(2024, 7, 4)),
    ],
)
def test_add_months(start, months, expected):
    assert add_months(start, months) == expected


def test_add_months_keeps_time_and_tzinfo():
    start = datetime(2024, 1, 31, 9, 30, tzinfo=timezone.utc)
    assert add_months(start, 1) == datetime(2024, 2, 29, 9, 30, tzinfo=timezone.utc)


def test_add_months_out_of_range():
    with pytest.raises(OverflowError):
        add_months(date(9999, 6, 1), 12)


@pytest.mark.parametrize(
    "start, text, expected",
    [
        (date(2024, 1, 31), "P1M", date(2024, 2, 29)),
        (date(2024, 2, 29), "P1Y", date(2025, 2, 28)),
        (date(2024, 1, 31), "P1M1D", date(2024, 3, 1)),
        (date(2024, 3, 10), "P2W", date(2024, 3, 24)),
        (date(2024, 3, 10), "-P10D", date(2024, 2, 29)),
        (datetime(2024, 1, 31, 22), "P1MT3H", datetime(2024, 3, 1, 1)),
        (datetime(2024, 6, 1, 12), "PT0.5S", datetime(2024, 6, 1, 12, 0, 0, 500000)),
    ],
)
def test_add_duration(start, text, expected):
    assert add_duration(start, parse_duration(text)) == expected


def test_add_duration_errors():
    with pytest.raises(ValueError):
        add_duration(date(2024, 1, 1), parse_duration("PT1H"))
    with pytest.raises(TypeError):
        add_duration("2024-01-01", Duration(days=1))
    with pytest.raises(TypeError):
        add_duration(date(2024, 1, 1), timedelta(days=1))


def test_subtract_duration_is_not_always_inverse():
    back = subtract_duration(date(2024, 3, 31), Duration(months=1))
    assert back == date(2024, 2, 29)
    assert add_duration(back, Duration(months=1)) == date(2024, 3, 29)


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (date(2024, 1, 31), date(2024, 2, 29), Duration(months=1)),
        (date(2024, 1, 31), date(2024, 3, 1), Duration(months=1, days=1)),
        (date(2022, 3, 15), date(2024, 5, 20), Duration(years=2, months=2, days=5)),
        (date(2024, 5, 20), date(2022, 3, 15), Duration(years=-2, months=-2, days=-5)),
        (datetime(2024, 1, 31), datetime(2024, 3, 1, 12), Duration(months=1, days=1, seconds=43200)),
        (date(2024, 6, 1), date(2024, 6, 1), Duration()),
    ],
)
def test_duration_between(start, end, expected):
    assert duration_between(start, end) == expected


def test_duration_between_round_trips():
    start = datetime(2023, 8, 31, 23, 15)
    for end in (datetime(2024, 2, 29, 1), datetime(2023, 9, 30, 23, 15), datetime(2025, 3, 1)):
        assert add_duration(start, duration_between(start, end)) == end


def test_duration_between_mixed_types():
    with pytest.raises(TypeError):
        duration_between(date(2024, 1, 1), datetime(2024, 1, 2))
