"""Test-execution rewards: does the patch make the failing tests pass without breaking others?

`TestsPass` runs in a **separate verifier sandbox**: a fresh workspace at the task's base
commit, made by the sandbox factory it is handed (never the agent's live workspace, which the
agent may have left in any state). There it applies the agent's patch, then the task's
``test_patch``, then runs ``FAIL_TO_PASS`` and ``PASS_TO_PASS`` with pytest under a timeout.

- value: **resolved**, 1 if every FAIL_TO_PASS and PASS_TO_PASS test passes, else 0;
- components: ``resolved``, ``tests_passed_fraction`` (over both lists),
  ``fail_to_pass_fraction``, ``pass_to_pass_fraction``, ``patch_applies``;
- failure (dropped, never 0): the verifier sandbox cannot be made, the test run times out as a
  whole, or pytest cannot run at all (interpreter missing, internal error).

What is the agent's fault and scores 0: a patch that does not apply, a patch that makes the
test patch conflict, a patch that breaks collection (syntax errors, deleted test files).

The timeout is a trade-off: a patch that makes a test hang also times the run out, and is
dropped rather than punished. Keep the timeout generous relative to the suite's normal run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swerepair.core import Sandbox, SandboxError
from swerepair.rewards.outcome import RewardOutcome, VerifierError
from swerepair.rewards.patch import parse_patch
from swerepair.rewards.testrun import apply_patch_in, run_tests

__all__ = ["PatchApplies", "TestsPass", "is_valid_patch"]

SandboxFactory = Callable[[Any], Sandbox]


def is_valid_patch(patch: str, task: Any = None) -> float:
    """1.0 if `patch` parses into at least one file change, else 0.0 (pure; for gates).

    >>> is_valid_patch("--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n-a\\n+b\\n"), is_valid_patch("no diff here")
    (1.0, 0.0)
    """
    return 1.0 if isinstance(patch, str) and parse_patch(patch) else 0.0


class _SandboxReward:
    """Shared plumbing: a fresh verifier sandbox per evaluation, closed afterwards."""

    name = "sandbox_reward"

    def __init__(self, sandbox_factory: SandboxFactory, timeout: float = 300.0) -> None:
        self.sandbox_factory = sandbox_factory
        self.timeout = timeout

    def evaluate(self, patch: str, task: Any) -> RewardOutcome:
        try:
            sandbox = self.sandbox_factory(task)
        except SandboxError as exc:
            return RewardOutcome.failure(f"verifier sandbox: {exc}")
        try:
            return self._evaluate_in(sandbox, patch if isinstance(patch, str) else "", task)
        except SandboxError as exc:
            return RewardOutcome.failure(f"verifier sandbox: {exc}")
        finally:
            sandbox.close()

    def _evaluate_in(self, sandbox: Sandbox, patch: str, task: Any) -> RewardOutcome:
        raise NotImplementedError

    def __call__(self, patch: str, task: Any) -> float:
        """The value; raises `VerifierError` instead of returning a number when it failed."""
        outcome = self.evaluate(patch, task)
        if outcome.failed or outcome.value is None:
            raise VerifierError(outcome.reason or "verifier failed")
        return outcome.value


class PatchApplies(_SandboxReward):
    """1 if ``git apply`` accepts the patch on a fresh checkout at the base commit, else 0.

    An empty patch applies trivially but changes nothing: it scores 0.
    """

    name = "patch_applies"

    def _evaluate_in(self, sandbox: Sandbox, patch: str, task: Any) -> RewardOutcome:
        if not patch.strip():
            return RewardOutcome(0.0, {"patch_applies": 0.0})
        applies = float(apply_patch_in(sandbox, patch, self.timeout).ok)
        return RewardOutcome(applies, {"patch_applies": applies})


class TestsPass(_SandboxReward):
    """Resolved (1/0) by running the task's tests on the patched code (see the module docstring).

    Args:
        sandbox_factory: makes a fresh sandbox for a task (the env passes its own).
        timeout: seconds for the whole test run; past it the outcome is a failure.
    """

    __test__ = False  # not a pytest test class
    name = "tests_pass"

    def _evaluate_in(self, sandbox: Sandbox, patch: str, task: Any) -> RewardOutcome:
        f2p = tuple(getattr(task, "FAIL_TO_PASS", ()) or ())
        p2p = tuple(getattr(task, "PASS_TO_PASS", ()) or ())
        zero = {
            "resolved": 0.0,
            "tests_passed_fraction": 0.0,
            "fail_to_pass_fraction": 0.0,
            "pass_to_pass_fraction": 0.0,
        }
        if patch.strip() and not apply_patch_in(sandbox, patch, self.timeout).ok:
            return RewardOutcome(0.0, zero | {"patch_applies": 0.0})
        applies = {"patch_applies": 1.0 if patch.strip() else 0.0}
        if not apply_patch_in(sandbox, getattr(task, "test_patch", "") or "", self.timeout).ok:
            return RewardOutcome(0.0, zero | applies)  # the patch conflicts with the test patch
        if not f2p and not p2p:
            return RewardOutcome.failure("the task lists no tests (FAIL_TO_PASS and PASS_TO_PASS are empty)")
        run = run_tests(sandbox, [*f2p, *p2p], self.timeout)
        if run.infrastructure_failure:
            why = "timed out" if run.result.timed_out else f"could not run (exit {run.result.exit_code})"
            return RewardOutcome.failure(f"test run {why}: {run.result.output.strip()[-500:]}", applies)
        f2p_ok = sum(run.passed(t) for t in f2p)
        p2p_ok = sum(run.passed(t) for t in p2p)
        resolved = float(f2p_ok == len(f2p) and p2p_ok == len(p2p))
        return RewardOutcome(
            resolved,
            applies
            | {
                "resolved": resolved,
                "tests_passed_fraction": (f2p_ok + p2p_ok) / (len(f2p) + len(p2p)),
                "fail_to_pass_fraction": f2p_ok / len(f2p) if f2p else 1.0,
                "pass_to_pass_fraction": p2p_ok / len(p2p) if p2p else 1.0,
            },
        )
