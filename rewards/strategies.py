"""Hypothesis strategies for property-testing rewards: realistic diffs, related pairs, garbage.

Needs hypothesis, an optional dependency: ``pip install hypothesis`` (or ``swerepair[dev]``).

- `file_paths`, `file_sets`: repository-relative paths, test or non-test exactly as
  `is_test_path` decides.
- `hunks`, `file_patches`, `unified_diffs`: valid unified diffs as ``git diff`` writes them,
  which `parse_patch` reads back into exactly the files and hunks drawn. `diff_specs` draws
  the same diffs as `DiffSpec` records that know their files and hunks (``spec.text`` is the
  diff, ``spec.expected()`` what `parse_patch` must return for it).
- `patch_pairs`, `related_pairs`: ``(patch, gold)`` pairs in a known relation (`RELATIONS`):
  identical, disjoint, a subset of the gold's hunks, the gold's files in another order.
- `arbitrary_text`: anything, including undecodable bytes and text that only looks like a diff.

Two plain functions make tasks: `as_task` (an object with ``.patch`` and ``.test_patch``) and
`split_gold`, which splits a patch into its non-test and test files, so that
``as_task(*split_gold(p))`` is the natural task whose gold is `p`.

Property-testing your own reward ``my_reward(patch, task) -> float``::

    from hypothesis import given
    from swerepair.rewards.strategies import arbitrary_text, as_task, patch_pairs, split_gold, unified_diffs

    @given(unified_diffs(tests=False))  # unified_diffs() also draws test files, which land in test_patch
    def test_the_gold_patch_scores_one(patch):
        assert my_reward(patch, as_task(*split_gold(patch))) == 1.0

    @given(arbitrary_text(), arbitrary_text(), arbitrary_text())
    def test_total_and_bounded(patch, gold, gold_tests):
        assert 0.0 <= my_reward(patch, as_task(gold, gold_tests)) <= 1.0

    @given(patch_pairs("disjoint", tests=False))
    def test_the_wrong_files_score_zero(pair):
        patch, gold = pair
        assert my_reward(patch, as_task(gold)) == 0.0
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

from swerepair.rewards.patch import FilePatch, Hunk, is_test_path, parse_patch, split_files

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("swerepair.rewards.strategies needs hypothesis: pip install hypothesis") from exc

__all__ = [
    "RELATIONS",
    "DiffSpec",
    "FileSpec",
    "GoldTask",
    "HunkSpec",
    "arbitrary_text",
    "as_task",
    "diff_specs",
    "file_patches",
    "file_paths",
    "file_sets",
    "file_specs",
    "hunk_specs",
    "hunks",
    "line_texts",
    "patch_pairs",
    "related_pairs",
    "split_gold",
    "unified_diffs",
]

#: The relations `patch_pairs` can draw, in the order `related_pairs` samples them.
RELATIONS = ("identical", "disjoint", "subset_of_hunks", "files_reordered")

NO_NEWLINE = "\\ No newline at end of file"


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class GoldTask:
    """The two SWE-bench fields that the similarity rewards compare against."""

    patch: str = ""
    test_patch: str = ""


def as_task(patch_text: str, test_patch_text: str = "") -> GoldTask:
    """A task whose gold fix is `patch_text` and whose gold test patch is `test_patch_text`.

    >>> as_task("--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-a\\n+b\\n").test_patch
    ''
    """
    return GoldTask(patch_text, test_patch_text)


def split_gold(text: str) -> tuple[str, str]:
    """``(non-test part, test part)`` of a patch, split by file with `is_test_path`.

    Each part is the patch's own text for those files, in their order (anything before the
    first file header stays with the non-test part), so ``as_task(*split_gold(p))`` is the
    task whose gold fix and gold test patch together are `p`, and `parse_patch` reads the two
    parts as exactly the non-test and the test files of `p`.

    >>> fix = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-a\\n+b\\n"
    >>> test = "--- a/tests/test_m.py\\n+++ b/tests/test_m.py\\n@@ -0,0 +1 @@\\n+x\\n"
    >>> split_gold(test + fix) == (fix, test)
    True
    """
    preamble, sections = split_files(text if isinstance(text, str) else "")
    code, tests = [preamble], []
    for section in sections:
        files = parse_patch(section)
        (tests if files and all(is_test_path(f.path) for f in files) else code).append(section)
    return "".join(code), "".join(tests)


# --------------------------------------------------------------------------- paths

_ALNUM = string.ascii_lowercase + string.digits + "_"
_DIRS = ("src", "pkg", "lib", "core", "utils", "api", "io", "a", "b", "models", "internal", "docs", "ext", "contrib")
_STEMS = ("core", "utils", "models", "views", "parser", "__init__", "config", "main", "helpers", "base", "io")
_EXTS = (".py", ".py", ".py", ".py", ".pyi", ".txt", ".md", ".rst", ".cfg", ".toml", ".json", ".js", ".c", "")


_IDENTIFIERS = st.one_of(
    st.sampled_from(_STEMS),
    st.sampled_from(_STEMS),
    st.builds(str.__add__, st.sampled_from(string.ascii_lowercase), st.text(_ALNUM, max_size=7)),
)
_DIR_NAMES = st.one_of(st.sampled_from(_DIRS), _IDENTIFIERS)


def _dirs(draw: st.DrawFn, max_size: int) -> str:
    """``""`` or a directory prefix ending in ``/``."""
    return "".join(part + "/" for part in draw(st.lists(_DIR_NAMES, max_size=max_size)))


@st.composite
def _test_path(draw: st.DrawFn) -> str:
    stem, where = draw(_IDENTIFIERS), _dirs(draw, 2)
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return f"tests/{where}test_{stem}.py"
    if kind == 1:
        return f"{where}tests/test_{stem}.py"
    if kind == 2:
        return f"{where}tests/{stem}{draw(st.sampled_from(_EXTS))}"
    if kind == 3:
        return f"{where}test/{stem}.py"
    if kind == 4:
        return f"{where}testing/{stem}.py"
    if kind == 5:
        return f"{where}{stem}_test.py"
    if kind == 6:
        return f"{where}conftest.py"
    return f"{where}test_{stem}.py"


@st.composite
def _code_path(draw: st.DrawFn) -> str:
    return f"{_dirs(draw, 3)}{draw(_IDENTIFIERS)}{draw(st.sampled_from(_EXTS))}"


_TEST_PATHS = _test_path().filter(is_test_path)
_CODE_PATHS = _code_path().filter(lambda p: not is_test_path(p))
_ANY_PATHS = st.one_of(_CODE_PATHS, _TEST_PATHS)


def file_paths(tests: bool | None = None) -> st.SearchStrategy[str]:
    """Repository-relative paths such as ``pkg/sub/mod.py``, ``tests/test_x.py``, ``src/main``.

    Guarantees: ASCII letters, digits, ``_``, ``.`` and ``/`` only (no quoting needed, no
    leading ``/``, no empty component); ``is_test_path(path) == tests`` when `tests` is given;
    when it is None, either kind.
    """
    return _ANY_PATHS if tests is None else _TEST_PATHS if tests else _CODE_PATHS


@cache
def file_sets(min_size: int = 1, max_size: int = 4, tests: bool | None = None) -> st.SearchStrategy[list[str]]:
    """Between `min_size` and `max_size` distinct `file_paths` (a set, as a list in draw order)."""
    return st.lists(file_paths(tests), min_size=min_size, max_size=max_size, unique=True)


# --------------------------------------------------------------------------- lines and hunks

_CODE = (
    "",
    "    return a + b",
    "    return a - b",
    "def f(x):",
    "class Parser(Base):",
    "import os",
    "    pass",
    "x = 1",
    "    if x is None:",
    "        raise ValueError(f'bad {x!r}')",
    "# comment",
    "    x = y  # trailing comment",
    "}",
    '    """Docstring."""',
    "\tindented_with_tab = True",
    "print('héllo wörld ✓ 日本語')",
    "    return self._cache[key]   ",
    "-- not a header",
    "+++ also not a header",
    "@@ not a hunk @@",
    "diff --git a/x b/x",
    "\\ backslash first",
)
_SPACES = " \t\x0b\x0c\u00a0\u2003\u3000\u2028"
_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Co"), exclude_characters="\r\n", include_characters=_SPACES
)


@cache
def line_texts() -> st.SearchStrategy[str]:
    """The content of one line of a file: printable text without ``\\r`` or ``\\n``.

    Code-like lines (shared between draws, so that patches overlap), unicode, tabs and other
    whitespace (``\\x0b``, no-break and ideographic spaces, U+2028), lines that look like diff
    headers. Guarantees: no line ending `parse_patch` splits on, and no line starts with
    ``++ `` (a removed ``-- x`` followed by an added ``++ y`` reads as the file header
    ``--- x`` / ``+++ y``: `parse_patch` takes that pair for a new file even inside a hunk).
    """
    code = st.sampled_from(_CODE)
    free = st.text(_CHARS, max_size=16)
    return st.one_of(code, code, free).filter(lambda s: not s.startswith("++ "))


@dataclass(frozen=True)
class HunkSpec:
    """One hunk: its tagged lines (``' '`` context, ``'-'`` removed, ``'+'`` added) and where it
    starts in the old file; the header's counts and the new file's line number follow from them.

    Attributes:
        old_pos: 1-based number of the first old-file line the hunk covers (for a hunk with no
            old lines, the line it inserts before).
        lines: tagged lines, at least one of them a change.
        section: the text after the second ``@@`` (a function name), may be empty.
        no_newline: the hunk ends with ``\\ No newline at end of file``.
        short_counts: write a count of 1 as git does (``-5`` for ``-5,1``).
    """

    old_pos: int
    lines: tuple[str, ...]
    section: str = ""
    no_newline: bool = False
    short_counts: bool = False

    @property
    def old_len(self) -> int:
        return sum(1 for line in self.lines if line[:1] in " -")

    @property
    def new_len(self) -> int:
        return sum(1 for line in self.lines if line[:1] in " +")

    @property
    def added(self) -> tuple[str, ...]:
        """The added lines' text (as `Hunk.added` reads them)."""
        return self.expected().added

    @property
    def removed(self) -> tuple[str, ...]:
        """The removed lines' text (as `Hunk.removed` reads them)."""
        return self.expected().removed

    @property
    def old_start(self) -> int:
        """The old line number in the header (one less than `old_pos` when no old lines)."""
        return self.old_pos if self.old_len else self.old_pos - 1

    def new_start(self, delta: int = 0) -> int:
        """The new line number in the header, `delta` being the lines earlier hunks added."""
        return self.old_pos + delta if self.new_len else self.old_pos + delta - 1

    def header(self, delta: int = 0) -> str:
        def rng(start: int, count: int) -> str:
            return str(start) if self.short_counts and count == 1 else f"{start},{count}"

        head = f"@@ -{rng(self.old_start, self.old_len)} +{rng(self.new_start(delta), self.new_len)} @@"
        return f"{head} {self.section}" if self.section else head

    def render(self, delta: int = 0) -> str:
        """The hunk's text, every line ending in ``\\n``."""
        body = [self.header(delta), *self.lines, *([NO_NEWLINE] if self.no_newline else [])]
        return "".join(line + "\n" for line in body)

    def expected(self, delta: int = 0) -> Hunk:
        """The `Hunk` that `parse_patch` must read from `render(delta)`."""
        lines = (*self.lines, *([NO_NEWLINE] if self.no_newline else []))
        return Hunk(self.old_start, self.new_start(delta), self.section.strip(), lines)


_TAGGED = st.tuples(st.sampled_from(" -+"), line_texts())
_SECTIONS = st.one_of(st.just(""), st.sampled_from(("def f(x):", "class Parser(Base):", "fn() ✓")))


def _draw_hunk(draw: st.DrawFn, old_pos: int, max_lines: int = 6) -> HunkSpec:
    tagged = draw(st.lists(_TAGGED, min_size=1, max_size=max_lines))
    if all(tag == " " for tag, _ in tagged):
        i = draw(st.integers(0, len(tagged) - 1))
        tagged[i] = (draw(st.sampled_from("-+")), tagged[i][1])
    lines = tuple(tag + text for tag, text in tagged)
    return HunkSpec(old_pos, lines, draw(_SECTIONS), short_counts=draw(st.booleans()))


@st.composite
def hunk_specs(draw: st.DrawFn, old_pos: int | None = None, max_lines: int = 6) -> HunkSpec:
    """A `HunkSpec` of 1 to `max_lines` lines of `line_texts`, at least one of them a change
    (removed or added), starting at old line `old_pos` (drawn when None)."""
    return _draw_hunk(draw, draw(st.integers(1, 500)) if old_pos is None else old_pos, max_lines)


def hunks(old_pos: int | None = None) -> st.SearchStrategy[str]:
    """The text of one valid hunk: an ``@@ -a,b +c,d @@`` header whose counts match its lines,
    then context (``' '``), removed (``'-'``) and added (``'+'``) lines, at least one a change."""
    return hunk_specs(old_pos).map(lambda h: h.render())


# --------------------------------------------------------------------------- files and diffs


@dataclass(frozen=True)
class FileSpec:
    """One file's section of a ``git diff``.

    Attributes:
        path: the file (the same before and after: no renames).
        hunks: in increasing, non-overlapping old-line order.
        status: ``modified``, ``added`` (``new file mode``, ``--- /dev/null``, one ``@@ -0,0``
            hunk) or ``deleted`` (``deleted file mode``, ``+++ /dev/null``, one ``+0,0`` hunk).
        index: the two abbreviated blob ids of the ``index`` line, or None for no such line.
        mode: the file mode (``index`` line of a modified file, ``new/deleted file mode``).
    """

    path: str
    hunks: tuple[HunkSpec, ...]
    status: str = "modified"
    index: tuple[str, str] | None = None
    mode: str = "100644"

    @property
    def text(self) -> str:
        p, out = self.path, [f"diff --git a/{self.path} b/{self.path}"]
        if self.status == "added":
            out.append(f"new file mode {self.mode}")
        elif self.status == "deleted":
            out.append(f"deleted file mode {self.mode}")
        if self.index is not None:
            old, new = self.index
            if self.status == "modified":
                out.append(f"index {old}..{new} {self.mode}")
            elif self.status == "added":
                out.append(f"index 0000000..{new}")
            else:
                out.append(f"index {old}..0000000")
        out.append("--- /dev/null" if self.status == "added" else f"--- a/{p}")
        out.append("+++ /dev/null" if self.status == "deleted" else f"+++ b/{p}")
        text = "".join(line + "\n" for line in out)
        for hunk, delta in zip(self.hunks, self._deltas(), strict=True):
            text += hunk.render(delta)
        return text

    def _deltas(self) -> list[int]:
        deltas, delta = [], 0
        for hunk in self.hunks:
            deltas.append(delta)
            delta += hunk.new_len - hunk.old_len
        return deltas

    def expected(self) -> FilePatch:
        """The `FilePatch` that `parse_patch` must read from `text`."""
        hunks = tuple(h.expected(d) for h, d in zip(self.hunks, self._deltas(), strict=True))
        if self.status == "added":
            return FilePatch(None, self.path, hunks, new_mode=self.mode)
        if self.status == "deleted":
            return FilePatch(self.path, None, hunks, old_mode=self.mode)
        return FilePatch(self.path, self.path, hunks)


@dataclass(frozen=True)
class DiffSpec:
    """A whole ``git diff``: file sections over distinct paths."""

    files: tuple[FileSpec, ...]

    @property
    def text(self) -> str:
        return "".join(f.text for f in self.files)

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def hunk_ids(self) -> list[tuple[int, int]]:
        """``(file index, hunk index)`` of every hunk, in order."""
        return [(i, j) for i, f in enumerate(self.files) for j in range(len(f.hunks))]

    def expected(self) -> list[FilePatch]:
        """What `parse_patch` must return for `text`."""
        return [f.expected() for f in self.files]

    def keep_hunks(self, keep: set[tuple[int, int]]) -> DiffSpec:
        """The diff with only the hunks in `keep` (see `hunk_ids`); a file left without hunks
        is left out, and the new-file line numbers of later hunks shift as they must."""
        files = []
        for i, f in enumerate(self.files):
            kept = tuple(h for j, h in enumerate(f.hunks) if (i, j) in keep)
            if kept:
                files.append(replace(f, hunks=kept))
        return DiffSpec(tuple(files))

    def reordered(self, order: Sequence[int]) -> DiffSpec:
        """The same file sections in the order `order` (a permutation of their indices)."""
        return DiffSpec(tuple(self.files[i] for i in order))


_BLOB = st.integers(1, 16**7 - 1).map("{:07x}".format)
_INDEX = st.one_of(st.none(), st.tuples(_BLOB, _BLOB))
_STATUS = st.sampled_from(("modified",) * 6 + ("added", "deleted"))
_MODES = st.sampled_from(("100644", "100644", "100755"))


def _draw_file(draw: st.DrawFn, path: str, status: str | None, max_hunks: int = 3) -> FileSpec:
    if status is None:
        status = draw(_STATUS)
    if status == "modified":
        hunk_list, pos = [], 1 + draw(st.integers(0, 40))
        for _ in range(draw(st.integers(1, max_hunks))):
            hunk = _draw_hunk(draw, pos)
            hunk_list.append(hunk)
            pos += hunk.old_len + draw(st.integers(1, 40))
    else:
        tag = "+" if status == "added" else "-"
        body = draw(st.lists(line_texts(), min_size=1, max_size=6))
        hunk_list = [HunkSpec(1, tuple(tag + line for line in body), short_counts=draw(st.booleans()))]
    if draw(st.integers(0, 3)) == 0:
        hunk_list[-1] = replace(hunk_list[-1], no_newline=True)
    return FileSpec(path, tuple(hunk_list), status, draw(_INDEX), draw(_MODES))


@st.composite
def file_specs(draw: st.DrawFn, path: str, status: str | None = None, max_hunks: int = 3) -> FileSpec:
    """A `FileSpec` for `path`: `status` (drawn when None, mostly ``modified``); a modified file
    has 1 to `max_hunks` hunks in increasing, non-overlapping line order; an added or deleted
    file one hunk of only added or only removed lines. The last hunk may end in
    ``\\ No newline at end of file``."""
    return _draw_file(draw, path, status, max_hunks)


def file_patches(path: str, status: str | None = None) -> st.SearchStrategy[str]:
    """The text of one file's ``git diff`` section for `path` (see `file_specs`)."""
    return file_specs(path, status).map(lambda f: f.text)


@st.composite
def diff_specs(
    draw: st.DrawFn,
    min_files: int = 1,
    max_files: int = 4,
    tests: bool | None = None,
    *,
    paths: Sequence[str] | None = None,
    new_files: bool = True,
) -> DiffSpec:
    """A `DiffSpec` over `min_files` to `max_files` distinct `file_paths(tests)` (or exactly
    `paths`); with `new_files`, now and then a file is added or deleted."""
    return _draw_diff(draw, min_files, max_files, tests, paths, new_files)


def _draw_diff(
    draw: st.DrawFn,
    min_files: int = 1,
    max_files: int = 4,
    tests: bool | None = None,
    paths: Sequence[str] | None = None,
    new_files: bool = True,
) -> DiffSpec:
    if paths is None:
        paths = draw(file_sets(min_files, max_files, tests))
    status = None if new_files else "modified"
    return DiffSpec(tuple(_draw_file(draw, p, status) for p in paths))


@cache
def unified_diffs(min_files: int = 1, max_files: int = 4, tests: bool | None = None) -> st.SearchStrategy[str]:
    """The text of a complete ``git diff`` over `min_files` to `max_files` distinct files, test
    files only (`tests=True`), none (False) or either (None).

    Guarantees: ``parse_patch`` reads it back as exactly the files drawn, in order, each with
    exactly its hunks and lines (``diff_specs(...).map(lambda s: (s.text, s.expected()))``
    gives both, for a test of that).
    """
    return diff_specs(min_files, max_files, tests).map(lambda s: s.text)


# --------------------------------------------------------------------------- related pairs


@st.composite
def _spec_pairs(draw: st.DrawFn, relation: str, tests: bool | None, max_files: int) -> tuple[DiffSpec, DiffSpec]:
    if relation == "identical":
        gold = _draw_diff(draw, 1, max_files, tests)
        return gold, gold
    if relation == "disjoint":
        paths = draw(file_sets(2, 2 * max_files, tests))
        k = draw(st.integers(1, len(paths) - 1))
        return _draw_diff(draw, paths=paths[:k]), _draw_diff(draw, paths=paths[k:])
    if relation == "subset_of_hunks":
        gold = _draw_diff(draw, 1, max_files, tests)
        ids = gold.hunk_ids
        if len(ids) == 1:
            return gold, gold
        flags = draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
        if all(flags) or not any(flags):
            flags[draw(st.integers(0, len(ids) - 1))] = not flags[0]
        return gold.keep_hunks({i for i, keep in zip(ids, flags, strict=True) if keep}), gold
    if relation == "files_reordered":
        gold = _draw_diff(draw, 2, max(2, max_files), tests)
        order = draw(st.permutations(range(len(gold.files))))
        if order == sorted(order):
            order = [*order[1:], order[0]]
        return gold.reordered(order), gold
    raise ValueError(f"unknown relation {relation!r}; choose one of {RELATIONS}")


@cache
def patch_pairs(relation: str, tests: bool | None = None, max_files: int = 4) -> st.SearchStrategy[tuple[str, str]]:
    """``(patch, gold)`` diff texts in a known `relation`:

    - ``identical``: the same text;
    - ``disjoint``: both non-empty, no file in common;
    - ``subset_of_hunks``: `patch` is `gold` with some hunks removed (files left without hunks
      removed too): at least one hunk kept, and at least one dropped whenever `gold` has two
      or more, so ``patch != gold`` exactly when a hunk was dropped;
    - ``files_reordered``: the same file sections (two or more) in a different order.

    `tests` restricts the files as in `file_paths`.
    """
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; choose one of {RELATIONS}")
    return _spec_pairs(relation, tests, max_files).map(lambda pair: (pair[0].text, pair[1].text))


@st.composite
def related_pairs(draw: st.DrawFn, tests: bool | None = None) -> tuple[str, str, str]:
    """``(relation, patch, gold)``: a relation from `RELATIONS` and a `patch_pairs` pair in it."""
    relation = draw(st.sampled_from(RELATIONS))
    patch, gold = draw(patch_pairs(relation, tests))
    return relation, patch, gold


# --------------------------------------------------------------------------- garbage

_PREFIXES = (
    "",
    "+",
    "-",
    " ",
    "\\",
    "@@ -",
    "@@ ",
    "diff --git ",
    "--- ",
    "+++ ",
    "index ",
    "new file mode ",
    "deleted file mode ",
    "old mode ",
    "new mode ",
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
    "similarity index ",
    "Binary files ",
    "GIT binary patch",
    "literal ",
)
_TOKENS = (
    "a/x.py",
    "b/x.py",
    "a/",
    "b/",
    " b/",
    "/dev/null",
    " and ",
    " differ",
    "..",
    '"',
    "\\",
    "\\n",
    "\\t",
    "\\303\\251",
    "\\777",
    "\\400",
    "\\1",
    "0",
    "1",
    "12",
    "99999999999999999999",
    ",",
    " +",
    " -",
    " @@",
    "@@",
    " ",
    "\t",
    "100644",
    "é",
    "\x00",
)
_ENDINGS = ("\n", "\n", "\n", "\r\n", "\r")


_TOKEN = st.one_of(st.sampled_from(_TOKENS), st.text(max_size=6))
_COUNT = st.one_of(st.just(""), st.integers(0, 10**6).map(",{}".format))
_ESCAPES = ("\\303\\251", "\\777", "\\400", "\\1", "\\", "\\n", "\\t", '\\"', "\\\\", " ", "a/", "b/")
_QUOTED = st.lists(st.one_of(st.sampled_from(_ESCAPES), st.text(max_size=3)), max_size=4).map(
    lambda ps: '"' + "".join(ps) + '"'
)
_PATH = st.one_of(
    st.sampled_from(("a/x.py", "b/x.py", "/dev/null", "a/x y.py", "b/x y.py\t2024-01-01 00:00:00", "x", "")),
    _QUOTED,
    st.builds(str.__add__, st.sampled_from(("a/", "b/", "")), st.text(max_size=8)),
)


def _binary_line(a: str, b: str, order: list[int]) -> str:
    parts = (a, " and ", b, " differ")
    return "Binary files " + "".join(parts[i] for i in order)


_HEADER_LINE = st.one_of(
    st.builds("diff --git {} {}".format, _PATH, _PATH),
    st.builds("--- {}\n+++ {}".format, _PATH, _PATH),
    st.builds("{} {}".format, st.sampled_from(("rename from", "rename to", "copy from", "copy to")), _PATH),
    st.builds(_binary_line, _PATH, _PATH, st.permutations(range(4))),
)
_DIFFISH_LINE = st.one_of(
    st.builds(lambda p, ts: p + "".join(ts), st.sampled_from(_PREFIXES), st.lists(_TOKEN, max_size=6)),
    st.builds(
        "@@ -{}{} +{}{} @@{}".format, st.integers(0, 10**6), _COUNT, st.integers(0, 10**6), _COUNT, st.text(max_size=8)
    ),
    _HEADER_LINE,
    st.sampled_from(_CODE).map("+{}".format),
)
_LINE_AND_ENDING = st.tuples(_DIFFISH_LINE, st.sampled_from(_ENDINGS))


@st.composite
def _diff_garbage(draw: st.DrawFn) -> str:
    return "".join(line + end for line, end in draw(st.lists(_LINE_AND_ENDING, max_size=12)))


@st.composite
def _mangled_diffs(draw: st.DrawFn) -> str:
    """A valid diff cut short, with lines inserted, or with other line endings."""
    text = draw(unified_diffs(max_files=3))
    how = draw(st.integers(0, 3))
    if how == 0:
        return text[: draw(st.integers(0, len(text)))]
    if how == 1:
        lines = text.split("\n")
        at = draw(st.integers(0, len(lines)))
        return "\n".join([*lines[:at], *draw(st.lists(_DIFFISH_LINE, min_size=1, max_size=3)), *lines[at:]])
    if how == 2:
        return text.replace("\n", draw(st.sampled_from(("\r\n", "\r"))))
    return text + draw(_diff_garbage())


@cache
def arbitrary_text() -> st.SearchStrategy[str]:
    """Any text a reward may be handed: unicode text, bytes decoded from UTF-8 with
    ``errors="replace"`` (undecodable input as it arrives from a model), lines mixing ``+``,
    ``-``, ``@@``, ``diff --git``, ``---``/``+++``, mode, rename and binary headers, quoted paths
    with octal escapes and any line endings, and valid diffs cut short or with lines inserted.

    Guarantees nothing about the text but its type: a `str`, possibly empty.
    """
    return st.one_of(
        st.text(),
        st.binary().map(lambda b: b.decode("utf-8", errors="replace")),
        _diff_garbage(),
        _mangled_diffs(),
    )
