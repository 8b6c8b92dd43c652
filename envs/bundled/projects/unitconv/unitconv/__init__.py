"""Physical quantities and unit conversion.

>>> from unitconv import parse
>>> speed = parse("3.5 km/h")
>>> speed.to("m/s").format(3)
'0.972 m/s'
"""

from .dimensions import BASE_DIMENSIONS, Dimension
from .errors import (
    DimensionalityError,
    OffsetUnitError,
    ParseError,
    RedefinitionError,
    UndefinedUnitError,
    UnitError,
)
from .quantity import Quantity
from .registry import PREFIXES, UnitRegistry, get_default_registry
from .units import Unit, UnitDefinition

__version__ = "0.5.2"


def parse(text: str) -> Quantity:
    """Parse a quantity string such as ``"9.81 m/s^2"`` with the default registry."""
    return get_default_registry().parse_quantity(text)


def units(text: str) -> Unit:
    """Parse a unit expression such as ``"kg*m/s^2"`` with the default registry."""
    return get_default_registry().parse_units(text)


__all__ = [
    "BASE_DIMENSIONS", "PREFIXES", "Dimension", "DimensionalityError", "OffsetUnitError",
    "ParseError", "Quantity", "RedefinitionError", "UndefinedUnitError", "Unit",
    "UnitDefinition", "UnitError", "UnitRegistry", "get_default_registry", "parse", "units",
]
