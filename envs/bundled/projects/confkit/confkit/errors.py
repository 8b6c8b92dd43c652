"""Exception hierarchy used by confkit.

Every error raised while reading or querying a configuration derives from
:class:`ConfigError`.  When the problem can be tied to a place in the
source text, the error carries the ``lineno`` (1-based) and, if known, the
``source`` name (usually a file name), and both appear in the message.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Base class for all confkit errors."""

    def __init__(
        self,
        message: str,
        *,
        lineno: int | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.lineno = lineno
        self.source = source
        super().__init__(message)

    def __str__(self) -> str:
        if self.lineno is None:
            return self.message
        if self.source:
            return f"{self.source}, line {self.lineno}: {self.message}"
        return f"line {self.lineno}: {self.message}"


class ParseError(ConfigError):
    """The configuration text is malformed."""


class NoSectionError(ConfigError, KeyError):
    """A section that was asked for does not exist."""

    def __init__(self, section: str) -> None:
        self.section = section
        super().__init__(f"no section {section!r}")


class NoOptionError(ConfigError, KeyError):
    """A key that was asked for does not exist in its section."""

    def __init__(self, section: str, key: str) -> None:
        self.section = section
        self.key = key
        super().__init__(f"no option {key!r} in section {section!r}")


class InterpolationError(ConfigError):
    """A ``${...}`` reference could not be expanded."""


class InterpolationCycleError(InterpolationError):
    """A chain of ``${...}`` references refers back to itself.

    ``chain`` holds the ``(section, key)`` pairs that form the cycle, the
    first pair repeated at the end.
    """

    def __init__(
        self,
        chain: list[tuple[str, str]],
        *,
        lineno: int | None = None,
        source: str | None = None,
    ) -> None:
        self.chain = chain
        path = " -> ".join(f"[{section}] {key}" for section, key in chain)
        super().__init__(f"interpolation cycle: {path}", lineno=lineno, source=source)


class ConversionError(ConfigError, ValueError):
    """A value could not be converted to the requested type."""
