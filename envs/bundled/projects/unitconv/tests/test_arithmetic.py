import pytest

from unitconv import DimensionalityError, Quantity, parse


def test_multiplication_combines_units():
    force = parse("2 kg") * parse("9.81 m/s^2")
    assert str(force.units) == "kg*m/s^2"
    assert force.to("N").magnitude == pytest.approx(19.62)


def test_division_combines_units():
    speed = parse("100 km") / parse("2 h")
    assert speed.magnitude == 50
    assert str(speed.units) == "km/h"
    pressure = parse("10 N") / parse("2 m^2")
    assert pressure.to("Pa").magnitude == pytest.approx(5)


def test_scalar_multiplication_and_division():
    assert (parse("3 m") * 2).magnitude == 6
    assert (2 * parse("3 m")).magnitude == 6
    assert (parse("3 m") / 2).magnitude == 1.5
    assert str((2 * parse("3 m")).units) == "m"
    q = 2 / Quantity(4, "s")
    assert q.magnitude == 0.5
    assert str(q.units) == "1/s"
    assert q.to("Hz").magnitude == 0.5


def test_power():
    area = parse("3 m") ** 2
    assert area.magnitude == 9
    assert str(area.units) == "m^2"
    assert str((Quantity(2, "s") ** -1).units) == "1/s"
    with pytest.raises(TypeError):
        parse("4 m^2") ** 0.5


def test_addition_converts_to_left_unit():
    total = parse("1 m") + parse("50 cm")
    assert total.magnitude == pytest.approx(1.5)
    assert str(total.units) == "m"
    total = parse("50 cm") + parse("1 m")
    assert total.magnitude == pytest.approx(150)
    assert str(total.units) == "cm"


def test_subtraction_converts_to_left_unit():
    rest = parse("2 km") - parse("500 m")
    assert rest.magnitude == pytest.approx(1.5)
    assert str(rest.units) == "km"


def test_addition_requires_compatible_dimensions():
    with pytest.raises(DimensionalityError) as info:
        parse("1 m") + parse("1 s")
    assert str(info.value) == "cannot add 'm' ([length]) and 's' ([time])"
    with pytest.raises(DimensionalityError, match="cannot subtract"):
        parse("1 kg") - parse("1 N")


def test_numbers_only_mix_with_dimensionless():
    assert (Quantity(0.5) + 1).magnitude == 1.5
    assert (1 + Quantity(0.5)).magnitude == 1.5
    assert (Quantity(0.5) - 1).magnitude == -0.5
    with pytest.raises(DimensionalityError, match="dimensionless"):
        parse("1 m") + 1


def test_equality_across_units():
    assert parse("1 km") == parse("1000 m")
    assert parse("1 m") != parse("1 s")
    assert Quantity(3) == 3
    assert parse("3 m") != 3


def test_ordering():
    assert parse("1 km") > parse("999 m")
    assert parse("1 h") <= parse("60 min")
    assert sorted([parse("1 mi"), parse("1 km"), parse("1000 ft")]) == [
        parse("1000 ft"), parse("1 km"), parse("1 mi"),
    ]
    with pytest.raises(DimensionalityError, match="cannot compare"):
        parse("1 m") < parse("1 s")


def test_negation_and_abs():
    q = -parse("3 m")
    assert q.magnitude == -3
    assert abs(q) == parse("3 m")
    with pytest.raises(TypeError):
        hash(parse("1 m"))
