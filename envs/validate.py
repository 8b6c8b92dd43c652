"""Task validation: prove, inside the sandbox, that each task is what it claims to be.

For every task, in a fresh workspace at its base commit with the test patch applied:

1. every FAIL_TO_PASS test fails and every PASS_TO_PASS test passes;
2. after applying the gold patch, every FAIL_TO_PASS and PASS_TO_PASS test passes.

The tests run under the runner the reward uses for the task
(`swerepair.rewards.verifier.harness.runner_mode`): the trusted pytest runner, or the
repository's own runner read by its harness parser for tasks of the SWE-bench family. A test id
the runner does not know is reported as *not found*, once, with the runner's reason; the other
tests still run and are judged (one wrong id no longer makes every test MISSING), and a task
that fails is printed with what its existing tests did before and after the fix. A harness run
whose sentinel tests get the wrong verdict is reported too.

``swerepair tasks validate`` runs this over a task set and prints one line per task.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

from swerepair.core import Sandbox, SandboxError, Task
from swerepair.rewards.testrun import TestRun, apply_patch_in, run_tests
from swerepair.rewards.tests_pass import setup_missing

__all__ = ["ValidationResult", "validate_task", "validate_tasks"]


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on one task.

    Attributes:
        instance_id: the task.
        ok: every check held.
        problems: what did not hold, one sentence each.
        before / after: test id -> verdict without and with the gold patch.
        seconds: wall-clock time of the validation.
    """

    instance_id: str
    ok: bool
    problems: tuple[str, ...] = ()
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    not_found: dict[str, str] = field(default_factory=dict)

    def outcomes(self, task: Task) -> list[str]:
        """What the tests that exist did, per side and run: ``before the fix: FAIL_TO_PASS 2
        failed; PASS_TO_PASS 100 passed`` (ids in `not_found` are left out: they are named
        among the problems with the runner's message)."""
        lines = []
        for when, verdicts in (("before the fix", self.before), ("after the fix", self.after)):
            if not verdicts:
                continue
            parts = []
            for side, ids in (("FAIL_TO_PASS", task.FAIL_TO_PASS), ("PASS_TO_PASS", task.PASS_TO_PASS)):
                counts = Counter(verdicts.get(t, "MISSING").lower() for t in ids if t not in self.not_found)
                if counts:
                    parts.append(f"{side} " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
            if parts:
                lines.append(f"{when}: " + "; ".join(parts))
        return lines


def _run(sandbox: Sandbox, task: Task, timeout: float) -> TestRun:
    return run_tests(sandbox, [*task.FAIL_TO_PASS, *task.PASS_TO_PASS], timeout, task=task)


def _not_found(run: TestRun, seen: set[str]) -> list[str]:
    """One line per id the runner does not know (each id once per task)."""
    lines = []
    for test_id, why in run.not_found.items():
        if test_id not in seen:
            seen.add(test_id)
            lines.append(f"{test_id} not found ({why})")
    return lines


def _run_problems(run: TestRun, when: str) -> list[str]:
    found = [f"the test run {when} was not clean: {p}" for p in run.problems]
    if run.started and not run.finished and not run.result.timed_out:
        tail = run.result.output.strip()[-300:]
        found.append(f"the test run {when} did not finish or reported nothing: {tail}")
    return found


def validate_task(task: Task, make_sandbox: Callable[[Task], Sandbox], timeout: float = 300.0) -> ValidationResult:
    """Validate one task in a sandbox from `make_sandbox`; never raises for a broken task."""
    start = time.monotonic()
    problems: list[str] = []
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    not_found: dict[str, str] = {}
    try:
        sandbox = make_sandbox(task)
    except SandboxError as exc:
        return ValidationResult(task.instance_id, False, (f"sandbox: {exc}",), seconds=time.monotonic() - start)
    try:
        missing = setup_missing(sandbox, task, timeout)
        applied = apply_patch_in(sandbox, task.test_patch)
        unknown: set[str] = set()
        if missing:
            problems.append(missing)
        elif not applied.ok:
            problems.append(f"the test patch does not apply: {applied.output.strip()[:300]}")
        else:
            run = _run(sandbox, task, timeout)
            before = dict(run.verdicts)
            not_found.update(run.not_found)
            if run.infrastructure_failure:
                problems.append(f"tests could not run before the fix: {run.result.output.strip()[-300:]}")
            problems += _not_found(run, unknown) + _run_problems(run, "before the fix")
            problems += [f"FAIL_TO_PASS {t} passes before the fix" for t in task.FAIL_TO_PASS if run.passed(t)]
            problems += [
                f"PASS_TO_PASS {t} is {run.verdicts[t]} before the fix"
                for t in task.PASS_TO_PASS
                if not run.passed(t) and t not in unknown
            ]
            applied = apply_patch_in(sandbox, task.patch)
            if not applied.ok:
                problems.append(f"the gold patch does not apply: {applied.output.strip()[:300]}")
            else:
                run = _run(sandbox, task, timeout)
                after = dict(run.verdicts)
                not_found.update(run.not_found)
                problems += _not_found(run, unknown) + _run_problems(run, "after the fix")
                problems += [
                    f"{t} is {run.verdicts[t]} after the fix"
                    for t in (*task.FAIL_TO_PASS, *task.PASS_TO_PASS)
                    if not run.passed(t) and t not in unknown
                ]
    except SandboxError as exc:
        problems.append(f"sandbox: {exc}")
    finally:
        sandbox.close()
    return ValidationResult(
        task.instance_id, not problems, tuple(problems), before, after, time.monotonic() - start, dict(not_found)
    )


def validate_tasks(
    tasks: Sequence[Task],
    make_sandbox: Callable[[Task], Sandbox],
    *,
    jobs: int = 1,
    timeout: float = 300.0,
    out: TextIO | str | None = "stderr",
) -> list[ValidationResult]:
    """Validate `tasks` with `jobs` in parallel, printing ``[i/n] id ok|FAIL (s)`` as each ends
    to `out` (``"stderr"``: the `sys.stderr` of the moment of the call; None: nothing)."""
    results: list[ValidationResult] = []
    stream: TextIO | None = sys.stderr if isinstance(out, str) else out

    def one(task: Task) -> ValidationResult:
        return validate_task(task, make_sandbox, timeout)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for task, res in zip(tasks, pool.map(one, tasks), strict=True):
            results.append(res)
            if stream is not None:
                status = "ok" if res.ok else "FAIL"
                print(f"[{len(results)}/{len(tasks)}] {res.instance_id} {status} ({res.seconds:.1f}s)", file=stream)
                for p in res.problems:
                    print(f"    {p}", file=stream)
                if not res.ok:  # what the tests that exist did, so one bad claim does not hide the rest
                    for line in res.outcomes(task):
                        print(f"    {line}", file=stream)
                stream.flush()
    return results
