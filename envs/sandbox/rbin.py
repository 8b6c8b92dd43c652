"""The restricted shell's PATH: a directory holding only the programs the agent may call.

The agent's `shell` tool runs `bash -r` (restricted bash: no `cd`, no output redirection, no
command names containing `/`, no changing PATH) with PATH set to this directory alone. It holds
symlinks to read-only tools and small wrapper scripts:

- `git`: read-only subcommands only (status, diff, log, show, grep, blame, ...);
- `sed`: refuses in-place editing (`-i`, `--in-place`);
- `python`, `python3`, `pytest`: the interpreter that runs the repository's tests.

This steers the agent towards the `apply_patch` tool for edits; it is *not* a security boundary
(python can write files). Isolation is the sandbox's job.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from swerepair.core import cache_root

__all__ = ["DEFAULT_PROGRAMS", "GIT_READONLY_SUBCOMMANDS", "build_rbin"]

#: Programs linked into the restricted PATH as they are.
DEFAULT_PROGRAMS: tuple[str, ...] = (
    "ls",
    "cat",
    "head",
    "tail",
    "grep",
    "find",
    "awk",
    "sort",
    "uniq",
    "wc",
    "diff",
    "cut",
    "tr",
    "nl",
    "basename",
    "dirname",
    "true",
    "false",
)

#: git subcommands the agent may run; everything else is refused by the wrapper.
GIT_READONLY_SUBCOMMANDS: tuple[str, ...] = (
    "status",
    "diff",
    "log",
    "show",
    "grep",
    "blame",
    "ls-files",
    "rev-parse",
    "shortlog",
    "describe",
    "cat-file",
    "ls-tree",
)

_GIT_WRAPPER = """#!/bin/bash
# git, read-only subcommands only.
sub="${{1:-}}"
case " {allowed} " in
  *" $sub "*) ;;
  *) echo "git: '$sub' is not allowed here (read-only subcommands: {allowed})" >&2; exit 2;;
esac
for a in "$@"; do
  case "$a" in
    --output|--output=*|--ext-diff|--textconv|-O*|--open-files-in-pager*|--exec*|--upload-pack*)
      echo "git: option '$a' is not allowed here" >&2; exit 2;;
  esac
done
exec {git} -c safe.directory='*' -c core.pager=cat --no-pager "$@"
"""

_SED_WRAPPER = """#!/bin/bash
# sed without in-place editing.
for a in "$@"; do
  case "$a" in
    --in-place|--in-place=*|-i|-i*|-[!-]*i*)
      echo "sed: in-place editing is not allowed here; use the apply_patch tool to edit files" >&2
      exit 2;;
  esac
done
exec {sed} "$@"
"""

_PYTHON_WRAPPER = """#!/bin/sh
exec {python} "$@"
"""

_PYTEST_WRAPPER = """#!/bin/sh
exec {python} -m pytest -p no:cacheprovider "$@"
"""


def build_rbin(
    programs: tuple[str, ...] = DEFAULT_PROGRAMS,
    python: str | None = None,
    root: Path | None = None,
) -> Path:
    """Create (once) and return the restricted bin directory for these settings.

    The directory's name is a hash of its contents, so concurrent processes that ask for the
    same settings share one directory and never see a half-written one. Within a process the
    answer is memoised per cache root (it is asked for at every reset).
    """
    key = (tuple(programs), python or sys.executable, root or cache_root())
    target = _memo_rbin(*key)
    if not target.is_dir():  # removed behind our back (a cleaned cache): make it again
        _memo_rbin.cache_clear()
        target = _memo_rbin(*key)
    return target


_memo_rbin = functools.lru_cache(maxsize=32)(lambda programs, python, root: _make_rbin(programs, python, root))


def _make_rbin(programs: tuple[str, ...], python: str, root: Path) -> Path:
    resolved = {p: shutil.which(p, path="/usr/local/bin:/usr/bin:/bin") for p in programs}
    missing = [p for p, path in resolved.items() if path is None]
    if missing:
        raise FileNotFoundError(f"programs for the restricted shell not found: {missing}")
    git = shutil.which("git", path="/usr/local/bin:/usr/bin:/bin")
    sed = shutil.which("sed", path="/usr/local/bin:/usr/bin:/bin")
    if git is None or sed is None:
        raise FileNotFoundError("the restricted shell needs git and sed")
    scripts = {
        "git": _GIT_WRAPPER.format(allowed=" ".join(GIT_READONLY_SUBCOMMANDS), git=git),
        "sed": _SED_WRAPPER.format(sed=sed),
        "python": _PYTHON_WRAPPER.format(python=shlex.quote(python)),
        "python3": _PYTHON_WRAPPER.format(python=shlex.quote(python)),
        "pytest": _PYTEST_WRAPPER.format(python=shlex.quote(python)),
    }
    key = hashlib.sha256(repr((sorted(resolved.items()), sorted(scripts.items()))).encode())
    target = root / f"rbin-{key.hexdigest()[:16]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rbin-", dir=target.parent))
    for name, path in resolved.items():
        os.symlink(path, tmp / name)  # type: ignore[arg-type]
    for name, text in scripts.items():
        (tmp / name).write_text(text)
        (tmp / name).chmod(0o755)
    tmp.chmod(0o755)
    try:
        os.rename(tmp, target)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return target
