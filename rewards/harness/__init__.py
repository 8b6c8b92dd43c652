"""Harness parity: each repository's own test command, install spec and log parser, as data.

Real SWE-bench, SWE-Gym and SWE-smith instances are graded by the official harness: it installs
the repository version its own way, runs the repository's own test runner (pytest with the
harness's flags, django's ``tests/runtests.py``, sympy's ``bin/test``, tox for sphinx) on the
test files the test patch touches, and reads each test's verdict from the runner's log with a
parser made for that runner. The FAIL_TO_PASS / PASS_TO_PASS lists of the datasets are those
parsers' test ids. This package keeps what the harness knows as data, with its origin:

- `specs`: `RepoSpec` per ``(repo, version)`` in `SPECS` (test command, install, packages,
  pre-install, eval commands, parser name, the runner's `protected` paths, ``origin``), and
  `spec_for` with its fallback for other repositories and versions;
- `directives`: `test_directives` and `test_command`, the command line for a test patch;
- `parsers`: `TestStatus`, one parser per runner in `PARSERS`, and `parse_log`.

The values come from the SWE-bench harness (swebench 4.1.0 specs, 5.0.2 log parsers), the SWE-Gym
harness fork and SWE-smith's Python profile; each spec's ``origin`` says which.

How the rewards use it: to grade a real instance with its own runner, a verifier runs
``test_command(spec, task.test_patch)`` in the instance's environment and reads the verdicts
with ``parse_log(spec, output)``, the ids the dataset's test lists use. Before it applies an
agent's patch it refuses (or resets) changes to ``spec.protected``: those paths are the runner
and what runs before it, which a policy rewarded by the runner's verdicts would learn to edit.
docs/harness.md explains the table, the runners and the protected files.
"""

from __future__ import annotations

from swerepair.rewards.harness.directives import NON_TEST_EXTS, test_command, test_directives
from swerepair.rewards.harness.parsers import (
    END_TEST_OUTPUT,
    PARSERS,
    START_TEST_OUTPUT,
    LogParser,
    TestStatus,
    parse_log,
    test_output_section,
)
from swerepair.rewards.harness.specs import (
    DIRECTIVE_STYLES,
    FALLBACK_ORIGIN,
    SPECS,
    RepoSpec,
    spec_for,
    spec_from_install_config,
)

__all__ = [
    "DIRECTIVE_STYLES",
    "END_TEST_OUTPUT",
    "FALLBACK_ORIGIN",
    "NON_TEST_EXTS",
    "PARSERS",
    "SPECS",
    "START_TEST_OUTPUT",
    "LogParser",
    "RepoSpec",
    "TestStatus",
    "parse_log",
    "spec_for",
    "spec_from_install_config",
    "test_command",
    "test_directives",
    "test_output_section",
]
