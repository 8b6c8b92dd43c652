"""Running a repository's tests inside a sandbox and reading the verdict per test id.

Used by task validation (``swerepair tasks validate``) and by the test-execution reward. It
only needs the `Sandbox` protocol, so it works with any sandbox a user plugs in. Given a task,
`run_tests` runs it under the task's own runner, as `TestsPass` does
(`swerepair.rewards.verifier.harness.runner_mode`: the trusted pytest runner, or the
repository's own runner for tasks of the SWE-bench family).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swerepair.core import ExecResult, Sandbox

__all__ = ["PYTEST_COMMAND", "TestRun", "apply_patch_in", "parse_pytest_report", "run_tests"]

#: How tests are run: every verdict in the short summary (-rA), no cache files in the tree.
PYTEST_COMMAND = "python -m pytest -p no:cacheprovider -rA -q --tb=short -o console_output_style=classic"

_SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (.+?)(?: - .*)?$")


def parse_pytest_report(output: str) -> dict[str, str]:
    """Map each test id in pytest's ``-rA`` short summary to PASSED, FAILED, ERROR, XFAIL or XPASS.

    >>> parse_pytest_report("PASSED tests/t.py::a\\nFAILED tests/t.py::b - assert 1 == 2\\n")
    {'tests/t.py::a': 'PASSED', 'tests/t.py::b': 'FAILED'}
    """
    verdicts: dict[str, str] = {}
    for line in output.splitlines():
        m = _SUMMARY.match(line.rstrip())
        if m:
            status, test_id = m.groups()
            # An ERROR in teardown after a PASS still fails the test.
            if verdicts.get(test_id) != "FAILED" or status != "PASSED":
                verdicts[test_id] = status if verdicts.get(test_id) != "FAILED" else "FAILED"
    return verdicts


@dataclass(frozen=True)
class TestRun:
    """The outcome of running some tests.

    Attributes:
        verdicts: test id -> PASSED / FAILED / ERROR / SKIPPED / XFAIL / XPASS / MISSING.
        result: the raw command result (output, exit code, timeout).
        started: the test runner started (the interpreter and pytest work in the sandbox).
        finished: pytest (or the repository's runner) returned normally.
        not_found: test id -> why the runner found no such test (only those ids are MISSING
            because they do not exist; the others ran).
        problems: tampering or runner faults the run showed (sentinels with the wrong verdict).
        mode: the runner: ``"trusted"`` or ``"harness"``.
        command: the repository's test command, in harness mode.
    """

    __test__ = False  # not a pytest test class

    verdicts: Mapping[str, str]
    result: ExecResult
    started: bool = True
    finished: bool = True
    not_found: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    mode: str = "trusted"
    command: str = ""

    def passed(self, test_id: str) -> bool:
        """True if the test passed (XFAIL counts here; `TestsPass` is stricter)."""
        return self.verdicts.get(test_id) in ("PASSED", "XFAIL")

    @property
    def infrastructure_failure(self) -> bool:
        """The run says nothing about the tests: it timed out, or pytest never ran."""
        return self.result.timed_out or not self.started


def run_tests(
    sandbox: Sandbox, test_ids: Sequence[str], timeout: float, *, task: Any = None, mode: str | None = None
) -> TestRun:
    """Run `test_ids` in `sandbox` and collect a verdict for each: under `task`'s runner when a
    task is given (`mode` overrides it), else under the trusted runner
    (`swerepair.rewards.verifier.runner`)."""
    from swerepair.rewards.verifier.harness import run_task_tests
    from swerepair.rewards.verifier.runner import run_trusted

    if task is None and mode in (None, "trusted"):
        report = run_trusted(sandbox, test_ids, timeout)
    else:
        report = run_task_tests(sandbox, task, list(test_ids), timeout, mode)
    verdicts = {t: report.verdict(t) for t in test_ids}
    finished = report.finished and not report.broken
    return TestRun(
        verdicts=verdicts,
        result=report.result,
        started=report.started,
        finished=finished,
        not_found=dict(report.not_found),
        problems=tuple(report.problems),
        mode=report.mode,
        command=report.command,
    )


def apply_patch_in(sandbox: Sandbox, patch: str, timeout: float = 60.0) -> ExecResult:
    """``git apply`` a patch to the sandbox's working tree (not its index), read from stdin."""
    if not patch.strip():
        return ExecResult(output="", exit_code=0)
    return sandbox.run("git -c safe.directory=* apply --whitespace=nowarn -", timeout, stdin=patch)
