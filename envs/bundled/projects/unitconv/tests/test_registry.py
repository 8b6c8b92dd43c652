import pytest

from unitconv import (
    Dimension, DimensionalityError, RedefinitionError, UndefinedUnitError, UnitRegistry,
    get_default_registry, parse,
)


def test_define_from_quantity_string():
    reg = UnitRegistry()
    reg.define("furlong", "201.168 m", aliases=("furlongs",))
    assert reg("8 furlongs").to("mi").magnitude == pytest.approx(1.0)
    assert reg.parse_units("kfurlong").factor == pytest.approx(201168)


def test_define_non_prefixable():
    reg = UnitRegistry()
    reg.define("fortnight", "14 day", prefixable=False)
    assert reg("1 fortnight").to("h").magnitude == pytest.approx(336)
    with pytest.raises(UndefinedUnitError):
        reg.parse_units("kfortnight")


def test_define_new_base_unit():
    reg = UnitRegistry(builtins=False)
    reg.define("px", Dimension(length=1))
    reg.define("inch", "96 px")
    assert reg("2 inch").to("px").magnitude == 192
    with pytest.raises(UndefinedUnitError):
        reg.parse_units("m")


def test_redefinition_requires_replace():
    reg = UnitRegistry()
    with pytest.raises(RedefinitionError, match="'m' is already defined"):
        reg.define("m", "1 ft")
    reg.define("ton", "2000 lb")
    assert reg("1 ton").to("kg").magnitude == pytest.approx(907.18474)
    reg.define("ton", "1000 kg", replace=True)
    assert reg("1 ton").to("kg").magnitude == pytest.approx(1000)


def test_invalid_definitions():
    reg = UnitRegistry()
    with pytest.raises(ValueError, match="invalid unit name"):
        reg.define("2x", "1 m")
    with pytest.raises(ValueError, match="non-zero"):
        reg.define("nothing", "0 m")
    with pytest.raises(ValueError, match="offset unit"):
        reg.define("warm", "25 degC")


def test_contains():
    reg = UnitRegistry()
    assert "km" in reg
    assert "µs" in reg
    assert "kmin" not in reg
    assert 3 not in reg


def test_default_registry():
    reg = get_default_registry()
    assert reg.parse_units("N*m") == reg.parse_units("N m")
    assert reg.unit("km") == reg.parse_units("km")
    assert parse("1 km").units.registry is get_default_registry()
    with pytest.raises(DimensionalityError):
        parse("1 km").to("kg")
