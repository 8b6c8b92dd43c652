"""Quantities: a magnitude together with a unit."""

from __future__ import annotations

import operator
from typing import Callable, Union

from .dimensions import Dimension
from .errors import DimensionalityError, OffsetUnitError
from .units import Unit

Number = Union[int, float]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _label(unit: Unit) -> str:
    return f"{str(unit)!r}" if str(unit) else "dimensionless"


def _convert(value: float, src: Unit, dst: Unit) -> float:
    if src == dst:
        return value
    return dst.from_base(src.to_base(value))


def _format_number(value: float, precision: int | None) -> str:
    if precision is not None:
        return f"{value:.{precision}f}"
    return f"{value:.12g}"


class Quantity:
    """A magnitude with a unit, e.g. ``Quantity(3.5, "km/h")``.

    Unit strings are resolved in the unit's registry, or in the default
    registry when a plain string is given.  Arithmetic combines dimensions;
    addition and subtraction require compatible dimensions and express the
    result in the unit of the left operand.
    """

    __slots__ = ("_magnitude", "_units")

    def __init__(self, magnitude: Number, units: Unit | str = "") -> None:
        if not _is_number(magnitude):
            raise TypeError(f"magnitude must be a real number, got {magnitude!r}")
        if isinstance(units, str):
            from .registry import get_default_registry

            units = get_default_registry().parse_units(units)
        elif not isinstance(units, Unit):
            raise TypeError(f"units must be a Unit or a string, got {units!r}")
        self._magnitude = magnitude
        self._units = units

    @property
    def magnitude(self) -> Number:
        return self._magnitude

    @property
    def units(self) -> Unit:
        return self._units

    @property
    def dimension(self) -> Dimension:
        return self._units.dimension

    @property
    def dimensionless(self) -> bool:
        return self._units.dimension.dimensionless

    # -- conversion ---------------------------------------------------------

    def _resolve(self, units: Unit | str) -> Unit:
        if isinstance(units, Unit):
            return units
        if isinstance(units, str):
            from .registry import get_default_registry

            registry = self._units.registry or get_default_registry()
            return registry.parse_units(units)
        raise TypeError(f"expected a Unit or a unit string, got {units!r}")

    def to(self, units: Unit | str) -> Quantity:
        """Return this quantity expressed in ``units``.

        Raises :class:`DimensionalityError` if the dimensions differ.
        Offset units (degC, degF) are converted as absolute temperatures.
        """
        target = self._resolve(units)
        if target.dimension != self.dimension:
            raise DimensionalityError(
                f"cannot convert from {_label(self._units)} ({self.dimension}) "
                f"to {_label(target)} ({target.dimension})"
            )
        return Quantity(_convert(self._magnitude, self._units, target), target)

    def to_base(self) -> Quantity:
        """Return this quantity in coherent SI base units (``kg*m/s^2`` etc.)."""
        from .registry import BASE_UNITS, get_default_registry

        registry = self._units.registry or get_default_registry()
        target = Unit.one(registry)
        for name, exp in self.dimension.items():
            target = target * registry.unit(BASE_UNITS[name]) ** exp
        return self.to(target)

    def __float__(self) -> float:
        if not self.dimensionless:
            raise DimensionalityError(
                f"cannot convert {_label(self._units)} ({self.dimension}) to float: "
                "only dimensionless quantities can be"
            )
        return float(_convert(self._magnitude, self._units, Unit.one()))

    # -- arithmetic -----------------------------------------------------------

    def _coerce(self, other: object) -> Quantity | None:
        if isinstance(other, Quantity):
            return other
        if _is_number(other):
            return Quantity(other, Unit.one(self._units.registry))
        return None

    def _add_sub(self, other: Quantity, sign: int) -> Quantity:
        a, b = self._units, other._units
        if a.dimension != b.dimension:
            verb = "add" if sign > 0 else "subtract"
            raise DimensionalityError(
                f"cannot {verb} {_label(a)} ({a.dimension}) and {_label(b)} ({b.dimension})"
            )
        if not (a.is_offset or b.is_offset):
            value = self._magnitude + sign * _convert(other._magnitude, b, a)
            return Quantity(value, a)
        if a.is_offset and b.is_offset:
            if sign > 0:
                raise OffsetUnitError(
                    f"cannot add two absolute temperatures ({a} and {b}); "
                    f"express one of them as a difference, e.g. in {a.delta}"
                )
            diff = self._magnitude - _convert(other._magnitude, b, a)
            return Quantity(diff, a.delta)
        if a.is_offset:
            # absolute +/- difference: only the scale of the difference matters
            return Quantity(self._magnitude + sign * other._magnitude * b.factor / a.factor, a)
        if sign < 0:
            raise OffsetUnitError(
                f"cannot subtract an absolute temperature ({b}) from a difference ({a})"
            )
        return Quantity(other._magnitude + self._magnitude * a.factor / b.factor, b)

    def __add__(self, other: object) -> Quantity:
        coerced = self._coerce(other)
        if coerced is None:
            return NotImplemented
        return self._add_sub(coerced, 1)

    def __sub__(self, other: object) -> Quantity:
        coerced = self._coerce(other)
        if coerced is None:
            return NotImplemented
        return self._add_sub(coerced, -1)

    __radd__ = __add__

    def __rsub__(self, other: object) -> Quantity:
        coerced = self._coerce(other)
        if coerced is None:
            return NotImplemented
        return coerced._add_sub(self, -1)

    def _scale(self, factor: Number, op: str) -> Quantity:
        if self._units.is_offset:
            raise OffsetUnitError(
                f"cannot {op} a quantity in offset unit {str(self._units)!r}; "
                f"convert it to K or use {str(self._units.delta)!r}"
            )
        return Quantity(self._magnitude * factor, self._units)

    def __mul__(self, other: object) -> Quantity:
        if isinstance(other, Quantity):
            return Quantity(self._magnitude * other._magnitude, self._units * other._units)
        if _is_number(other):
            return self._scale(other, "multiply")
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> Quantity:
        if isinstance(other, Quantity):
            return Quantity(self._magnitude / other._magnitude, self._units / other._units)
        if _is_number(other):
            return self._scale(1 / other, "divide")
        return NotImplemented

    def __rtruediv__(self, other: object) -> Quantity:
        if _is_number(other):
            return Quantity(other / self._magnitude, self._units**-1)
        return NotImplemented

    def __pow__(self, power: int) -> Quantity:
        if isinstance(power, bool) or not isinstance(power, int):
            raise TypeError(f"quantities can only be raised to integer powers, got {power!r}")
        return Quantity(self._magnitude**power, self._units**power)

    def __neg__(self) -> Quantity:
        return Quantity(-self._magnitude, self._units)

    def __abs__(self) -> Quantity:
        return Quantity(abs(self._magnitude), self._units)

    # -- comparison -------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        coerced = self._coerce(other)
        if coerced is None:
            return NotImplemented
        if coerced.dimension != self.dimension:
            return False
        return self._magnitude == _convert(coerced._magnitude, coerced._units, self._units)

    __hash__ = None  # type: ignore[assignment]

    def _compare(self, other: object, op: Callable[[float, float], bool]) -> bool:
        coerced = self._coerce(other)
        if coerced is None:
            return NotImplemented
        if coerced.dimension != self.dimension:
            raise DimensionalityError(
                f"cannot compare {_label(self._units)} ({self.dimension}) "
                f"with {_label(coerced._units)} ({coerced.dimension})"
            )
        return op(self._magnitude, _convert(coerced._magnitude, coerced._units, self._units))

    def __lt__(self, other: object) -> bool:
        return self._compare(other, operator.lt)

    def __le__(self, other: object) -> bool:
        return self._compare(other, operator.le)

    def __gt__(self, other: object) -> bool:
        return self._compare(other, operator.gt)

    def __ge__(self, other: object) -> bool:
        return self._compare(other, operator.ge)

    # -- formatting -----------------------------------------------------------

    def format(self, precision: int | None = None, *, units: Unit | str | None = None) -> str:
        """Format as ``"<magnitude> <unit>"``.

        ``precision`` is the number of digits after the decimal point; by
        default up to 12 significant digits are shown.  If ``units`` is given
        the quantity is converted first.
        """
        if precision is not None and (isinstance(precision, bool) or precision < 0):
            raise ValueError(f"precision must be a non-negative int, got {precision!r}")
        quantity = self if units is None else self.to(units)
        number = _format_number(quantity._magnitude, precision)
        unit = str(quantity._units)
        return f"{number} {unit}" if unit else number

    def __str__(self) -> str:
        return self.format()

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        unit = str(self._units)
        number = format(self._magnitude, spec)
        return f"{number} {unit}" if unit else number

    def __repr__(self) -> str:
        return f"Quantity({self._magnitude!r}, {str(self._units)!r})"
