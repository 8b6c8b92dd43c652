"""Test directives: what the harness appends to an instance's test command.

Re-expressed from ``get_test_directives`` in ``swebench/harness/test_spec/python.py``
(swebench 4.1.0) and, for python/mypy, from the SWE-Gym fork's ``make_test_command``:

- ``paths`` (every repository but two): the paths the test patch's ``diff --git a/X b/Y`` headers
  name (the ``b/`` side), less files whose name ends in a non-test extension (``.json``,
  ``.png``, ``csv``, ``.txt``, ``.md``, ``.jpg``, ``.jpeg``, ``.pkl``, ``.yml``, ``.yaml``,
  ``.toml``; ``csv`` without the dot, as the harness has it). sympy's ``bin/test`` takes the same
  file paths as pytest does.
- ``django``: each path with ``.py`` and a leading ``tests/`` removed and ``/`` made ``.``:
  ``tests/admin_views/tests.py`` -> ``admin_views.tests``, the module label ``runtests.py``
  takes.
- ``mypy``: the names of the ``[case Name]`` headers anywhere in the test patch; the command is
  ``test_cmd "NameA or NameB"`` (its test_cmd ends in ``-k``).

The directives are joined to the command with spaces, each quoted for the shell only where it
needs it (`shlex.quote` leaves ordinary paths as they are, so the command is the harness's).
"""

from __future__ import annotations

import re
import shlex

from swerepair.rewards.harness.specs import RepoSpec, spec_for

__all__ = ["NON_TEST_EXTS", "test_command", "test_directives"]

#: Endings of files a test patch touches that are not tests (the harness's ``NON_TEST_EXTS``).
NON_TEST_EXTS = (".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml")
_DIFF_TARGET = re.compile(r"diff --git a/.* b/(.*)")
_MYPY_CASE = re.compile(r"\[case ([^\]]+)\]")


def _spec(spec_or_repo: RepoSpec | str) -> RepoSpec:
    return spec_or_repo if isinstance(spec_or_repo, RepoSpec) else spec_for(spec_or_repo)


def test_directives(spec_or_repo: RepoSpec | str, test_patch: str) -> list[str]:
    """The harness's directives for `test_patch` (a spec, or a repository name to look up)."""
    spec = _spec(spec_or_repo)
    test_patch = test_patch or ""
    if spec.directives == "mypy":
        return _MYPY_CASE.findall(test_patch)
    paths = [path for path in _DIFF_TARGET.findall(test_patch) if not path.endswith(NON_TEST_EXTS)]
    if spec.directives == "django":
        modules = []
        for path in paths:
            path = path.removesuffix(".py")
            path = path.removeprefix("tests/")
            modules.append(path.replace("/", "."))
        return modules
    return paths


test_directives.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def test_command(spec_or_repo: RepoSpec | str, test_patch: str) -> str:
    """The command the harness runs for `test_patch`: ``test_cmd`` and the directives."""
    spec = _spec(spec_or_repo)
    directives = test_directives(spec, test_patch)
    if spec.directives == "mypy":
        return f'{spec.test_cmd} "{" or ".join(directives)}"'
    return " ".join([spec.test_cmd, *(shlex.quote(directive) for directive in directives)])


test_command.__test__ = False  # type: ignore[attr-defined]
