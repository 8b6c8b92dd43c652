"""confkit: INI-style configuration files with interpolation and typed getters."""

from .config import Config, load, loads, merge
from .errors import (
    ConfigError,
    ConversionError,
    InterpolationCycleError,
    InterpolationError,
    NoOptionError,
    NoSectionError,
    ParseError,
)

__all__ = [
    "Config", "ConfigError", "ConversionError", "InterpolationCycleError",
    "InterpolationError", "NoOptionError", "NoSectionError", "ParseError",
    "load", "loads", "merge",
]

__version__ = "0.4.1"
