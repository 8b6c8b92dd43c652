"""Physical dimensions as products of powers of the base dimensions."""

from __future__ import annotations

from typing import Iterator, Mapping

#: The base dimensions, in the order used for display and base-unit expansion.
BASE_DIMENSIONS: tuple[str, ...] = (
    "mass",
    "length",
    "time",
    "current",
    "temperature",
    "amount",
)


def _ordered(exps: Mapping[str, int]) -> dict[str, int]:
    return {name: exps[name] for name in BASE_DIMENSIONS if name in exps}


class Dimension:
    """An immutable product of base dimensions raised to integer powers.

    Zero exponents are never stored, so two dimensions are equal exactly when
    their stored exponents are equal, and the dimensionless dimension stores
    nothing at all.

    >>> Dimension(length=1, time=-2)
    Dimension('[length]/[time]^2')
    """

    __slots__ = ("_exps",)

    def __init__(self, exponents: Mapping[str, int] | None = None, **kwargs: int) -> None:
        merged: dict[str, int] = {}
        for source in (exponents or {}, kwargs):
            for name, exp in source.items():
                if name not in BASE_DIMENSIONS:
                    raise ValueError(
                        f"unknown base dimension {name!r}; "
                        f"expected one of: {', '.join(BASE_DIMENSIONS)}"
                    )
                if isinstance(exp, bool) or not isinstance(exp, int):
                    raise TypeError(f"exponent of {name!r} must be an int, got {exp!r}")
                merged[name] = merged.get(name, 0) + exp
        self._exps = _ordered({k: v for k, v in merged.items() if v != 0})

    @classmethod
    def _from_exps(cls, exps: Mapping[str, int]) -> Dimension:
        """Wrap an already validated mapping without re-checking it."""
        obj = cls.__new__(cls)
        obj._exps = _ordered(exps)
        return obj

    @property
    def dimensionless(self) -> bool:
        """True for the dimension of pure numbers."""
        return not self._exps

    def items(self) -> Iterator[tuple[str, int]]:
        """Iterate over ``(base dimension, exponent)`` pairs with non-zero exponent."""
        return iter(self._exps.items())

    def __mul__(self, other: Dimension) -> Dimension:
        if not isinstance(other, Dimension):
            return NotImplemented
        exps = dict(self._exps)
        for name, exp in other._exps.items():
            total = exps.get(name, 0) + exp
            if total:
                exps[name] = total
            else:
                exps.pop(name, None)
        return Dimension._from_exps(exps)

    def __truediv__(self, other: Dimension) -> Dimension:
        if not isinstance(other, Dimension):
            return NotImplemented
        exps = dict(self._exps)
        for name, exp in other._exps.items():
            total = exps.get(name, 0) - exp
            if total:
                exps[name] = total
            else:
                exps.pop(name, None)
        return Dimension._from_exps(exps)

    def __pow__(self, power: int) -> Dimension:
        if isinstance(power, bool) or not isinstance(power, int):
            return NotImplemented
        if power == 0:
            return Dimension()
        return Dimension._from_exps({k: v * power for k, v in self._exps.items()})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dimension):
            return NotImplemented
        return self._exps == other._exps

    def __hash__(self) -> int:
        return hash(tuple(self._exps.items()))

    def __str__(self) -> str:
        if not self._exps:
            return "dimensionless"

        def term(name: str, exp: int) -> str:
            return f"[{name}]" if exp == 1 else f"[{name}]^{exp}"

        num = [term(k, v) for k, v in self._exps.items() if v > 0]
        den = [term(k, -v) for k, v in self._exps.items() if v < 0]
        text = "*".join(num) or "1"
        if den:
            text += "/" + "/".join(den)
        return text

    def __repr__(self) -> str:
        return f"Dimension({str(self)!r})"
