from datetime import date, datetime, timedelta, timezone

import pytest

from durations import humanize

NOW = datetime(2024, 5, 1, 12, 0, 0)


@pytest.mark.parametrize(
    "moment, expected",
    [
        (NOW - timedelta(hours=2), "2 hours ago"),
        (NOW + timedelta(days=3), "in 3 days"),
        (NOW - timedelta(seconds=3), "just now"),
        (NOW + timedelta(seconds=45), "in 45 seconds"),
        (NOW - timedelta(minutes=1), "1 minute ago"),
        (NOW + timedelta(minutes=90), "in 1 hour"),
        (NOW + timedelta(days=13), "in 1 week"),
        (NOW - timedelta(days=60), "2 months ago"),
        (NOW + timedelta(days=800), "in 2 years"),
        (NOW - timedelta(days=1), "1 day ago"),
    ],
)
def test_humanize_datetimes(moment, expected):
    assert humanize(moment, now=NOW) == expected


def test_humanize_timedelta():
    assert humanize(timedelta(days=3)) == "in 3 days"
    assert humanize(timedelta(hours=-5)) == "5 hours ago"


def test_humanize_dates():
    assert humanize(date(2024, 4, 24), now=date(2024, 5, 1)) == "1 week ago"


def test_humanize_aware_datetimes():
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    moment = datetime(2024, 5, 1, 15, tzinfo=timezone(timedelta(hours=2)))
    assert humanize(moment, now=now) == "in 1 hour"


def test_humanize_just_now_threshold():
    assert humanize(timedelta(seconds=30), just_now=60) == "just now"
    assert humanize(timedelta(seconds=3), just_now=0) == "in 3 seconds"


def test_humanize_requires_now():
    with pytest.raises(TypeError):
        humanize(NOW)
    with pytest.raises(TypeError):
        humanize(NOW, now=date(2024, 5, 1))
