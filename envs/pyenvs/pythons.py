"""Finding an interpreter of a given Python version on this machine, without downloading one.

Searched in order: uv-managed interpreters (``uv python find``, downloads off), pyenv's
(``$PYENV_ROOT/versions``, default ``~/.pyenv``), then ``pythonX.Y`` on ``PATH``. Every candidate
is run once to read its real version. When none matches, the caller gets the running
interpreter as a *fallback*, flagged so that the build records it and warns.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FoundPython", "find_python", "find_uv", "python_version"]


@dataclass(frozen=True)
class FoundPython:
    """An interpreter chosen for an environment.

    Attributes:
        path: the interpreter's executable.
        version: its ``major.minor.micro``.
        source: where it was found: ``uv``, ``pyenv``, ``path``, or ``fallback``.
        wanted: the version the spec asked for (``None``: the spec names none).
    """

    path: str
    version: str
    source: str
    wanted: str | None

    @property
    def fallback(self) -> bool:
        """True when the spec asked for a version this machine does not have."""
        return self.source == "fallback"

    def note(self) -> str:
        """One line for the build record and the user."""
        if self.fallback:
            return (
                f"Python {self.wanted} is not on this machine (uv-managed, pyenv, PATH); "
                f"built with {self.version} ({self.path}) instead: results may differ from the harness's"
            )
        return f"Python {self.version} from {self.source} ({self.path})"


@functools.lru_cache(maxsize=64)
def python_version(path: str) -> str | None:
    """``major.minor.micro`` of the interpreter at `path`, or None if it does not run."""
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_uv() -> str | None:
    """The ``uv`` executable: on PATH, next to this interpreter, or the one the ``uv`` wheel ships."""
    for candidate in (shutil.which("uv"), str(Path(sys.executable).parent / "uv")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def _matches(found: str, wanted: str) -> bool:
    return found == wanted or found.startswith(wanted + ".")


def _uv_candidates(wanted: str) -> Iterator[tuple[str, str]]:
    uv = find_uv()
    if uv is None:
        return
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    try:
        out = subprocess.run(
            [uv, "python", "find", "--managed-python", wanted], capture_output=True, text=True, timeout=60, env=env
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    if out.returncode == 0 and out.stdout.strip():
        yield out.stdout.strip().splitlines()[-1], "uv"


def _pyenv_candidates(wanted: str) -> Iterator[tuple[str, str]]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not root.is_dir():
        return
    numeric = [d for d in root.iterdir() if re.fullmatch(r"\d+\.\d+(\.\d+)?", d.name) and _matches(d.name, wanted)]
    for d in sorted(numeric, key=lambda p: [int(x) for x in p.name.split(".")], reverse=True):
        major_minor = ".".join(d.name.split(".")[:2])
        exe = d / "bin" / f"python{major_minor}"
        if exe.is_file():
            yield str(exe), "pyenv"


def _path_candidates(wanted: str) -> Iterator[tuple[str, str]]:
    major_minor = ".".join(wanted.split(".")[:2])
    exe = shutil.which(f"python{major_minor}")
    if exe:
        yield exe, "path"


def find_python(wanted: str | None) -> FoundPython:
    """An interpreter of version `wanted` (``"3.9"`` or ``"3.9.18"``), or the running one as a
    flagged fallback. `wanted` None: the running interpreter, not flagged."""
    here = ".".join(str(n) for n in sys.version_info[:3])
    if not wanted:
        return FoundPython(sys.executable, here, "running", None)
    wanted = str(wanted).strip()
    for search in (_uv_candidates, _pyenv_candidates, _path_candidates):
        for path, source in search(wanted):
            version = python_version(path)
            if version is not None and _matches(version, wanted):
                return FoundPython(path, version, source, wanted)
    return FoundPython(sys.executable, here, "fallback", wanted)
