from datetime import timedelta

import pytest

from durations import Duration, DurationParseError, format_duration, parse_duration


@pytest.mark.parametrize(
    "text, expected",
    [
        ("P1Y2M10DT2H30M", Duration(years=1, months=2, days=10, seconds=9000)),
        ("PT0.5S", Duration(seconds=0.5)),
        ("PT0,25S", Duration(seconds=0.25)),
        ("P2W", Duration(days=14)),
        ("P1W3D", Duration(days=10)),
        ("-P1D", Duration(days=-1)),
        ("-P1Y6M", Duration(years=-1, months=-6)),
        ("+P3M", Duration(months=3)),
        ("PT36H", Duration(seconds=129600)),
        ("PT1.5H", Duration(seconds=5400)),
        ("P0D", Duration()),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "1D", "P1.5D", "PT1H2D", "P-1D", "P1M2Y", "p1d", "PT1S2M"]
)
def test_parse_duration_rejects_invalid(text):
    with pytest.raises(DurationParseError):
        parse_duration(text)


def test_parse_error_types():
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(TypeError):
        parse_duration(5)


@pytest.mark.parametrize(
    "duration, expected",
    [
        (Duration(), "PT0S"),
        (Duration(years=1, months=2, days=10, seconds=9000), "P1Y2M10DT2H30M"),
        (Duration(seconds=0.5), "PT0.5S"),
        (Duration(seconds=3661.25), "PT1H1M1.25S"),
        (Duration(seconds=12.345678), "PT12.345678S"),
        (Duration(seconds=0.000001), "PT0.000001S"),
        (Duration(days=-3), "-P3D"),
        (Duration(days=-1, seconds=-3600), "-P1DT1H"),
        (Duration(months=18), "P18M"),
    ],
)
def test_format_duration(duration, expected):
    assert format_duration(duration) == expected
    assert str(duration) == expected


def test_format_rejects_mixed_signs():
    with pytest.raises(ValueError, match="mixed signs"):
        format_duration(Duration(months=1, days=-1))


@pytest.mark.parametrize("text", ["P1Y2M10DT2H30M", "PT0.5S", "-P2Y", "P3DT4H5M6.789S", "PT59M59S"])
def test_round_trip(text):
    assert format_duration(parse_duration(text)) == text


def test_arithmetic():
    a = Duration(months=1, days=2)
    b = Duration(days=3, seconds=60)
    assert a + b == Duration(months=1, days=5, seconds=60)
    assert a - a == Duration()
    assert not (a - a)
    assert -a == Duration(months=-1, days=-2)
    assert 3 * b == b * 3 == Duration(days=9, seconds=180)


def test_seconds_are_kept_at_microsecond_resolution():
    assert Duration(seconds=0.1) + Duration(seconds=0.2) == Duration(seconds=0.3)
    assert Duration(seconds=-0.0).seconds == 0.0


def test_parts_must_be_integers():
    with pytest.raises(TypeError):
        Duration(days=1.5)
    with pytest.raises(TypeError):
        Duration(months=True)


def test_timedelta_conversion():
    assert Duration(days=2, seconds=30).to_timedelta() == timedelta(days=2, seconds=30)
    assert Duration.from_timedelta(timedelta(days=-1, seconds=3600)) == Duration(seconds=-82800)
    assert Duration.from_timedelta(timedelta(days=3, microseconds=5)) == Duration(
        days=3, seconds=0.000005
    )
    assert Duration(days=1).total_seconds() == 86400


def test_inexact_duration_has_no_fixed_length():
    with pytest.raises(ValueError):
        Duration(months=1).to_timedelta()
    assert not Duration(years=1).is_exact
    assert Duration(days=400).is_exact
