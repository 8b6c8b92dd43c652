"""The verifier: what of a patch reaches the tests, how the tests run, and where verdicts come from.

- `policy`: splits the agent's patch by file and keeps only changes to non-test source files;
  test files, test infrastructure, the runner's protected files, shadowing modules, symlinks and
  binary changes are dropped; added code that reaches into the test runner is flagged.
- `runner`: the trusted pytest runner that runs inside the verifier sandbox and reports each
  test's verdict on a channel the tests do not know, with sentinel tests and integrity checks.
- `harness`: the second runner mode, for tasks of the SWE-bench family: the repository's own
  test command from the task's harness spec, its output read by the spec's parser between
  nonce markers, with sentinel tests next to the test patch; `runner_mode(task)` picks the mode.

`swerepair.rewards.tests_pass.TestsPass` puts them together; docs/security.md states the policy.
"""

from __future__ import annotations

from swerepair.rewards.verifier.harness import run_harness, run_task_tests, runner_mode, task_spec
from swerepair.rewards.verifier.policy import FilteredPatch, filter_patch
from swerepair.rewards.verifier.runner import RunnerReport, run_trusted

__all__ = [
    "FilteredPatch",
    "RunnerReport",
    "filter_patch",
    "run_harness",
    "run_task_tests",
    "run_trusted",
    "runner_mode",
    "task_spec",
]
