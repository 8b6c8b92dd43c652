"""What of the agent's patch reaches the verifier.

The verifier grades the fix, not the test run. So, file by file:

- **test files are reset**: a file the task's ``test_patch`` touches, or any file that looks
  like a test (`swerepair.rewards.patch.is_test_path`: ``tests/``, ``test_*.py``, ...) unless
  the gold fix itself changes it, keeps its base content plus the test patch; the agent's
  change to it is dropped;
- **test infrastructure is dropped**: any ``conftest.py``; ``pytest.ini``, ``tox.ini``,
  ``setup.cfg``, ``pyproject.toml``, ``noxfile.py``, ``.coveragerc`` (pytest settings, plugins
  and entry points live there); ``*.pth``; ``sitecustomize``/``usercustomize``;
- **shadowing modules are dropped**: a *new* top-level module or package (at the repository
  root or under ``src/``) named like a standard-library module or a test tool (``pytest``,
  ``_pytest``, ``pluggy``, ``hypothesis``, ...);
- **symlinks and binary changes are dropped** (a link can point the tests anywhere; a binary
  diff cannot be applied from ``git diff`` output);
- **the runner's protected files are dropped** (``protected``: a harness spec's runner paths,
  `swerepair.rewards.harness.RepoSpec.protected`, such as django's ``tests/runtests.py`` or
  sympy's ``bin/test``), before any other rule and whatever else the file is, unless the gold
  fix itself changes it. Those that are runner code (everything but pytest's configuration,
  conftests, packaging and requirements files, which are ordinary test infrastructure) are also
  *flagged*: editing the program that produces the verdicts has no place in a fix;
- everything else is applied.

Then the kept changes are **scanned**: code the agent *added* to non-test files that reaches
into the test runner or the interpreter's machinery (pytest/pluggy internals, ``sys.modules``,
forced exits, frames, ``gc``, tracing hooks, ``ctypes``, dynamic import/exec, the names of
the task's tests) is *flagged*, and a flagged patch scores 0. A construct is not flagged where
the same file's removed lines or the gold fix already use it (an edited ``sys.exit`` call in a
CLI module stays legitimate).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from swerepair.rewards.patch import FilePatch, is_test_path, parse_patch, split_files

__all__ = ["RUNNER_REACH", "FilteredPatch", "filter_patch", "is_runner_code"]

_INFRA_NAMES = frozenset(
    {"conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "noxfile.py", ".coveragerc"}
)
_CUSTOMIZE = frozenset({"sitecustomize.py", "usercustomize.py"})
_TOOL_MODULES = frozenset(
    {"pytest", "_pytest", "pluggy", "py", "iniconfig", "hypothesis", "_hypothesis_pytestplugin", "coverage", "xdist"}
)
_SHADOWED = frozenset(sys.stdlib_module_names) | _TOOL_MODULES
#: Protected paths with these names are configuration or packaging: dropped, not flagged.
_CONFIG_NAMES = _INFRA_NAMES | {"setup.py", "Makefile", "MANIFEST.in"}
_CONFIG_SUFFIXES = (".txt", ".in", ".cfg", ".ini", ".toml", ".yml", ".yaml", ".json")

#: Added code matching one of these is flagged (see the module docstring).
RUNNER_REACH: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "pytest internals": r"\b_?pytest\b|\bpluggy\b|\bPYTEST_",
        "sys.modules": r"\bsys\s*\.\s*modules\b",
        "forced exit": r"\bos\s*\.\s*_exit\b|\bsys\s*\.\s*exit\b|\batexit\b|\bos\s*\.\s*abort\b",
        "frames and tracing": r"\b_getframe\b|\bsettrace\b|\bsetprofile\b|\binspect\s*\.\s*(stack|currentframe)\b"
        r"|\bf_back\b|\bf_globals\b|\baddaudithook\b",
        "gc introspection": r"\bgc\s*\.\s*get_(objects|referrers|referents)\b",
        "dynamic import or exec": r"\b__import__\b|\bimportlib\b|\bexec\s*\(|\beval\s*\(|\bcompile\s*\(",
        "builtins": r"\b__builtins__\b|\bbuiltins\b",
        "ctypes": r"\bctypes\b",
        "signals": r"\bsignal\s*\.\s*(signal|alarm|setitimer)\b|\bos\s*\.\s*kill\b|\bfaulthandler\b",
        "global namespace": r"\bglobals\s*\(\s*\)",
    }.items()
}


@dataclass(frozen=True)
class FilteredPatch:
    """The agent's patch after the policy.

    Attributes:
        patch: the file sections that reach the verifier, as patch text.
        applied: paths of those files.
        touched: every path those files change (a rename's old and new path, a deletion's).
        dropped: (path, why) for every file section that was left out.
        flags: (path, what) for every construct in the kept changes that reaches into the
            test runner, and every protected runner file the patch edits; non-empty means the
            patch scores 0.
    """

    patch: str
    applied: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    flags: tuple[tuple[str, str], ...]
    touched: tuple[str, ...] = ()


def _top_module(path: str) -> str | None:
    parts = path.split("/")
    if parts and parts[0] == "src":
        parts = parts[1:]
    if not parts:
        return None
    head = parts[0]
    if len(parts) == 1:
        return head[:-3] if head.endswith(".py") else (head.split(".")[0] if head.endswith((".so", ".pyd")) else None)
    return head


def is_runner_code(path: str) -> bool:
    """Whether a protected path is the runner's code (flagged) rather than configuration or
    packaging (only dropped).

    >>> is_runner_code("tests/runtests.py"), is_runner_code("bin/test"), is_runner_code("setup.py")
    (True, True, False)
    """
    name = path.rsplit("/", 1)[-1]
    return name not in _CONFIG_NAMES and not name.endswith(_CONFIG_SUFFIXES)


def _why_dropped(fp: FilePatch, test_files: set[str], fix_files: set[str], protected: frozenset[str]) -> str | None:
    paths = [p for p in (fp.old_path, fp.new_path) if p]
    hit = [p for p in paths if p in protected and p not in fix_files]
    if hit:
        return f"protected file of the test runner ({hit[0]})"
    if any(p in test_files for p in paths):
        return "touched by the test patch: reset to base + test patch"
    if any(is_test_path(p) for p in paths) and not any(p in fix_files for p in paths):
        return "test file: reset to base + test patch"
    names = {p.rsplit("/", 1)[-1] for p in paths}
    if names & _INFRA_NAMES:
        return "test infrastructure (pytest settings or conftest)"
    if names & _CUSTOMIZE or any(p.endswith(".pth") for p in paths):
        return "interpreter start-up hook (.pth or *customize)"
    if "120000" in (fp.new_mode, fp.old_mode):
        return "symbolic link"
    if fp.binary:
        return "binary change"
    if fp.status in ("added", "renamed"):
        top = _top_module(fp.new_path or "")
        if top in _SHADOWED:
            return f"new top-level module {top!r} shadows the standard library or a test tool"
    return None


def _added_removed(fp: FilePatch) -> tuple[list[str], list[str]]:
    added = [line for h in fp.hunks for line in h.added]
    removed = [line for h in fp.hunks for line in h.removed]
    return added, removed


def _test_names(test_ids: Iterable[str]) -> set[str]:
    """The function names in test ids: pytest's ``path::Class::test_x[param]``, the unittest
    form of django's runner ``test_x (module.Class.test_x)``, sympy's bare ``test_x``."""
    names: set[str] = set()
    for tid in test_ids:
        for name in (re.sub(r"\[.*$", "", tid.split("::")[-1]), tid.split(" (", 1)[0].strip()):
            if len(name) >= 6 and name.startswith("test") and re.fullmatch(r"\w+", name):
                names.add(name)
    return names


def _flags(fp: FilePatch, gold_added: str, test_names: set[str]) -> list[str]:
    added, removed = _added_removed(fp)
    text, before = "\n".join(added), "\n".join(removed)
    found = [
        what
        for what, pattern in RUNNER_REACH.items()
        if pattern.search(text) and not pattern.search(before) and not pattern.search(gold_added)
    ]
    named = sorted(n for n in test_names if re.search(rf"\b{re.escape(n)}\b", text) and n not in gold_added)
    if named:
        found.append(f"names the task's tests ({', '.join(named[:3])})")
    return found


def filter_patch(
    patch: str,
    test_patch: str = "",
    gold_patch: str = "",
    test_ids: Iterable[str] = (),
    protected: Iterable[str] = (),
) -> FilteredPatch:
    """Apply the policy (module docstring) to `patch`; `protected` are the runner's files.

    >>> fix = "--- a/pkg/m.py\\n+++ b/pkg/m.py\\n@@ -1 +1 @@\\n-x = 1\\n+x = 2\\n"
    >>> conftest = "--- /dev/null\\n+++ b/conftest.py\\n@@ -0,0 +1 @@\\n+import pytest\\n"
    >>> f = filter_patch(fix + conftest)
    >>> f.applied, f.dropped[0][0], f.flags
    (('pkg/m.py',), 'conftest.py', ())
    """
    test_files = {p for fp in parse_patch(test_patch) for p in (fp.old_path, fp.new_path) if p}
    fix_files = {p for fp in parse_patch(gold_patch) for p in (fp.old_path, fp.new_path) if p}
    gold_added = "\n".join(line for fp in parse_patch(gold_patch) for line in _added_removed(fp)[0])
    names = _test_names(test_ids)
    guarded = frozenset(protected)
    kept: list[str] = []
    applied: list[str] = []
    dropped: list[tuple[str, str]] = []
    flags: list[tuple[str, str]] = []
    touched: list[str] = []
    for section in split_files(patch)[1]:  # the preamble holds no file: git apply skips it too
        files = parse_patch(section)
        if not files:
            continue  # no file header: nothing git apply would use
        fp = files[0]
        why = (
            "not readable as one file's change" if len(files) != 1 else _why_dropped(fp, test_files, fix_files, guarded)
        )
        if why is not None:
            dropped.append((fp.path, why))
            runner_files = [p for p in (fp.old_path, fp.new_path) if p in guarded and p not in fix_files]
            if any(is_runner_code(p) for p in runner_files):
                flags.append((fp.path, "changes the test runner's own code (a protected file)"))
            continue
        kept.append(section)
        applied.append(fp.path)
        touched += [p for p in (fp.old_path, fp.new_path) if p]
        flags += [(fp.path, what) for what in _flags(fp, gold_added, names)]
    return FilteredPatch("".join(kept), tuple(applied), tuple(dropped), tuple(flags), tuple(dict.fromkeys(touched)))
