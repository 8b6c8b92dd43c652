import pytest

from unitconv import OffsetUnitError, Quantity, parse, units


@pytest.mark.parametrize(
    "text, target, expected",
    [
        ("20 degC", "K", 293.15),
        ("0 K", "degC", -273.15),
        ("300 K", "degC", 26.85),
        ("212 degF", "degC", 100.0),
        ("-40 degF", "degC", -40.0),
        ("32 degF", "K", 273.15),
        ("10 delta_degC", "delta_degF", 18.0),
        ("9 delta_degF", "K", 5.0),
    ],
)
def test_temperature_conversion(text, target, expected):
    assert parse(text).to(target).magnitude == pytest.approx(expected)


def test_difference_of_absolute_temperatures():
    diff = parse("25 degC") - parse("20 degC")
    assert diff.magnitude == pytest.approx(5)
    assert str(diff.units) == "delta_degC"
    diff = parse("20 degC") - parse("50 degF")
    assert diff.magnitude == pytest.approx(10)
    assert str(diff.units) == "delta_degC"


def test_absolute_plus_difference():
    t = parse("20 degC") + parse("9 delta_degF")
    assert t.magnitude == pytest.approx(25)
    assert str(t.units) == "degC"
    t = parse("10 delta_degC") + parse("20 degC")
    assert str(t.units) == "degC"
    assert t.magnitude == pytest.approx(30)
    assert (parse("20 degC") - parse("5 K")).magnitude == pytest.approx(15)


def test_adding_two_absolute_temperatures_fails():
    with pytest.raises(OffsetUnitError, match="cannot add two absolute temperatures"):
        parse("20 degC") + parse("10 degC")
    with pytest.raises(OffsetUnitError):
        parse("5 delta_degC") - parse("20 degC")


def test_offset_units_cannot_be_combined():
    with pytest.raises(OffsetUnitError, match="delta_degC"):
        units("J/(kg*degC)")
    with pytest.raises(OffsetUnitError):
        parse("20 degC") * 2
    with pytest.raises(OffsetUnitError):
        parse("20 degC") * parse("1 m")
    assert str(units("J/(kg*delta_degC)")) == "J/(kg*delta_degC)"


def test_temperature_comparison():
    assert parse("20 degC") < parse("300 K")
    assert Quantity(100, "degC") == Quantity(373.15, "K")
    assert parse("20 °C").to("K").magnitude == pytest.approx(293.15)
    assert str(units("celsius")) == "degC"
