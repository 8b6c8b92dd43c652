import pytest

from unitconv import DimensionalityError, Quantity, UnitError, parse, units


@pytest.mark.parametrize(
    "text, target, expected",
    [
        ("3.5 km/h", "m/s", 0.9722222222),
        ("100 km/h", "mph", 62.1371192237),
        ("1 mi", "km", 1.609344),
        ("1 ft", "in", 12.0),
        ("2 h", "s", 7200),
        ("1 day", "min", 1440),
        ("1 atm", "kPa", 101.325),
        ("1 kWh", "MJ", 3.6),
        ("1 lb", "g", 453.59237),
        ("16 oz", "lb", 1.0),
        ("1.2e3 kg*m/s^2", "kN", 1.2),
        ("1 J/s", "W", 1.0),
        ("2 L", "m^3", 0.002),
        ("50 Hz", "1/s", 50),
    ],
)
def test_to(text, target, expected):
    result = parse(text).to(target)
    assert result.magnitude == pytest.approx(expected)
    assert str(result.units) == str(units(target))


def test_to_base():
    assert str(parse("1 N").to_base().units) == "kg*m/s^2"
    assert str(parse("1 J").to_base().units) == "kg*m^2/s^2"
    q = parse("36 km/h").to_base()
    assert q.magnitude == pytest.approx(10)
    assert str(q.units) == "m/s"


def test_incompatible_conversion_message():
    with pytest.raises(DimensionalityError) as info:
        parse("3 km/h").to("kg")
    assert str(info.value) == "cannot convert from 'km/h' ([length]/[time]) to 'kg' ([mass])"


def test_dimensionality_error_is_a_value_error():
    assert issubclass(DimensionalityError, UnitError)
    with pytest.raises(ValueError):
        Quantity(1, "s").to("m")


def test_float_of_dimensionless():
    assert float(Quantity(0.5)) == 0.5
    with pytest.raises(DimensionalityError, match="to float"):
        float(Quantity(2, "m"))


def test_conversion_roundtrip():
    q = parse("12.5 psi")
    assert q.to("Pa").to("psi").magnitude == pytest.approx(12.5)
    assert parse("1500 m").to(units("km")).magnitude == pytest.approx(1.5)
