"""Running a repository's tests inside a sandbox and reading pytest's verdict per test id.

Used by task validation (``swerepair tasks validate``) and by the test-execution reward. It
only needs the `Sandbox` protocol, so it works with any sandbox a user plugs in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
        finished: pytest returned normally.
    """

    __test__ = False  # not a pytest test class

    verdicts: Mapping[str, str]
    result: ExecResult
    started: bool = True
    finished: bool = True

    def passed(self, test_id: str) -> bool:
        """True if the test passed (XFAIL counts here; `TestsPass` is stricter)."""
        return self.verdicts.get(test_id) in ("PASSED", "XFAIL")

    @property
    def infrastructure_failure(self) -> bool:
        """The run says nothing about the tests: it timed out, or pytest never ran."""
        return self.result.timed_out or not self.started


def run_tests(sandbox: Sandbox, test_ids: Sequence[str], timeout: float) -> TestRun:
    """Run `test_ids` with the trusted runner (`swerepair.rewards.verifier.runner`) in
    `sandbox` and collect a verdict for each."""
    from swerepair.rewards.verifier.runner import run_trusted

    report = run_trusted(sandbox, test_ids, timeout)
    verdicts = {t: report.verdict(t) for t in test_ids}
    return TestRun(verdicts=verdicts, result=report.result, started=report.started, finished=report.finished)


def apply_patch_in(sandbox: Sandbox, patch: str, timeout: float = 60.0) -> ExecResult:
    """``git apply`` a patch to the sandbox's working tree (not its index), read from stdin."""
    if not patch.strip():
        return ExecResult(output="", exit_code=0)
    return sandbox.run("git -c safe.directory=* apply --whitespace=nowarn -", timeout, stdin=patch)
