from datetime import date, datetime

import pytest

from durations import MonthlyByDay, MonthlyByWeekday, Weekly, parse_schedule

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def test_weekly_every_other_week():
    schedule = Weekly([TUE], interval=2)
    assert schedule.occurrences(date(2024, 4, 1), 3) == [
        date(2024, 4, 2),
        date(2024, 4, 16),
        date(2024, 4, 30),
    ]


def test_weekly_several_days_starting_midweek():
    schedule = Weekly([MON, WED, FRI])
    assert schedule.occurrences(date(2024, 4, 3), 4) == [
        date(2024, 4, 3),
        date(2024, 4, 5),
        date(2024, 4, 8),
        date(2024, 4, 10),
    ]


def test_monthly_by_day():
    assert MonthlyByDay(15).occurrences(date(2024, 1, 20), 3) == [
        date(2024, 2, 15),
        date(2024, 3, 15),
        date(2024, 4, 15),
    ]


def test_monthly_by_day_clamps_to_month_end():
    assert MonthlyByDay(31).occurrences(date(2024, 3, 1), 2) == [
        date(2024, 3, 31),
        date(2024, 4, 30),
    ]


def test_monthly_by_day_with_interval():
    assert MonthlyByDay(10, interval=3).occurrences(date(2024, 1, 10), 3) == [
        date(2024, 1, 10),
        date(2024, 4, 10),
        date(2024, 7, 10),
    ]


def test_monthly_by_weekday_second_tuesday():
    assert MonthlyByWeekday(TUE, 2).occurrences(date(2024, 1, 1), 4) == [
        date(2024, 1, 9),
        date(2024, 2, 13),
        date(2024, 3, 12),
        date(2024, 4, 9),
    ]


def test_monthly_by_weekday_last_friday():
    assert MonthlyByWeekday(FRI, -1).occurrences(date(2024, 2, 1), 3) == [
        date(2024, 2, 23),
        date(2024, 3, 29),
        date(2024, 4, 26),
    ]


def test_monthly_by_weekday_skips_months_without_fifth():
    assert MonthlyByWeekday(FRI, 5).occurrences(date(2024, 1, 1), 3) == [
        date(2024, 3, 29),
        date(2024, 5, 31),
        date(2024, 8, 30),
    ]


def test_occurrences_edge_cases():
    assert MonthlyByWeekday(TUE, 2).occurrences(datetime(2024, 2, 13, 8), 1) == [date(2024, 2, 13)]
    assert MonthlyByWeekday(TUE, 2).next_after(date(2024, 2, 13)) == date(2024, 3, 12)
    assert Weekly([MON]).occurrences(date(2024, 1, 1), 0) == []
    with pytest.raises(ValueError):
        Weekly([MON]).occurrences(date(2024, 1, 1), -1)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Weekly([]),
        lambda: Weekly([7]),
        lambda: Weekly([MON], interval=0),
        lambda: MonthlyByDay(32),
        lambda: MonthlyByWeekday(TUE, 0),
        lambda: MonthlyByWeekday(TUE, 6),
    ],
)
def test_invalid_schedules(factory):
    with pytest.raises(ValueError):
        factory()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("every 2nd tuesday", "MonthlyByWeekday(1, 2, interval=1)"),
        ("Every Last Friday", "MonthlyByWeekday(4, -1, interval=1)"),
        ("every monday and thursday", "Weekly([0, 3], interval=1)"),
        ("every monday, wednesday, and friday", "Weekly([0, 2, 4], interval=1)"),
        ("every other wednesday", "Weekly([2], interval=2)"),
        ("every 3 weeks on monday", "Weekly([0], interval=3)"),
        ("monthly on day 31", "MonthlyByDay(31, interval=1)"),
        ("every 2 months  on day 15", "MonthlyByDay(15, interval=2)"),
    ],
)
def test_parse_schedule(text, expected):
    assert repr(parse_schedule(text)) == expected


def test_parse_schedule_rejects_unknown_phrases():
    with pytest.raises(ValueError):
        parse_schedule("every blue moon")
