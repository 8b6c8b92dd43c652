import pytest

from unitconv import Dimension, ParseError, UndefinedUnitError, parse, units


@pytest.mark.parametrize(
    "text, magnitude, unit",
    [
        ("3.5 km/h", 3.5, "km/h"),
        ("9.81 m/s^2", 9.81, "m/s^2"),
        ("20 degC", 20, "degC"),
        ("1.2e3 kg*m/s^2", 1200.0, "kg*m/s^2"),
        ("-40 degF", -40, "degF"),
        (".5 L", 0.5, "L"),
        ("7", 7, ""),
        ("2.5e-3 s", 0.0025, "s"),
        ("10m", 10, "m"),
    ],
)
def test_parse_quantity(text, magnitude, unit):
    q = parse(text)
    assert q.magnitude == pytest.approx(magnitude)
    assert str(q.units) == unit
    assert isinstance(q.magnitude, int) == isinstance(magnitude, int)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("kg*m/s^2", "kg*m/s^2"),
        ("kg m / s**2", "kg*m/s^2"),
        ("N·m", "N*m"),
        ("J/(kg*K)", "J/(kg*K)"),
        ("J/kg/K", "J/(kg*K)"),
        ("m/s/s", "m/s^2"),
        ("1/s", "1/s"),
        ("s^-1", "1/s"),
        ("(m/s)^2", "m^2/s^2"),
        ("meter/second", "m/s"),
    ],
)
def test_unit_expressions(text, expected):
    assert str(units(text)) == expected


def test_division_is_left_associative():
    # J/kg*K means (J/kg)*K, not J/(kg*K)
    assert str(units("J/kg*K")) == "J*K/kg"


def test_dimension_of_parsed_units():
    assert units("N").dimension == Dimension(mass=1, length=1, time=-2)
    assert units("Pa").dimension == Dimension(mass=1, length=-1, time=-2)
    assert units("V").dimension == Dimension(mass=1, length=2, time=-3, current=-1)
    assert units("").dimension.dimensionless


@pytest.mark.parametrize(
    "name, factor",
    [
        ("km", 1e3), ("mm", 1e-3), ("µm", 1e-6), ("um", 1e-6), ("μm", 1e-6),
        ("dam", 10.0), ("hPa", 100.0), ("MW", 1e6), ("GHz", 1e9), ("kg", 1.0),
        ("mg", 1e-6), ("ms", 1e-3), ("kWh", 3.6e6), ("mL", 1e-6),
    ],
)
def test_prefixes(name, factor):
    assert units(name).factor == pytest.approx(factor)


def test_exact_names_win_over_prefixes():
    assert units("min").factor == 60
    assert units("mi").factor == pytest.approx(1609.344)
    assert units("Pa").factor == 1
    assert units("ft").factor == pytest.approx(0.3048)


def test_undefined_units():
    with pytest.raises(UndefinedUnitError, match="'furlong'"):
        parse("3 furlong")
    with pytest.raises(UndefinedUnitError, match="'kmin'"):
        units("kmin")  # minutes do not take prefixes


@pytest.mark.parametrize("text", ["m^", "(m", "m)", "kg*", "m^x", "m+s", "2 m"])
def test_malformed_unit_expressions(text):
    with pytest.raises(ParseError):
        units(text)
    with pytest.raises(ParseError, match="no number"):
        parse("km")
