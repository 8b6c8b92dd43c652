"""Reading and writing the INI text format.

The grammar understood here is:

* ``[name]`` starts a section; section names are case-sensitive.
* ``key = value`` or ``key: value`` adds a key; keys are case-insensitive
  but their original spelling is kept for output.
* Lines whose first non-blank character is ``#`` or ``;`` are comments.
  The same characters start an inline comment when they follow whitespace
  (or open the value), unless they are inside a quoted value.
* A line that is indented and follows a key continues that key's value;
  the pieces are joined with newlines.  A blank line ends the value.
* ``"double quoted"`` values keep surrounding whitespace and comment
  characters and understand the escapes ``\\\\ \\" \\n \\t \\r``.
  ``'single quoted'`` values are taken literally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ParseError

COMMENT_CHARS = "#;"

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_SECTION_RE = re.compile(r"\[(?P<name>[^\]]*)\]\s*(?:[#;].*)?$")


@dataclass(frozen=True)
class Entry:
    """One key of a section: its spelling, raw value and origin."""

    name: str
    value: str
    lineno: int | None = None
    source: str | None = None


@dataclass
class Document:
    """The result of parsing one text: sections in file order."""

    sections: dict[str, dict[str, Entry]] = field(default_factory=dict)


def normalize_key(key: str) -> str:
    """Return the lookup form of *key* (keys are case-insensitive)."""
    return key.strip().lower()


def strip_inline_comment(text: str) -> str:
    """Remove a trailing ``# ...`` or ``; ...`` comment from a value.

    A comment character only counts when it opens the text or follows
    whitespace, so ``http://host/#anchor`` is left alone.  When the text
    opens with a quote, nothing up to the matching closing quote can start
    a comment.
    """
    start = 0
    if text[:1] == '"':
        i = 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                break
            i += 1
        start = i + 1
    elif text[:1] == "'":
        end = text.find("'", 1)
        start = len(text) if end < 0 else end + 1

    for i in range(start, len(text)):
        if text[i] in COMMENT_CHARS and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text


def unquote(text: str, lineno: int | None = None, source: str | None = None) -> tuple[str, bool]:
    """Decode a quoted value; return ``(value, was_quoted)``.

    Unquoted text is returned as is.
    """
    if not text or text[0] not in "\"'":
        return text, False
    quote = text[0]
    chars: list[str] = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            if text[i + 1 :].strip():
                raise ParseError(
                    f"unexpected text after closing quote: {text[i + 1:].strip()!r}",
                    lineno=lineno,
                    source=source,
                )
            return "".join(chars), True
        if ch == "\\" and quote == '"':
            nxt = text[i + 1 : i + 2]
            if nxt not in _ESCAPES:
                raise ParseError(
                    f"invalid escape sequence '\\{nxt}'", lineno=lineno, source=source
                )
            chars.append(_ESCAPES[nxt])
            i += 2
            continue
        chars.append(ch)
        i += 1
    raise ParseError("unterminated quoted string", lineno=lineno, source=source)


def escape(value: str) -> str:
    """Escape *value* so that it can be written between double quotes."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
    )


def _is_plain(line: str) -> bool:
    """Whether *line* reads back unchanged when written without quotes."""
    if line != line.strip() or line[:1] in "\"'" or line.splitlines() != [line]:
        return False
    return strip_inline_comment(line) == line


def format_value(value: str) -> str:
    """Render a raw value for the right-hand side of ``key = ...``."""
    if value == "":
        return ""
    lines = value.split("\n")
    if all(line and _is_plain(line) for line in lines):
        return "\n    ".join(lines)
    return '"' + escape(value) + '"'


class _Pending:
    """A key whose value may still be continued on the next lines."""

    def __init__(self, name: str, first: str, quoted: bool, lineno: int) -> None:
        self.name = name
        self.lines = [first] if first or quoted else []
        self.quoted = quoted
        self.lineno = lineno


def parse(text: str, *, source: str | None = None) -> Document:
    """Parse INI *text* into a :class:`Document`.

    Raises :class:`ParseError` (with the offending line number) on
    malformed input, including a key defined twice in the same section.
    """
    doc = Document()
    section: dict[str, Entry] | None = None
    section_name = ""
    pending: _Pending | None = None

    def flush() -> None:
        nonlocal pending
        if pending is None or section is None:
            return
        key = normalize_key(pending.name)
        if key in section:
            first = section[key]
            raise ParseError(
                f"duplicate key {pending.name!r} in section [{section_name}] "
                f"(first defined on line {first.lineno})",
                lineno=pending.lineno,
                source=source,
            )
        section[key] = Entry(pending.name, "\n".join(pending.lines), pending.lineno, source)
        pending = None

    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        if stripped[0] in COMMENT_CHARS:
            continue
        if pending is not None and line[0].isspace():
            if pending.quoted:
                raise ParseError("a quoted value cannot be continued", lineno=lineno, source=source)
            piece = strip_inline_comment(stripped)
            if piece:
                pending.lines.append(piece)
            continue

        flush()
        if stripped.startswith("["):
            match = _SECTION_RE.match(stripped)
            if match is None:
                raise ParseError(f"malformed section header: {stripped!r}", lineno=lineno, source=source)
            section_name = match.group("name").strip()
            if not section_name:
                raise ParseError("empty section name", lineno=lineno, source=source)
            section = doc.sections.setdefault(section_name, {})
            continue

        seps = [i for i in (stripped.find("="), stripped.find(":")) if i >= 0]
        if not seps:
            raise ParseError(f"expected 'key = value', got {stripped!r}", lineno=lineno, source=source)
        pos = min(seps)
        name = stripped[:pos].strip()
        if not name:
            raise ParseError("missing key before separator", lineno=lineno, source=source)
        if section is None:
            raise ParseError(f"key {name!r} outside of any section", lineno=lineno, source=source)
        raw = strip_inline_comment(stripped[pos + 1 :].strip())
        value, quoted = unquote(raw, lineno, source)
        pending = _Pending(name, value, quoted, lineno)

    flush()
    return doc
