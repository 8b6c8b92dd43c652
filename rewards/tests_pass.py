"""Test-execution rewards: does the patch make the failing tests pass without breaking others?

`TestsPass` grades **the fix, not the test run** (the policy is stated in full in
docs/security.md). In a fresh verifier sandbox at the task's base commit:

1. the agent's patch goes through `swerepair.rewards.verifier.policy`: only changes to
   non-test source files are applied; test files are reset to base + ``test_patch``; test
   infrastructure (conftests, pytest settings, ``.pth``, ``*customize``), shadowing modules,
   symlinks and binary changes are dropped; added code that reaches into the test runner is
   flagged and scores 0;
2. the kept changes are applied, then the task's ``test_patch``;
3. ``FAIL_TO_PASS`` and ``PASS_TO_PASS`` run under one of two runners, chosen per task
   (`swerepair.rewards.verifier.harness.runner_mode`):

   - the **trusted runner** (`swerepair.rewards.verifier.runner`; every task without a harness
     spec, e.g. the bundled ones): pytest imported before the repository, the repository last
     on ``sys.path``, verdicts on a nonce-tagged channel, sentinel tests and integrity checks
     of pytest's reporting machinery;
   - the **harness runner** (`swerepair.rewards.verifier.harness`; tasks of the SWE-bench
     family, whose test ids are their harness's): the repository's own test command from the
     task's harness spec, in the instance's environment, verdicts read by the spec's parser
     from a section framed by nonce markers, with sentinel tests next to the test patch where
     the runner allows. The spec's ``protected`` runner files are dropped (and flagged, where
     they are runner code) by the policy in both modes.

Scores:
- value: **resolved**, 1 if every FAIL_TO_PASS and PASS_TO_PASS test passed, else 0. XFAIL
  counts as a pass only for a test whose verdict is XFAIL with the gold patch too (the gold
  run happens only when an XFAIL is seen, once per task);
- components: ``resolved``, ``tests_passed_fraction`` (over both lists),
  ``fail_to_pass_fraction``, ``pass_to_pass_fraction``, ``patch_applies``, ``tampered``;
- details (``info["verifier"]``): files dropped and why, flags, runner problems, why a run
  scored 0.

Whose fault: a patch that does not apply, conflicts with the test patch, breaks collection,
**crashes the test process, exits it early or makes it hang** (or, in harness mode, leaves the
runner without a single verdict) scores 0, but only once a *control run* (base + test patch,
no agent change; once per task) has finished cleanly under the same timeout (for a timeout, a
control run made just then, so that an overloaded machine is not blamed on the patch;
otherwise the task's last clean control run). If the control run fails too, the verifier is
broken and the outcome is a failure (dropped by trainers, never a 0). A run that never started
(the interpreter or pytest cannot run) and a sandbox that cannot be made are failures.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from swerepair.core import Sandbox, SandboxError
from swerepair.rewards.outcome import RewardOutcome, VerifierError
from swerepair.rewards.patch import parse_patch
from swerepair.rewards.testrun import apply_patch_in
from swerepair.rewards.verifier.harness import RUNNER_MODES, harness_spec_for, run_task_tests, runner_mode
from swerepair.rewards.verifier.policy import filter_patch
from swerepair.rewards.verifier.runner import RunnerReport

__all__ = ["PatchApplies", "TestsPass", "is_valid_patch", "run_task_tests", "setup_missing"]

SandboxFactory = Callable[[Any], Sandbox]


def is_valid_patch(patch: str, task: Any = None) -> float:
    """1.0 if `patch` parses into at least one file change, else 0.0 (pure; for gates).

    >>> is_valid_patch("--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n-a\\n+b\\n"), is_valid_patch("no diff here")
    (1.0, 0.0)
    """
    return 1.0 if isinstance(patch, str) and parse_patch(patch) else 0.0


def _field(task: Any, name: str) -> Any:
    return task.get(name) if isinstance(task, dict) else getattr(task, name, None)


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


def _run_summary(report: RunnerReport) -> str:
    r = report.result
    runner = "pytest" if report.mode == "trusted" else "the test command"
    if r.timed_out:
        return "timed out"
    if r.killed_reason:
        return f"was killed: {r.killed_reason}"
    if report.aborted:
        return f"aborted: {report.aborted}"
    if not report.finished:
        return f"ended before {runner} returned (exit {r.exit_code}): {r.output.strip()[-300:]}"
    if not report.reported:
        return f"reported no verdict at all ({runner} exited {report.exit_code})"
    return f"{runner} exited {report.exit_code}"


def _changed_paths(sandbox: Sandbox, timeout: float) -> set[str] | None:
    """Paths git sees changed (tracked or untracked) in the sandbox's workspace; None if git failed."""
    result = sandbox.run(
        "git -c core.quotepath=false status --porcelain=v1 -z --untracked-files=all --no-renames", timeout
    )
    if not result.ok:
        return None
    return {entry[3:] for entry in result.output.split("\0") if len(entry) > 3}


def setup_missing(sandbox: Sandbox, task: Any, timeout: float) -> str | None:
    """Why the sandbox does not start where `task` says it does, or None.

    A task whose bug is a diff on top of its image's checkout (SWE-smith: ``extra["setup_patch"]``,
    `swerepair.envs.sources`) is only gradable in a sandbox that applied that diff at the start:
    elsewhere the bug is simply absent and an empty patch would pass. That is checked (the diff
    must apply in reverse) and reported, never scored."""
    extra = task if isinstance(task, dict) else getattr(task, "extra", None)
    setup = extra.get("setup_patch") if isinstance(extra, Mapping) else None
    if not isinstance(setup, str) or not setup.strip():
        return None
    check = sandbox.run("git -c safe.directory=* apply --check -R --whitespace=nowarn -", timeout, stdin=setup)
    if check.ok:
        return None
    return (
        "the sandbox does not start from the task's setup patch (the bug): the sandbox must apply extra['setup_patch']"
    )


def _setup_paths(task: Any) -> set[str]:
    """The files a task's setup patch changes: a sandbox that applied it at the start shows them
    changed against the image's commit, with no agent involved."""
    extra = task if isinstance(task, dict) else getattr(task, "extra", None)
    setup = extra.get("setup_patch") if isinstance(extra, Mapping) else None
    if not isinstance(setup, str):
        return set()
    return {p for fp in parse_patch(setup) for p in (fp.old_path, fp.new_path) if p}


def _clean(report: RunnerReport | None) -> bool:
    """A run that says something about the tests: finished, untampered, not broken."""
    return report is not None and report.clean


class TestsPass(_SandboxReward):
    """Resolved (1/0) by running the task's tests on the patched code (see the module docstring).

    Args:
        sandbox_factory: makes a fresh sandbox for a task (the env passes its own).
        timeout: seconds for one test run; a patched run past it scores 0 if the control run
            finished within it, else the outcome is a failure.
        runner: ``"auto"`` (each task's own, `runner_mode`), ``"trusted"`` or ``"harness"``
            for every task.
    """

    __test__ = False  # not a pytest test class
    name = "tests_pass"

    def __init__(self, sandbox_factory: SandboxFactory, timeout: float = 300.0, runner: str = "auto") -> None:
        super().__init__(sandbox_factory, timeout)
        if runner != "auto" and runner not in RUNNER_MODES:
            raise ValueError(f"runner must be 'auto' or one of {RUNNER_MODES}, got {runner!r}")
        self.runner = runner
        self._reference: OrderedDict[tuple[str, str, str], RunnerReport] = OrderedDict()
        self._lock = threading.Lock()

    def _mode(self, task: Any) -> str:
        return runner_mode(task) if self.runner == "auto" else self.runner

    # -- reference runs (control: base + test patch; gold: + gold patch), once per task ------
    def _reference_run(self, task: Any, which: str, *, fresh: bool = False) -> RunnerReport | None:
        """The `which` run (``control``: base + test patch; ``gold``: + gold patch) of `task`.

        A run that finished cleanly is kept for the task; one that did not is not kept (the
        machine may have been overloaded), and `fresh` always runs it again (a timeout must be
        judged against how long the tests take now)."""
        key = (str(_field(task, "instance_id")), which, self._mode(task))
        with self._lock:
            cached = None if fresh else self._reference.get(key)
        if cached is not None:
            return cached
        report: RunnerReport | None = None
        try:
            sandbox = self.sandbox_factory(task)
            try:
                if setup_missing(sandbox, task, self.timeout):
                    raise SandboxError("no setup patch")
                patches = [_field(task, "patch") or ""] if which == "gold" else []
                for p in [*patches, _field(task, "test_patch") or ""]:
                    if not apply_patch_in(sandbox, p, self.timeout).ok:
                        raise SandboxError(f"the {which} run's patches do not apply")
                report = run_task_tests(sandbox, task, self._tests(task), self.timeout, self._mode(task))
            finally:
                sandbox.close()
        except SandboxError:
            return None
        if _clean(report):
            with self._lock:
                self._reference[key] = report
                while len(self._reference) > 512:
                    self._reference.popitem(last=False)
        return report

    @staticmethod
    def _tests(task: Any) -> list[str]:
        return [*(_field(task, "FAIL_TO_PASS") or ()), *(_field(task, "PASS_TO_PASS") or ())]

    def _control_is_clean(self, task: Any, *, fresh: bool) -> bool:
        return _clean(self._reference_run(task, "control", fresh=fresh))

    # -- the evaluation -------------------------------------------------------------------
    def _evaluate_in(self, sandbox: Sandbox, patch: str, task: Any) -> RewardOutcome:
        f2p = tuple(_field(task, "FAIL_TO_PASS") or ())
        p2p = tuple(_field(task, "PASS_TO_PASS") or ())
        zero = {
            "resolved": 0.0,
            "tests_passed_fraction": 0.0,
            "fail_to_pass_fraction": 0.0,
            "pass_to_pass_fraction": 0.0,
            "tampered": 0.0,
        }
        if not f2p and not p2p:
            return RewardOutcome.failure("the task lists no tests (FAIL_TO_PASS and PASS_TO_PASS are empty)")
        missing = setup_missing(sandbox, task, self.timeout)
        if missing:
            return RewardOutcome.failure(missing)
        mode = self._mode(task)
        spec = harness_spec_for(task, mode)
        kept = filter_patch(
            patch,
            _field(task, "test_patch") or "",
            _field(task, "patch") or "",
            [*f2p, *p2p],
            protected=spec.protected if spec is not None else (),
        )
        details: dict[str, Any] = {
            "runner": mode,
            "applied_files": list(kept.applied),
            "dropped_files": [{"path": p, "why": why} for p, why in kept.dropped],
        }
        applies = {"patch_applies": 1.0 if kept.patch.strip() else 0.0}
        if kept.flags:
            details["flags"] = [{"path": p, "what": what} for p, what in kept.flags]
            runner_files = [p for p, what in kept.flags if "protected file" in what]
            details["zero_because"] = (
                f"the patch changes the test runner's own files ({', '.join(runner_files[:3])})"
                if runner_files
                else "added code reaches into the test runner"
            )
            return RewardOutcome(0.0, zero | applies | {"tampered": 1.0}, details=details)
        if kept.patch.strip() and not apply_patch_in(sandbox, kept.patch, self.timeout).ok:
            details["zero_because"] = "the patch does not apply"
            return RewardOutcome(0.0, zero | {"patch_applies": 0.0}, details=details)
        # Ground truth, whatever the parsing above believed: git's own account of what changed.
        changed = _changed_paths(sandbox, self.timeout)
        allowed = set(kept.touched) | _setup_paths(task)
        if changed is None:
            return RewardOutcome.failure("git status failed in the verifier sandbox", applies, details)
        if changed - allowed:
            details["flags"] = [
                {"path": p, "what": "changed by the applied patch outside the policy"}
                for p in sorted(changed - allowed)
            ]
            details["zero_because"] = "the applied patch changed files the policy keeps out"
            return RewardOutcome(0.0, zero | applies | {"tampered": 1.0}, details=details)
        if not apply_patch_in(sandbox, _field(task, "test_patch") or "", self.timeout).ok:
            details["zero_because"] = "the patch conflicts with the test patch"
            return RewardOutcome(0.0, zero | applies, details=details)
        report = run_task_tests(sandbox, task, [*f2p, *p2p], self.timeout, mode)
        if report.command:
            details["command"] = report.command
        if not report.started and not report.result.timed_out:
            return RewardOutcome.failure(
                f"the test runner could not start (exit {report.result.exit_code}): "
                f"{report.result.output.strip()[-500:]}",
                applies,
                details,
            )
        if report.broken:
            summary = _run_summary(report)
            if not self._control_is_clean(task, fresh=report.result.timed_out):
                return RewardOutcome.failure(
                    f"the test run {summary}, and so did the control run without the patch", applies, details
                )
            details["zero_because"] = f"the patched test run {summary}; without the patch it finishes"
            return RewardOutcome(0.0, zero | applies, details=details)
        plugins = sorted(set(report.plugins) & set(kept.applied))
        problems = list(report.problems) + [f"{p} registered as a pytest plugin" for p in plugins]
        if report.sentinels:
            details["sentinels"] = dict(report.sentinels)
        if report.sentinels.get("pass") == "MISSING" and any(report.verdict(t) == "PASSED" for t in (*f2p, *p2p)):
            # Tests passed but the sentinel that must pass is missing: a runner that reports the
            # task's tests without running them, unless this repository's collection never
            # picks the sentinel up, which the control run (no agent change) shows.
            control = self._reference_run(task, "control")
            if control is not None and control.sentinels.get("pass") == "PASSED":
                problems.append("the sentinel test that must pass was not reported, though the control run reports it")
            else:
                details["sentinels_unchecked"] = "the control run does not report the sentinels either"
        if problems:
            details["runner_problems"] = problems
            details["zero_because"] = "the test run was tampered with"
            return RewardOutcome(0.0, zero | applies | {"tampered": 1.0}, details=details)
        gold: RunnerReport | None = None
        if any(report.verdict(t) == "XFAIL" for t in (*f2p, *p2p)):
            gold = self._reference_run(task, "gold")

        def passed(test_id: str) -> bool:
            verdict = report.verdict(test_id)
            if verdict == "XFAIL":
                return gold is not None and gold.verdict(test_id) == "XFAIL"
            return verdict == "PASSED"

        f2p_ok = sum(passed(t) for t in f2p)
        p2p_ok = sum(passed(t) for t in p2p)
        resolved = float(f2p_ok == len(f2p) and p2p_ok == len(p2p))
        if not resolved:
            failing = [t for t in (*f2p, *p2p) if not passed(t)]
            details["not_passing"] = {t: report.verdict(t) for t in failing[:20]}
        return RewardOutcome(
            resolved,
            zero
            | applies
            | {
                "resolved": resolved,
                "tests_passed_fraction": (f2p_ok + p2p_ok) / (len(f2p) + len(p2p)),
                "fail_to_pass_fraction": f2p_ok / len(f2p) if f2p else 1.0,
                "pass_to_pass_fraction": p2p_ok / len(p2p) if p2p else 1.0,
            },
            details=details,
        )
