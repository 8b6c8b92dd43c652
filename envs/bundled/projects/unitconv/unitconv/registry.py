"""The unit registry: unit definitions, SI prefixes and the expression parser."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from .dimensions import Dimension
from .errors import ParseError, RedefinitionError, UndefinedUnitError
from .units import Unit, UnitDefinition

if TYPE_CHECKING:  # pragma: no cover
    from .quantity import Quantity

#: SI prefixes and their multipliers.  Both the micro sign (U+00B5) and the
#: Greek letter mu (U+03BC) are accepted, as well as the ASCII ``u``.
PREFIXES: dict[str, float] = {
    "Y": 1e24, "Z": 1e21, "E": 1e18, "P": 1e15, "T": 1e12, "G": 1e9,
    "M": 1e6, "k": 1e3, "h": 1e2, "da": 1e1, "d": 1e-1, "c": 1e-2,
    "m": 1e-3, "\u00b5": 1e-6, "\u03bc": 1e-6, "u": 1e-6, "n": 1e-9,
    "p": 1e-12, "f": 1e-15, "a": 1e-18, "z": 1e-21, "y": 1e-24,
}

_NAME = r"°?[^\W\d]\w*"
_NAME_RE = re.compile(_NAME + r"\Z")
_TOKEN_RE = re.compile(rf"\s*(?:(?P<num>\d+)|(?P<name>{_NAME})|(?P<op>\*\*|[*/^()·-]))")
_NUMBER_RE = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)")

# (name, size in SI units, base dimension, aliases)
_BASE: list[tuple[str, float, str, tuple[str, ...]]] = [
    ("m", 1.0, "length", ("meter", "metre")),
    ("g", 1e-3, "mass", ("gram",)),
    ("s", 1.0, "time", ("second", "sec")),
    ("K", 1.0, "temperature", ("kelvin",)),
    ("mol", 1.0, "amount", ("mole",)),
    ("A", 1.0, "current", ("ampere", "amp")),
]

# (name, definition, aliases, prefixable)
_BUILTIN: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("min", "60 s", ("minute",), False),
    ("h", "60 min", ("hour", "hr"), False),
    ("day", "24 h", ("days",), False),
    ("in", "0.0254 m", ("inch",), False),
    ("ft", "12 in", ("foot", "feet"), False),
    ("yd", "3 ft", ("yard",), False),
    ("mi", "5280 ft", ("mile",), False),
    ("L", "0.001 m^3", ("l", "liter", "litre"), True),
    ("t", "1000 kg", ("tonne",), True),
    ("lb", "0.45359237 kg", ("pound",), False),
    ("oz", "0.0625 lb", ("ounce",), False),
    ("Hz", "1/s", ("hertz",), True),
    ("N", "1 kg*m/s^2", ("newton",), True),
    ("J", "1 N*m", ("joule",), True),
    ("W", "1 J/s", ("watt",), True),
    ("Pa", "1 N/m^2", ("pascal",), True),
    ("C", "1 A*s", ("coulomb",), True),
    ("V", "1 W/A", ("volt",), True),
    ("ohm", "1 V/A", ("Ω",), True),
    ("bar", "1e5 Pa", (), True),
    ("atm", "101325 Pa", (), False),
    ("psi", "6894.757293168361 Pa", (), False),
    ("cal", "4.184 J", ("calorie",), True),
    ("eV", "1.602176634e-19 J", ("electronvolt",), True),
    ("Wh", "3600 J", (), True),
    ("mph", "1 mi/h", (), False),
    ("delta_degC", "1 K", (), False),
    ("delta_degF", f"{5 / 9!r} K", (), False),
]

#: Symbols of the coherent SI unit of each base dimension.
BASE_UNITS: dict[str, str] = {
    "mass": "kg", "length": "m", "time": "s",
    "current": "A", "temperature": "K", "amount": "mol",
}


class _Parser:
    """Recursive-descent parser for unit expressions such as ``kg*m/s^2``.

    Grammar (``*`` and ``/`` are left-associative, whitespace between two
    factors means multiplication)::

        expr   := power (('*' | '·' | '/')? power)*
        power  := atom (('^' | '**') '-'? INT)?
        atom   := NAME | '1' | '(' expr ')'
    """

    def __init__(self, registry: UnitRegistry, text: str) -> None:
        self.registry = registry
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN_RE.match(text, pos)
            if match is None:
                raise ParseError(f"unexpected character {text[pos:].lstrip()[0]!r} in {text!r}")
            kind = match.lastgroup or "op"
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.index = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise ParseError(f"unexpected end of unit expression {self.text!r}")
        self.index += 1
        return token

    def _error(self, token: tuple[str, str, int]) -> ParseError:
        return ParseError(f"unexpected {token[1]!r} at position {token[2]} in {self.text!r}")

    def parse(self) -> Unit:
        if not self.tokens:
            return Unit.one(self.registry)
        unit = self._expr()
        token = self._peek()
        if token is not None:
            raise self._error(token)
        return unit

    def _expr(self) -> Unit:
        unit = self._power()
        while (token := self._peek()) is not None:
            kind, value, _ = token
            if value in ("*", "·", "/"):
                self.index += 1
                rhs = self._power()
                unit = unit / rhs if value == "/" else unit * rhs
            elif kind in ("name", "num") or value == "(":
                unit = unit * self._power()
            else:
                break
        return unit

    def _power(self) -> Unit:
        unit = self._atom()
        token = self._peek()
        if token is not None and token[1] in ("^", "**"):
            self.index += 1
            sign = 1
            if (nxt := self._peek()) is not None and nxt[1] == "-":
                self.index += 1
                sign = -1
            exp_token = self._next()
            if exp_token[0] != "num":
                raise self._error(exp_token)
            unit = unit ** (sign * int(exp_token[1]))
        return unit

    def _atom(self) -> Unit:
        token = self._next()
        kind, value, _ = token
        if kind == "name":
            return self.registry.unit(value)
        if kind == "num" and value == "1":
            return Unit.one(self.registry)
        if value == "(":
            unit = self._expr()
            closing = self._next()
            if closing[1] != ")":
                raise self._error(closing)
            return unit
        raise self._error(token)


class UnitRegistry:
    """A collection of unit definitions.

    A new registry knows the SI base units, common derived and customary
    units and the SI prefixes; pass ``builtins=False`` for an empty one.
    Further units can be added with :meth:`define`.
    """

    _builtin_units: dict[str, UnitDefinition] | None = None

    def __init__(self, *, builtins: bool = True) -> None:
        self._units: dict[str, UnitDefinition] = (
            self._load_builtins() if builtins else {}
        )
        self._cache: dict[str, Unit] = {}

    @classmethod
    def _load_builtins(cls) -> dict[str, UnitDefinition]:
        """Return a fresh copy of the built-in definitions (parsed only once)."""
        if cls._builtin_units is None:
            reg = cls(builtins=False)
            for name, factor, dim, aliases in _BASE:
                entry = UnitDefinition(name, factor, Dimension({dim: 1}))
                for n in (name, *aliases):
                    reg._units[n] = entry
            for name, definition, aliases, prefixable in _BUILTIN:
                reg.define(name, definition, aliases=aliases, prefixable=prefixable)
            reg.define("degC", "1 K", offset=273.15, delta="delta_degC",
                       aliases=("°C", "celsius"), prefixable=False)
            reg.define("degF", f"{5 / 9!r} K", offset=273.15 - 32 * 5 / 9,
                       delta="delta_degF", aliases=("°F", "fahrenheit"), prefixable=False)
            cls._builtin_units = reg._units
        return dict(cls._builtin_units)

    def define(
        self,
        name: str,
        definition: str | Quantity | Dimension,
        *,
        aliases: Iterable[str] = (),
        prefixable: bool = True,
        offset: float = 0.0,
        delta: str | None = None,
        replace: bool = False,
    ) -> None:
        """Add a unit.

        ``definition`` is a quantity string such as ``"201.168 m"``, a
        :class:`Quantity`, or a :class:`Dimension` for a new base unit.
        ``offset`` (in SI units) and ``delta`` (the name of the matching
        difference unit) are only used for units with a shifted zero point.
        """
        from .quantity import Quantity

        names = [name, *aliases]
        for n in names:
            if not _NAME_RE.match(n):
                raise ValueError(f"invalid unit name {n!r}")
            if n in self._units and not replace:
                raise RedefinitionError(f"unit {n!r} is already defined")
        if isinstance(definition, Dimension):
            factor, dimension = 1.0, definition
        else:
            if isinstance(definition, str):
                definition = self.parse_quantity(definition)
            if not isinstance(definition, Quantity):
                raise TypeError(f"cannot define a unit from {definition!r}")
            if definition.units.is_offset:
                raise ValueError("a unit cannot be defined in terms of an offset unit")
            factor = definition.magnitude * definition.units.factor
            dimension = definition.units.dimension
        if factor == 0:
            raise ValueError(f"unit {name!r} must have a non-zero size")
        if delta is not None and self.unit(delta).dimension != dimension:
            raise ValueError(f"difference unit {delta!r} does not match {name!r}")
        entry = UnitDefinition(name, float(factor), dimension, float(offset), prefixable, delta)
        for n in names:
            self._units[n] = entry
        self._cache.clear()

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.unit(name)
        except UndefinedUnitError:
            return False
        return True

    def _resolve(self, name: str) -> tuple[str, float, UnitDefinition]:
        entry = self._units.get(name)
        if entry is not None:
            return "", 1.0, entry
        for prefix in sorted(PREFIXES, key=len, reverse=True):
            if name.startswith(prefix) and len(name) > len(prefix):
                entry = self._units.get(name[len(prefix):])
                if entry is not None and entry.prefixable:
                    return prefix, PREFIXES[prefix], entry
        raise UndefinedUnitError(name)

    def unit(self, name: str) -> Unit:
        """Look up a single, possibly prefixed, unit name such as ``"km"``."""
        prefix, scale, entry = self._resolve(name)
        delta = self.unit(entry.delta) if entry.delta else None
        return Unit(
            {prefix + entry.name: 1},
            scale * entry.factor,
            entry.dimension,
            offset=entry.offset,
            delta=delta,
            registry=self,
        )

    def parse_units(self, text: str) -> Unit:
        """Parse a unit expression such as ``"kg*m/s^2"`` or ``"J/(kg*K)"``."""
        unit = self._cache.get(text)
        if unit is None:
            unit = _Parser(self, text).parse()
            self._cache[text] = unit
        return unit

    def parse_quantity(self, text: str) -> Quantity:
        """Parse a quantity string such as ``"3.5 km/h"`` or ``"20 degC"``."""
        from .quantity import Quantity

        match = _NUMBER_RE.match(text)
        if match is None:
            raise ParseError(f"no number at the start of {text!r}")
        number = match.group(1)
        try:
            magnitude: float = int(number)
        except ValueError:
            magnitude = float(number)
        rest = text[match.end():].strip()
        if rest.startswith("/"):
            rest = "1" + rest
        return Quantity(magnitude, self.parse_units(rest))

    __call__ = parse_quantity


_default_registry: UnitRegistry | None = None


def get_default_registry() -> UnitRegistry:
    """The shared registry used when units are given as plain strings."""
    global _default_registry
    if _default_registry is None:
        _default_registry = UnitRegistry()
    return _default_registry
