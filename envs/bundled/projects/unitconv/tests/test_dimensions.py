import pytest

from unitconv import Dimension


def test_zero_exponents_are_dropped():
    assert Dimension(length=1, time=0) == Dimension(length=1)
    assert Dimension(length=0).dimensionless
    assert Dimension() == Dimension({})
    assert hash(Dimension(time=-1, length=1)) == hash(Dimension(length=1, time=-1))


def test_multiplication_adds_exponents():
    velocity = Dimension(length=1, time=-1)
    assert velocity * Dimension(time=1) == Dimension(length=1)
    assert Dimension(mass=1) * Dimension(length=1, time=-2) == Dimension(mass=1, length=1, time=-2)


def test_division_subtracts_exponents():
    energy = Dimension(mass=1, length=2, time=-2)
    assert energy / Dimension(time=1) == Dimension(mass=1, length=2, time=-3)
    assert Dimension(length=1) / Dimension(time=2) == Dimension(length=1, time=-2)


def test_power():
    assert Dimension(length=1) ** 3 == Dimension(length=3)
    assert Dimension(length=1, time=-1) ** -2 == Dimension(length=-2, time=2)
    assert (Dimension(mass=1) ** 0).dimensionless


def test_str_and_repr():
    assert str(Dimension(mass=1, length=1, time=-2)) == "[mass]*[length]/[time]^2"
    assert str(Dimension(time=-1)) == "1/[time]"
    assert str(Dimension()) == "dimensionless"
    assert repr(Dimension(length=2)) == "Dimension('[length]^2')"


def test_invalid_base_dimension_and_exponent():
    with pytest.raises(ValueError, match="unknown base dimension 'colour'"):
        Dimension(colour=1)
    with pytest.raises(TypeError):
        Dimension(length=1.5)
