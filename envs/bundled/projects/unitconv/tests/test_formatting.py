import pytest

from unitconv import Quantity, parse


def test_str_uses_short_representation():
    assert str(parse("3.5 km/h")) == "3.5 km/h"
    assert str(parse("9.81 m/s^2")) == "9.81 m/s^2"
    assert str(Quantity(0.1 + 0.2, "m")) == "0.3 m"
    assert str(Quantity(2.5)) == "2.5"
    assert repr(parse("3 N*m")) == "Quantity(3, 'N*m')"
    assert repr(Quantity(0.5)) == "Quantity(0.5, '')"


def test_format_with_precision():
    q = parse("3.5 km/h").to("m/s")
    assert q.format(3) == "0.972 m/s"
    assert q.format(precision=1) == "1.0 m/s"
    assert parse("2 J/(kg*K)").format(2) == "2.00 J/(kg*K)"


def test_format_with_conversion():
    assert parse("1 mi").format(2, units="km") == "1.61 km"
    assert parse("20 degC").format(2, units="K") == "293.15 K"


def test_format_spec():
    q = Quantity(1234.5678, "m")
    assert f"{q:.2f}" == "1234.57 m"
    assert f"{q:.0f}" == "1235 m"
    assert f"{q:,.1f}" == "1,234.6 m"
    assert f"{q}" == "1234.5678 m"


@pytest.mark.parametrize("precision", [-1, True])
def test_invalid_precision(precision):
    with pytest.raises(ValueError):
        Quantity(1, "m").format(precision)
