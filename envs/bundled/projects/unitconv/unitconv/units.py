"""Unit definitions and compound units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from .dimensions import Dimension
from .errors import OffsetUnitError

if TYPE_CHECKING:  # pragma: no cover
    from .registry import UnitRegistry


@dataclass(frozen=True)
class UnitDefinition:
    """A named unit as stored in a registry.

    ``factor`` and ``offset`` relate a value in this unit to the coherent SI
    unit of its dimension: ``si_value = value * factor + offset``.
    """

    name: str
    factor: float
    dimension: Dimension
    offset: float = 0.0
    prefixable: bool = True
    delta: str | None = None  # difference unit of an offset unit (degC -> delta_degC)


def _term(name: str, exp: int) -> str:
    return name if exp == 1 else f"{name}^{exp}"


class Unit:
    """A product of (possibly prefixed) named units raised to integer powers.

    Units are normally obtained from a :class:`~unitconv.UnitRegistry`, for
    example ``registry.parse_units("km/h")``.  Multiplying, dividing and
    raising units to integer powers builds new compound units.

    A unit with a shifted zero point (``degC``, ``degF``) is an *offset
    unit*; it can only be used on its own, never inside a compound unit.
    """

    __slots__ = ("_terms", "factor", "dimension", "offset", "delta", "registry")

    def __init__(
        self,
        terms: Mapping[str, int],
        factor: float,
        dimension: Dimension,
        *,
        offset: float = 0.0,
        delta: Unit | None = None,
        registry: UnitRegistry | None = None,
    ) -> None:
        self._terms = {name: exp for name, exp in terms.items() if exp != 0}
        self.factor = factor
        self.dimension = dimension
        self.offset = offset
        self.delta = delta
        self.registry = registry

    @classmethod
    def one(cls, registry: UnitRegistry | None = None) -> Unit:
        """The dimensionless unit with no terms."""
        return cls({}, 1.0, Dimension(), registry=registry)

    @property
    def is_offset(self) -> bool:
        """True for units with a shifted zero point such as degC."""
        return self.delta is not None

    def to_base(self, value: float) -> float:
        """Convert ``value`` in this unit to the coherent SI unit."""
        return value * self.factor + self.offset

    def from_base(self, value: float) -> float:
        """Convert ``value`` in the coherent SI unit to this unit."""
        return (value - self.offset) / self.factor

    def _check_combinable(self, other: Unit, op: str) -> None:
        for unit in (self, other):
            if unit.is_offset:
                raise OffsetUnitError(
                    f"cannot {op} offset unit {str(unit)!r}; "
                    f"use {str(unit.delta)!r} for differences or convert to K first"
                )

    def _combine(self, other: Unit, sign: int) -> dict[str, int]:
        terms = dict(self._terms)
        for name, exp in other._terms.items():
            terms[name] = terms.get(name, 0) + sign * exp
        return terms

    def __mul__(self, other: Unit) -> Unit:
        if not isinstance(other, Unit):
            return NotImplemented
        self._check_combinable(other, "multiply")
        return Unit(
            self._combine(other, 1),
            self.factor * other.factor,
            self.dimension * other.dimension,
            registry=self.registry or other.registry,
        )

    def __truediv__(self, other: Unit) -> Unit:
        if not isinstance(other, Unit):
            return NotImplemented
        self._check_combinable(other, "divide")
        return Unit(
            self._combine(other, -1),
            self.factor / other.factor,
            self.dimension / other.dimension,
            registry=self.registry or other.registry,
        )

    def __pow__(self, power: int) -> Unit:
        if isinstance(power, bool) or not isinstance(power, int):
            return NotImplemented
        if power == 1:
            return self
        self._check_combinable(self, "raise to a power the")
        return Unit(
            {name: exp * power for name, exp in self._terms.items()},
            self.factor**power,
            self.dimension**power,
            registry=self.registry,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Unit):
            return NotImplemented
        return (
            self._terms == other._terms
            and self.factor == other.factor
            and self.offset == other.offset
        )

    def __hash__(self) -> int:
        return hash((frozenset(self._terms.items()), self.factor, self.offset))

    def __str__(self) -> str:
        num = [_term(n, e) for n, e in self._terms.items() if e > 0]
        den = [_term(n, -e) for n, e in self._terms.items() if e < 0]
        if not num and not den:
            return ""
        text = "*".join(num) or "1"
        if len(den) == 1:
            text += "/" + den[0]
        elif den:
            text += "/(" + "*".join(den) + ")"
        return text

    def __repr__(self) -> str:
        return f"Unit({str(self)!r})"
