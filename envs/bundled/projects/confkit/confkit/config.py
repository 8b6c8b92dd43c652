"""The :class:`Config` object and the top-level load/merge helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TextIO, TypeVar

from . import convert
from .errors import ConversionError, NoOptionError, NoSectionError
from .interpolation import expand
from .syntax import Entry, format_value, normalize_key, parse

T = TypeVar("T")

_MISSING: Any = object()


class Config:
    """An ordered collection of sections, each an ordered mapping of keys.

    Keys are case-insensitive.  Values in the defaults section (``DEFAULT``
    unless configured otherwise) are visible from every section unless the
    section sets the key itself.
    """

    def __init__(self, *, default_section: str = "DEFAULT", list_separator: str | None = ",") -> None:
        self.default_section = default_section
        self.list_separator = list_separator
        self._defaults: dict[str, Entry] = {}
        self._sections: dict[str, dict[str, Entry]] = {}

    # -- reading ---------------------------------------------------------

    def read_string(self, text: str, source: str | None = None) -> "Config":
        """Parse *text* and merge it into this config (its values win)."""
        doc = parse(text, source=source)
        for name, entries in doc.sections.items():
            if name == self.default_section:
                self._defaults.update(entries)
            else:
                self._sections.setdefault(name, {}).update(entries)
        return self

    def read_file(self, path: str | os.PathLike[str], encoding: str = "utf-8") -> "Config":
        """Read and merge the file at *path*; errors name the file."""
        with open(path, encoding=encoding) as fp:
            return self.read_string(fp.read(), source=os.fspath(path))

    def update(self, other: "Config") -> "Config":
        """Merge *other* into this config; keys in *other* win."""
        self._defaults.update(other._defaults)
        for name, entries in other._sections.items():
            if name in self._sections:
                self._sections[name].update(entries)
            else:
                self._sections[name] = dict(entries)
        return self

    def copy(self) -> "Config":
        """Return an independent copy of this config."""
        new = Config(default_section=self.default_section, list_separator=self.list_separator)
        return new.update(self)

    # -- structure -------------------------------------------------------

    def sections(self) -> list[str]:
        """Names of all sections except the defaults section, in order."""
        return list(self._sections)

    def has_section(self, section: str) -> bool:
        return section in self._sections

    def add_section(self, section: str) -> None:
        """Create an empty section; does nothing if it already exists."""
        if section != self.default_section:
            self._sections.setdefault(section, {})

    def remove_section(self, section: str) -> None:
        if section not in self._sections:
            raise NoSectionError(section)
        del self._sections[section]

    def _section(self, section: str) -> dict[str, Entry]:
        if section == self.default_section:
            return self._defaults
        try:
            return self._sections[section]
        except KeyError:
            raise NoSectionError(section) from None

    def _lookup(self, section: str, key: str) -> Entry | None:
        norm = normalize_key(key)
        own = self._section(section)
        if norm in own:
            return own[norm]
        return self._defaults.get(norm)

    def has_option(self, section: str, key: str) -> bool:
        """Whether *key* is visible from *section* (defaults included)."""
        try:
            return self._lookup(section, key) is not None
        except NoSectionError:
            return False

    def options(self, section: str) -> list[str]:
        """Key names visible from *section*: its own first, then defaults."""
        own = self._section(section)
        names = [entry.name for entry in own.values()]
        names += [e.name for k, e in self._defaults.items() if k not in own]
        return names

    def set(self, section: str, key: str, value: str) -> None:
        """Set *key* in *section* to the raw string *value*."""
        if not isinstance(value, str):
            raise TypeError(f"values must be strings, not {type(value).__name__}")
        entries = self._section(section)
        norm = normalize_key(key)
        old = entries.get(norm)
        entries[norm] = Entry(old.name if old else key.strip(), value)

    def remove_option(self, section: str, key: str) -> bool:
        """Remove *key* from *section*; return whether it was present."""
        return self._section(section).pop(normalize_key(key), None) is not None

    # -- getters ---------------------------------------------------------

    def get(self, section: str, key: str, *, raw: bool = False, fallback: Any = _MISSING) -> Any:
        """Return the value of *key*, with ``${...}`` references expanded.

        If the key (or the whole section) is missing, *fallback* is returned
        when given; otherwise :class:`NoOptionError` is raised.
        """
        entry = self._find(section, key)
        if entry is None:
            if fallback is not _MISSING:
                return fallback
            self._section(section)  # raises NoSectionError for an unknown section
            raise NoOptionError(section, key)
        if raw:
            return entry.value
        return expand(self._lookup, section, key)

    def _find(self, section: str, key: str) -> Entry | None:
        if section != self.default_section and section not in self._sections:
            return None
        return self._lookup(section, key)

    def _get_converted(
        self, section: str, key: str, func: Callable[[str], T], kind: str, fallback: Any
    ) -> T:
        entry = self._find(section, key)
        if entry is None and fallback is not _MISSING:
            return fallback
        value = self.get(section, key)
        try:
            return func(value)
        except ValueError:
            assert entry is not None
            raise ConversionError(
                f"[{section}] {entry.name}: cannot convert {value!r} to {kind}",
                lineno=entry.lineno,
                source=entry.source,
            ) from None

    def get_int(self, section: str, key: str, *, fallback: Any = _MISSING) -> int:
        return self._get_converted(section, key, convert.to_int, "int", fallback)

    def get_float(self, section: str, key: str, *, fallback: Any = _MISSING) -> float:
        return self._get_converted(section, key, convert.to_float, "float", fallback)

    def get_bool(self, section: str, key: str, *, fallback: Any = _MISSING) -> bool:
        return self._get_converted(section, key, convert.to_bool, "bool", fallback)

    def get_duration(self, section: str, key: str, *, fallback: Any = _MISSING) -> timedelta:
        return self._get_converted(section, key, convert.to_duration, "duration", fallback)

    def get_list(
        self, section: str, key: str, *, sep: str | None = _MISSING, fallback: Any = _MISSING
    ) -> list[str]:
        """Return the value split into items; *sep* defaults to ``list_separator``."""
        separator = self.list_separator if sep is _MISSING else sep
        return self._get_converted(
            section, key, lambda v: convert.to_list(v, separator), "list", fallback
        )

    def items(self, section: str, *, raw: bool = False) -> list[tuple[str, str]]:
        """``(key, value)`` pairs visible from *section*, in :meth:`options` order."""
        return [(name, self.get(section, name, raw=raw)) for name in self.options(section)]

    def to_dict(self, *, raw: bool = False) -> dict[str, dict[str, str]]:
        """Return ``{section: {key: value}}`` with defaults folded in."""
        return {name: dict(self.items(name, raw=raw)) for name in self._sections}

    # -- writing ---------------------------------------------------------

    def to_string(self) -> str:
        """Render the raw values as INI text that reads back to the same config."""
        blocks: list[str] = []
        named = [(self.default_section, self._defaults)] if self._defaults else []
        named += list(self._sections.items())
        for name, entries in named:
            lines = [f"[{name}]"]
            for entry in entries.values():
                value = format_value(entry.value)
                lines.append(f"{entry.name} = {value}" if value else f"{entry.name} =")
            blocks.append("\n".join(lines) + "\n")
        return "\n".join(blocks)

    def write(self, fp: TextIO) -> None:
        """Write :meth:`to_string` to the open text file *fp*."""
        fp.write(self.to_string())

    def __contains__(self, section: object) -> bool:
        return section in self._sections

    def __repr__(self) -> str:
        return f"<Config sections={self.sections()!r}>"


def loads(text: str, **options: Any) -> Config:
    """Parse INI *text* into a new :class:`Config`."""
    return Config(**options).read_string(text)


def load(*paths: str | os.PathLike[str], **options: Any) -> Config:
    """Read several files into one config; later files win."""
    config = Config(**options)
    for path in paths:
        config.read_file(path)
    return config


def merge(*configs: Config) -> Config:
    """Return a new config combining *configs*; later ones win.

    The inputs are not modified.
    """
    if not configs:
        return Config()
    first = configs[0]
    result = Config(default_section=first.default_section, list_separator=first.list_separator)
    for config in configs:
        result.update(config)
    return result
