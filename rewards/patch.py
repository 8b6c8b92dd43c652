"""Unified-diff parsing and normalisation, total on any input.

`parse_patch` turns the text of a ``git diff`` (or a plain ``diff -u``) into `FilePatch`
records. It understands what ``git diff`` and the published SWE-bench datasets contain: new,
deleted and renamed files, mode changes, binary markers and ``GIT binary patch`` blocks,
``\\ No newline at end of file``, quoted paths and CRLF line endings. It never raises: text
that holds no recognisable file header parses to ``[]``, and a hunk cut short keeps the lines
that were there.

`normalize_file` renders one file's change for comparison: no ``index`` lines, no hunk-header
line numbers, whitespace runs collapsed, optionally comments stripped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FilePatch", "Hunk", "is_test_path", "normalize_file", "parse_patch", "split_files"]


@dataclass(frozen=True)
class Hunk:
    """One ``@@`` hunk. `lines` keep their first character (`' '`, `'+'`, `'-'`, `'\\\\'`)."""

    old_start: int
    new_start: int
    section: str
    lines: tuple[str, ...]

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(line[1:] for line in self.lines if line.startswith("+"))

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(line[1:] for line in self.lines if line.startswith("-"))


@dataclass(frozen=True)
class FilePatch:
    """The change to one file.

    Attributes:
        old_path: path before the change (``None`` for a new file).
        new_path: path after the change (``None`` for a deleted file).
        hunks: the text hunks (empty for pure renames, mode changes and binary files).
        binary: the diff marks the file as binary.
        old_mode / new_mode: file modes when the diff states them.
    """

    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...] = ()
    binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None

    @property
    def path(self) -> str:
        """The file's name for comparisons: the new path, or the old one if it was deleted."""
        return self.new_path or self.old_path or ""

    @property
    def status(self) -> str:
        """``added``, ``deleted``, ``renamed`` or ``modified``."""
        if self.old_path is None:
            return "added"
        if self.new_path is None:
            return "deleted"
        if self.old_path != self.new_path:
            return "renamed"
        return "modified"


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "r": "\r"}


def _unquote(path: str) -> str:
    """Undo git's C-style quoting of unusual paths (``"a/caf\\303\\251.py"``)."""
    path = path.strip()
    if not (len(path) >= 2 and path[0] == '"' and path[-1] == '"'):
        return path
    body = path[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if re.fullmatch(r"[0-3][0-7]{2}", body[i + 1 : i + 4]):  # one byte, \000-\377
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out += _ESCAPES.get(nxt, nxt).encode()
            i += 2
            continue
        out += ch.encode("utf-8", errors="replace")
        i += 1
    return out.decode("utf-8", errors="replace")


def _strip_prefix(path: str) -> str | None:
    path = _unquote(path.split("\t")[0])
    if path == "/dev/null":
        return None
    if path.startswith(("a/", "b/")):
        return path[2:]
    return path


def _git_header_paths(line: str) -> tuple[str | None, str | None]:
    rest = line[len("diff --git ") :].strip()
    if rest.startswith('"'):
        m = re.match(r'("(?:[^"\\]|\\.)*")\s+(.*)$', rest)
        if m:
            return _strip_prefix(m.group(1)), _strip_prefix(m.group(2))
    # Unquoted: "a/x b/x". Split where the second half starts with "b/" and, if possible,
    # the two halves name the same file.
    candidates = [m.start() for m in re.finditer(r" b/", rest)]
    for pos in candidates:
        old, new = rest[:pos], rest[pos + 1 :]
        if old[2:] == new[2:]:
            return _strip_prefix(old), _strip_prefix(new)
    if candidates:
        pos = candidates[0]
        return _strip_prefix(rest[:pos]), _strip_prefix(rest[pos + 1 :])
    parts = rest.split(" ", 1)
    return (_strip_prefix(parts[0]), _strip_prefix(parts[1])) if len(parts) == 2 else (None, None)


_BINARY = re.compile(r"^Binary files (.*?) and (.*) differ$")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")


@dataclass
class _Builder:
    old_path: str | None
    new_path: str | None
    hunks: list[Hunk]
    binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    new_file: bool = False
    deleted: bool = False

    def build(self) -> FilePatch:
        old, new = self.old_path, self.new_path
        if self.new_file:
            old = None
        if self.deleted:
            new = None
        return FilePatch(old, new, tuple(self.hunks), self.binary, self.old_mode, self.new_mode)


def _parse_hunk(lines: list[str], i: int, header: re.Match[str]) -> tuple[Hunk, int]:
    old_left = int(header.group(2)) if header.group(2) is not None else 1
    new_left = int(header.group(4)) if header.group(4) is not None else 1
    body: list[str] = []
    while i < len(lines) and (old_left > 0 or new_left > 0):
        line = lines[i]
        tag = line[:1]
        if tag == "+":
            new_left -= 1
        elif tag == "-":
            if (
                line.startswith("--- ")
                and i + 2 < len(lines)
                and lines[i + 1].startswith("+++ ")
                and lines[i + 2].startswith("@@ ")
            ):
                break  # the counts were wrong: this is the next file's header
            old_left -= 1
        elif tag == " " or line == "":
            # Some tools strip the single space of an empty context line.
            line = line or " "
            old_left -= 1
            new_left -= 1
        elif tag == "\\":
            pass
        else:
            break
        body.append(line)
        i += 1
    if i < len(lines) and lines[i].startswith("\\"):
        body.append(lines[i])
        i += 1
    return Hunk(int(header.group(1)), int(header.group(3)), header.group(5).strip(), tuple(body)), i


def parse_patch(text: str) -> list[FilePatch]:
    """Parse a unified diff into per-file changes; never raises.

    Files are the sections `split_files` cuts (one definition of where a file starts), each
    parsed on its own.

    >>> [(f.path, f.status, len(f.hunks)) for f in parse_patch(
    ...     "diff --git a/x.py b/x.py\\n--- a/x.py\\n+++ b/x.py\\n@@ -1 +1 @@\\n-a\\n+b\\n")]
    [('x.py', 'modified', 1)]
    """
    if not isinstance(text, str) or not text:
        return []
    _, sections = split_files(text)
    files = [_parse_file(section) for section in sections]
    return [f for f in files if f.path]


def _parse_file(section: str) -> FilePatch:
    """One file's section of a diff, as `split_files` cuts it, as a `FilePatch`."""
    lines = section.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the final newline ends the last line; it starts no new one
        lines.pop()
    cur = _Builder(None, None, [])
    i = 0
    if lines and lines[0].startswith("diff --git "):
        cur.old_path, cur.new_path = _git_header_paths(lines[0])
        i = 1
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            # the file's ---/+++ header (any other pair outside a hunk starts the next section)
            old, new = _strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])
            if i == 0:  # the section starts with it: it names the file
                cur.old_path, cur.new_path = old, new
            else:  # after a ``diff --git`` line or a first pair: it completes the header
                cur.old_path = old if old is not None else cur.old_path
                cur.new_path = new if new is not None else cur.new_path
                cur.new_file = cur.new_file or old is None
                cur.deleted = cur.deleted or new is None
            i += 2
            continue
        m = _HUNK.match(line)
        if m:
            hunk, i = _parse_hunk(lines, i + 1, m)
            cur.hunks.append(hunk)
            continue
        if line.startswith("new file mode "):
            cur.new_file, cur.new_mode = True, line.split()[-1]
        elif line.startswith("deleted file mode "):
            cur.deleted, cur.old_mode = True, line.split()[-1]
        elif line.startswith("old mode "):
            cur.old_mode = line.split()[-1]
        elif line.startswith("new mode "):
            cur.new_mode = line.split()[-1]
        elif line.startswith("rename from ") or line.startswith("copy from "):
            cur.old_path = _unquote(line.split(" from ", 1)[1])
        elif line.startswith("rename to ") or line.startswith("copy to "):
            cur.new_path = _unquote(line.split(" to ", 1)[1])
        elif line.startswith("Binary files ") or line.startswith("GIT binary patch"):
            cur.binary = True
            m = _BINARY.match(line)
            if m:
                cur.new_file = cur.new_file or m.group(1) == "/dev/null"
                cur.deleted = cur.deleted or m.group(2) == "/dev/null"
        i += 1
    return cur.build()


_TEST_PATH = re.compile(r"(^|/)(tests?|testing)/|(^|/)test_[^/]*$|_tests?\.py$|(^|/)conftest\.py$")


def is_test_path(path: str) -> bool:
    """True for files that belong to a test suite (``tests/``, ``test_*.py``, ``*_test.py``, ...).

    >>> is_test_path("tests/test_core.py"), is_test_path("pkg/core.py")
    (True, False)
    """
    return bool(_TEST_PATH.search(path))


_COMMENT = re.compile(r"(^|\s)#.*$")


def normalize_file(fp: FilePatch, *, strip_comments: bool = False) -> str:
    """The comparable text of one file's change.

    Hunk headers become ``@@`` (line numbers dropped, so a fix found at another offset still
    matches), every line's whitespace runs collapse to one space, blank lines and
    ``\\ No newline`` markers are dropped. A binary change or a pure rename/mode change
    becomes a one-line description so that it still counts as a change.
    """
    out: list[str] = []
    if fp.status != "modified":  # renaming the wrong file must not look like the right rename
        out.append(f"{fp.status} {fp.old_path} -> {fp.new_path}")
    for hunk in fp.hunks:
        out.append("@@")
        for line in hunk.lines:
            tag, body = line[:1], line[1:]
            if tag == "\\":
                continue
            if strip_comments:
                body = _COMMENT.sub("", body)
            words = body.split()  # collapses whitespace runs and strips, without a regex
            if words:
                out.append(tag + " ".join(words))
    if not fp.hunks:
        out.append(f"binary={fp.binary} mode={fp.old_mode}->{fp.new_mode}")
    return "\n".join(out)


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_files(text: str) -> tuple[str, list[str]]:
    """``(preamble, file sections)`` of a diff, cut exactly where `parse_patch` starts a new
    file, so that each section parses to the one file `parse_patch` reads there.

    Lines end where `parse_patch` ends them (``\\n``, ``\\r\\n``, ``\\r``) and keep their
    endings, so ``preamble + "".join(sections) == text``.

    >>> split_files("note\\n--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n--- a\\n+++ b\\n--- a/y\\n+++ b/y\\n")
    ('note\\n', ['--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n--- a\\n+++ b\\n', '--- a/y\\n+++ b/y\\n'])
    """
    lines = _LINE.findall(text)
    bare = [line.rstrip("\r\n") for line in lines]
    preamble: list[str] = []
    sections: list[list[str]] = []
    cur: list[str] | None = None
    has_body = False  # the current file has a hunk or a binary marker
    i = 0
    while i < len(bare):
        line = bare[i]
        pair = line.startswith("--- ") and i + 1 < len(bare) and bare[i + 1].startswith("+++ ")
        if line.startswith("diff --git ") or (pair and (cur is None or has_body)):
            cur, has_body = [], False
            sections.append(cur)
        elif cur is not None and (header := _HUNK.match(line)):
            # the hunk's body is whatever parse_patch reads as its body, "--- "/"+++ " lines included
            _, end = _parse_hunk(bare, i + 1, header)
            cur.extend(lines[i:end])
            has_body, i = True, end
            continue
        elif cur is not None and line.startswith(("Binary files ", "GIT binary patch")):
            has_body = True
        if pair and cur is not None and not cur:  # a file header is two lines
            cur.extend(lines[i : i + 2])
            i += 2
            continue
        (preamble if cur is None else cur).append(lines[i])
        i += 1
    return "".join(preamble), ["".join(s) for s in sections]
