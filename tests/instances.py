"""Two small repositories shaped like SWE-bench instances, and their task rows.

- ``pytest``: a package and a pytest suite; its row names a repository outside the harness
  table, so `spec_for` gives SWE-smith's pytest default (``pytest ... --verbose`` read by the
  ``swesmith`` parser).
- ``django``: a package and a ``tests/runtests.py`` built on unittest that takes django's
  arguments (``--verbosity 2 --settings=test_sqlite --parallel 1 <labels>``) and prints
  unittest's verbosity-2 lines (``test_x (module.Class.test_x) ... ok`` on Python 3.11), which
  the django parser reads. Its rows say ``repo: "django/django"``, ``version: "5.0"``: the real
  django spec (test command, parser, protected files) grades it.

Rows are in the published SWE-bench Verified schema: the test lists are JSON strings, with
``version``, ``environment_setup_commit``, ``hints_text`` and ``created_at``. The patches are
made by git itself (`build_instance`), so they are exactly what an agent's ``git diff`` gives.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin",
}

# -- the pytest repository ----------------------------------------------------------------------
PYTEST_BASE = {
    "conftest.py": "# the repository root on sys.path for the tests (pytest's rootdir conftest)\n",
    "calc/__init__.py": "from calc.ops import add, twice\n",
    "calc/ops.py": "def add(a, b):\n    return a - b\n\n\ndef twice(x):\n    return x + x\n",
    "tests/test_ops.py": "from calc import add, twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n",
    "setup.py": "from setuptools import setup\n\nsetup(name='calc', version='0.1', packages=['calc'])\n",
    "README.md": "calc\n",
}
PYTEST_FIX = {"calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef twice(x):\n    return x + x\n"}
PYTEST_TESTS = {
    "tests/test_ops.py": PYTEST_BASE["tests/test_ops.py"] + "\n\ndef test_add():\n    assert add(2, 3) == 5\n"
}

# -- the django-layout repository ---------------------------------------------------------------
RUNTESTS = '''#!/usr/bin/env python3
"""The test runner (django's arguments, unittest underneath)."""

import argparse
import os
import sys
import unittest

parser = argparse.ArgumentParser()
parser.add_argument("labels", nargs="*")
parser.add_argument("-v", "--verbosity", type=int, default=1)
parser.add_argument("--settings")
parser.add_argument("--parallel", default="1")
args = parser.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.dirname(here)]
if args.settings:
    __import__(args.settings)
loader = unittest.defaultTestLoader
suite = loader.loadTestsFromNames(args.labels) if args.labels else loader.discover(here)
result = unittest.TextTestRunner(verbosity=args.verbosity).run(suite)
sys.exit(0 if result.wasSuccessful() else 1)
'''
DJANGO_BASE = {
    "minidj/__init__.py": "",
    "minidj/text.py": (
        "def slugify(value):\n    return value.lower()\n\n\ndef shout(value):\n    return value.upper()\n"
    ),
    "tests/runtests.py": RUNTESTS,
    "tests/test_sqlite.py": "SECRET_KEY = 'test'\n",
    "tests/text/__init__.py": "",
    "tests/text/tests.py": (
        "import unittest\n\nfrom minidj.text import shout, slugify\n\n\n"
        "class TextTests(unittest.TestCase):\n"
        "    def test_shout(self):\n        self.assertEqual(shout('a'), 'A')\n\n"
        "    def test_slugify_lower(self):\n        self.assertEqual(slugify('AB'), 'ab')\n"
    ),
    "setup.py": "from setuptools import setup\n\nsetup(name='minidj', version='0.1', packages=['minidj'])\n",
}
DJANGO_FIX = {
    "minidj/text.py": (
        "def slugify(value):\n    return value.lower().replace(' ', '-')\n\n\n"
        "def shout(value):\n    return value.upper()\n"
    )
}
DJANGO_TESTS = {
    "tests/text/tests.py": DJANGO_BASE["tests/text/tests.py"]
    + "\n    def test_slugify_spaces(self):\n        self.assertEqual(slugify('A b'), 'a-b')\n"
}
#: What the verbosity-2 lines of Python 3.11's unittest name the tests (the django parser's ids).
DJANGO_F2P = ["test_slugify_spaces (text.tests.TextTests.test_slugify_spaces)"]
DJANGO_P2P = [
    "test_shout (text.tests.TextTests.test_shout)",
    "test_slugify_lower (text.tests.TextTests.test_slugify_lower)",
]


@dataclass(frozen=True)
class Instance:
    """One instance: its repository (a git checkout at the base commit) and what a row needs."""

    name: str
    repo: str
    version: str
    path: Path
    base_commit: str
    patch: str
    test_patch: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    problem_statement: str

    def row(self, **columns: Any) -> dict[str, Any]:
        """The instance as a row of the published SWE-bench Verified schema, plus `columns`
        (``image=...`` or ``repo_source=...``)."""
        owner, name = self.repo.split("/")
        return {
            "repo": self.repo,
            "instance_id": f"{owner}__{name}-{self.name}",
            "base_commit": self.base_commit,
            "patch": self.patch,
            "test_patch": self.test_patch,
            "problem_statement": self.problem_statement,
            "hints_text": "",
            "created_at": "2024-01-01T00:00:00Z",
            "version": self.version,
            "FAIL_TO_PASS": json.dumps(self.fail_to_pass),
            "PASS_TO_PASS": json.dumps(self.pass_to_pass),
            "environment_setup_commit": self.base_commit,
            **columns,
        }


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, env=_GIT_ENV, capture_output=True, text=True).stdout


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if text.startswith("#!"):
            path.chmod(0o755)


def _diff_of(root: Path, files: dict[str, str]) -> str:
    """The `git diff` that `files` make on the checkout at HEAD (the tree is reset afterwards)."""
    _write(root, files)
    _git(root, "add", "-A")
    diff = _git(root, "diff", "--cached", "--no-color", "--no-renames", "HEAD")
    _git(root, "reset", "-q", "--hard", "HEAD")
    return diff


def build_instance(kind: str, root: Path) -> Instance:
    """Create the ``kind`` (``"pytest"`` or ``"django"``) repository under `root`."""
    if kind == "pytest":
        base, fix, tests = PYTEST_BASE, PYTEST_FIX, PYTEST_TESTS
        repo, version = "swerepair-e2e/calc", "0.1"
        f2p, p2p = ["tests/test_ops.py::test_add"], ["tests/test_ops.py::test_twice"]
        problem = "add(2, 3) returns -1 instead of 5."
    elif kind == "django":
        base, fix, tests = DJANGO_BASE, DJANGO_FIX, DJANGO_TESTS
        repo, version = "django/django", "5.0"
        f2p, p2p = DJANGO_F2P, DJANGO_P2P
        problem = "slugify('A b') keeps the space: it should give 'a-b'."
    else:
        raise ValueError(kind)
    root.mkdir(parents=True, exist_ok=True)
    _write(root, base)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    sha = _git(root, "rev-parse", "HEAD").strip()
    return Instance(
        name="1",
        repo=repo,
        version=version,
        path=root,
        base_commit=sha,
        patch=_diff_of(root, fix),
        test_patch=_diff_of(root, tests),
        fail_to_pass=f2p,
        pass_to_pass=p2p,
        problem_statement=problem,
    )


def swesmith_instance(inst: Instance, root: Path) -> tuple[Instance, dict[str, Any]]:
    """`inst` as SWE-smith publishes a bug: a repository at the *clean* commit (the fix and the
    tests in), and a row of SWE-smith's schema whose ``patch`` introduces the bug (the gold fix
    reversed), with no ``base_commit`` and no ``test_patch``. Returns the clean repository (for
    its image) and the row without ``image_name`` (the caller adds it)."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "clone", "-q", str(inst.path), ".")
    for patch in (inst.patch, inst.test_patch):
        subprocess.run(["git", "apply", "-"], cwd=root, check=True, env=_GIT_ENV, input=patch, text=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "clean")
    sha = _git(root, "rev-parse", "HEAD").strip()
    bug = _diff_of(root, {p: (inst.path / p).read_text() for p in _changed(inst.patch)})
    owner, name = inst.repo.split("/")
    clean = Instance(inst.name, inst.repo, inst.version, root, sha, "", "", [], [], inst.problem_statement)
    row = {
        "instance_id": f"{owner}__{name}.{sha[:8]}.swerepair_bug__{inst.name}",
        "repo": f"swesmith/{owner}__{name}.{sha[:8]}",
        "patch": bug,
        "FAIL_TO_PASS": inst.fail_to_pass,
        "PASS_TO_PASS": inst.pass_to_pass,
        "problem_statement": inst.problem_statement,
    }
    return clean, row


def _changed(patch: str) -> list[str]:
    return [line.split(" b/", 1)[1] for line in patch.splitlines() if line.startswith("diff --git ")]


def new_file_patch(path: str, text: str, mode: str = "100644") -> str:
    """A `git diff` that adds `path` with `text`."""
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    header = f"diff --git a/{path} b/{path}\nnew file mode {mode}\n--- /dev/null\n+++ b/{path}\n"
    return f"{header}@@ -0,0 +1,{len(lines)} @@\n{body}"


def edit_patch(root: Path, path: str, text: str) -> str:
    """A `git diff` that replaces `path` of the checkout at `root` with `text`."""
    return _diff_of(root, {path: text})


def append_patch(root: Path, path: str, text: str) -> str:
    """A `git diff` that appends `text` to `path` of the checkout at `root`."""
    return _diff_of(root, {path: (root / path).read_text() + text})


#: A tests/runtests.py that reports every label's tests as passing, without running any.
FORGING_RUNTESTS = """#!/usr/bin/env python3
import sys
import unittest

sys.path[:0] = ["tests", "."]
labels = [a for a in sys.argv[1:] if not a.startswith("-")]
for test in unittest.defaultTestLoader.loadTestsFromNames(labels):
    for case in getattr(test, "_tests", [test]):
        for t in getattr(case, "_tests", [case]):
            print(f"{t._testMethodName} ({type(t).__module__}.{type(t).__qualname__}.{t._testMethodName}) ... ok")
print("OK")
"""

#: A root conftest.py whose hook turns every failure into a pass.
FORGING_CONFTEST = (
    "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
    "    outcome = yield\n    report = outcome.get_result()\n    report.outcome = 'passed'\n"
)

#: Package code (no token the policy's scan flags) that makes unittest report failures as "ok".
UNITTEST_FORGERY = (
    "\n\nimport unittest.runner as _r\n\n"
    "_r.TextTestResult.addFailure = lambda self, test, err: self.addSuccess(test)\n"
    "_r.TextTestResult.addError = lambda self, test, err: self.addSuccess(test)\n"
)
