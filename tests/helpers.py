"""Helpers shared by the tests (importable as `helpers`; conftest.py holds the fixtures)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swerepair.envs.sandbox import bwrap_available

HAVE_BWRAP = bwrap_available()
#: Skips where bubblewrap cannot run, except under CI=true, where the isolation tests must run.
needs_bwrap = pytest.mark.skipif(
    not HAVE_BWRAP and not os.environ.get("CI"), reason="bubblewrap cannot create namespaces here"
)

#: Sandbox kinds every sandbox-level test runs on (local always; bubblewrap where it works).
SANDBOX_KINDS = [
    pytest.param("local", marks=pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")),
    pytest.param("bubblewrap", marks=needs_bwrap),
]


def make_repo(root: Path, files: dict[str, str]) -> str:
    """Create a git repository with one commit holding `files`; return the commit sha."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
        "HOME": str(root),
    }
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=env)
    return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=root, text=True, env=env).strip()


TOY_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef twice(x):\n    return x + x\n\n\nDUP = 1\nDUP = 1\n",
    "tests/test_calc.py": "from calc import add, twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n",
    "README.md": "calc\n",
}
#: The fix as `git diff` writes it (three lines of context), so that it scores exactly 1.
TOY_GOLD = (
    "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n"
    " def add(a, b):\n-    return a - b\n+    return a + b\n \n \n def twice(x):\n"
)
TOY_TEST_PATCH = (
    "diff --git a/tests/test_calc.py b/tests/test_calc.py\n--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n"
    "@@ -4,2 +4,6 @@ from calc import add, twice\n def test_twice():\n     assert twice(2) == 4\n+\n+\n"
    "+def test_add():\n+    assert add(2, 3) == 5\n"
)
