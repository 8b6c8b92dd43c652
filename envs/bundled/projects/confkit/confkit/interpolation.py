"""Expansion of ``${key}`` and ``${section:key}`` references.

``${key}`` is looked up in the section being read and then in the defaults
section; ``${section:key}`` reads another section.  ``$$`` stands for a
literal dollar sign.  References are expanded recursively; a reference
chain that leads back to itself raises :class:`InterpolationCycleError`.
"""

from __future__ import annotations

import re
from typing import Callable

from .errors import InterpolationCycleError, InterpolationError
from .syntax import Entry, normalize_key

#: ``lookup(section, key)`` returns the entry visible as *key* from
#: *section* (its own or a default), or ``None``.  It raises
#: :class:`~confkit.errors.NoSectionError` for an unknown section.
Lookup = Callable[[str, str], "Entry | None"]

_TOKEN = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<ref>[^{}]*)\})")


def expand(lookup: Lookup, section: str, key: str) -> str:
    """Return the fully expanded value of *key* as seen from *section*."""
    return _resolve(lookup, section, key, [])


def _resolve(lookup: Lookup, section: str, key: str, stack: list[tuple[str, str]]) -> str:
    entry = lookup(section, key)
    assert entry is not None
    stack.append((section, normalize_key(key)))
    try:
        return _substitute(lookup, section, entry, stack)
    finally:
        stack.pop()


def _substitute(lookup: Lookup, section: str, entry: Entry, stack: list[tuple[str, str]]) -> str:
    def fail(message: str) -> InterpolationError:
        return InterpolationError(
            f"[{section}] {entry.name}: {message}", lineno=entry.lineno, source=entry.source
        )

    def replace(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        ref = match.group("ref").strip()
        target_section, sep, target_key = ref.rpartition(":")
        if not sep:
            target_section = section
        target_section = target_section.strip()
        target_key = target_key.strip()
        if not target_key or (sep and not target_section):
            raise fail(f"malformed reference ${{{ref}}}")
        try:
            target = lookup(target_section, target_key)
        except KeyError:
            raise fail(f"reference ${{{ref}}} names unknown section {target_section!r}") from None
        if target is None:
            raise fail(f"reference ${{{ref}}} names unknown key {target_key!r}")
        ident = (target_section, normalize_key(target_key))
        if ident in stack:
            chain = stack[stack.index(ident) :] + [ident]
            raise InterpolationCycleError(chain, lineno=entry.lineno, source=entry.source)
        return _resolve(lookup, target_section, target_key, stack)

    return _TOKEN.sub(replace, entry.value)
