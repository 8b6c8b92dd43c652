"""Run tests through the trusted runner and read its report.

The runner (``_runner_main.py``, sent as the source of ``python -I -B -c``) imports pytest
before anything of the repository, puts the repository at the end of ``sys.path``, adds four
**sentinel tests** (two that must fail, two that must pass, at both ends of the session), and
reports each test's verdict as a line ``<nonce> <json>`` on a private copy of stdout. The nonce
is random per run and reaches the runner on stdin, so text the tests print (``PASSED x``) is
never read as a verdict. When pytest returns, the runner checks that pytest's and pluggy's
reporting machinery is still the same objects it imported, that no pytest module was replaced
and that the sentinels got the verdicts they must; anything else is a *problem* in the report.

What a report can say:
- it never started: the interpreter or pytest could not run (infrastructure);
- it started but never finished: the process crashed, exited early, hung or was killed
  (whose fault that is, the caller decides, see `swerepair.rewards.tests_pass`);
- it finished, with verdicts, collection errors, problems, the requested ids that name no
  test (``not_found``: pytest is given the ids' files and the items are narrowed to the ids, so
  one id that does not exist no longer stops the session) and the repository files that
  registered themselves as pytest plugins.

`RunnerReport` is also what the harness runner (`swerepair.rewards.verifier.harness`) returns,
with ``mode="harness"``, so that `swerepair.rewards.tests_pass` judges both the same way.
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from swerepair.core import ExecResult, Sandbox

__all__ = ["BROKEN_SESSION", "RunnerReport", "run_trusted", "runner_source"]

#: pytest exit statuses that say the session itself broke (internal error, usage error).
BROKEN_SESSION = (3, 4)


@lru_cache(maxsize=1)
def runner_source() -> str:
    """The trusted runner's Python source."""
    return (Path(__file__).with_name("_runner_main.py")).read_text(encoding="utf-8")


@dataclass(frozen=True)
class RunnerReport:
    """What the trusted runner reported about one run.

    Attributes:
        started: the runner got as far as its first record (the interpreter and pytest run).
        finished: pytest returned and the runner wrote its final record.
        verdicts: test id -> PASSED / FAILED / ERROR / SKIPPED / XFAIL / XPASS, as pytest's
            own reports said (sentinels excluded); ids the runner never reported are absent.
        exit_code: pytest's exit status when `finished`, else ``None``.
        problems: tampering the runner found (replaced pytest internals, sentinels with the
            wrong verdict); empty when none.
        plugins: repository files (relative paths) registered as pytest plugins.
        collect_errors: node ids that failed to collect.
        aborted: the exception that escaped pytest, if one did.
        result: the raw command result (its output is pytest's console output).
        not_found: requested id -> why the runner found no such test (``no such file or
            directory``, ``not collected: no such test``); their verdict is ``MISSING``.
        mode: ``"trusted"`` (this runner) or ``"harness"`` (the repository's own runner).
        sentinels: the harness runner's sentinel tests, ``{"pass": verdict, "fail": verdict}``
            (``MISSING`` where the runner did not report one); empty where it adds none. The
            trusted runner checks its own sentinels and reports a wrong one as a problem.
        reported: the runner reported at least one verdict (sentinels included).
        command: the test command the harness runner ran (empty for the trusted runner).
    """

    started: bool
    finished: bool
    verdicts: Mapping[str, str]
    exit_code: int | None
    problems: tuple[str, ...]
    plugins: tuple[str, ...]
    collect_errors: tuple[str, ...]
    aborted: str | None
    result: ExecResult = field(repr=False)
    not_found: Mapping[str, str] = field(default_factory=dict)
    mode: str = "trusted"
    sentinels: Mapping[str, str] = field(default_factory=dict)
    reported: bool = True
    command: str = ""

    def verdict(self, test_id: str) -> str:
        """The verdict of `test_id`, ``MISSING`` if it was not reported."""
        return self.verdicts.get(test_id, "MISSING")

    @property
    def broken(self) -> bool:
        """The run says nothing about the tests: it did not finish, pytest's session itself broke
        (trusted runner), or the runner finished without reporting a single verdict (harness)."""
        if not self.finished:
            return True
        if self.mode == "trusted":
            return self.exit_code in BROKEN_SESSION
        return not self.reported

    @property
    def clean(self) -> bool:
        """A run that says something about the tests: not broken, and no tampering found."""
        return not self.broken and not self.problems


def parse_records(output: str, nonce: str) -> list[dict[str, object]]:
    """The runner's records in `output`: lines that start with the nonce (other text ignored).

    >>> parse_records('PASSED x\\nN {"kind": "start"}\\nN junk\\n', "N")
    [{'kind': 'start'}]
    """
    records: list[dict[str, object]] = []
    prefix = nonce + " "
    for line in output.splitlines():
        if not line.startswith(prefix):
            continue
        try:
            record = json.loads(line[len(prefix) :])
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def run_trusted(sandbox: Sandbox, test_ids: Sequence[str], timeout: float, python: str = "python") -> RunnerReport:
    """Run `test_ids` with the trusted runner in `sandbox` (non-restricted shell)."""
    nonce = secrets.token_hex(16)
    config = json.dumps({"nonce": nonce, "tests": list(test_ids)})
    cmd = f"exec {shlex.quote(python)} -I -B -c {shlex.quote(runner_source())}"
    run = sandbox.run
    try:
        result = run(cmd, timeout, stdin=config + "\n", max_output_bytes=16 << 20)
    except TypeError:  # a user's sandbox without the output-limit keyword
        result = run(cmd, timeout, stdin=config + "\n")
    records = parse_records(result.output, nonce)
    kinds = {r.get("kind") for r in records}
    verdicts: dict[str, str] = {}
    finish: Mapping[str, object] = {}
    collect_errors: list[str] = []
    not_found: dict[str, str] = {}
    aborted: str | None = None
    sentinel = f"swerepair_sentinel_{nonce[:12]}_"
    for r in records:
        kind = r.get("kind")
        if kind == "verdict" and isinstance(r.get("nodeid"), str) and sentinel not in str(r["nodeid"]):
            verdicts[str(r["nodeid"])] = str(r.get("verdict"))
        elif kind == "collect_error":
            collect_errors.append(str(r.get("nodeid")))
        elif kind == "not_found" and isinstance(r.get("nodeid"), str):
            not_found[str(r["nodeid"])] = str(r.get("why"))
        elif kind == "aborted":
            aborted = str(r.get("error"))
        elif kind == "finish":
            finish = r
    exit_code = finish.get("exit_code") if finish else None
    problems = finish.get("problems", []) if finish else []
    plugins = finish.get("plugins", []) if finish else []
    return RunnerReport(
        started="start" in kinds,
        finished=bool(finish) and not result.timed_out and result.killed_reason is None,
        verdicts=verdicts,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        problems=tuple(str(p) for p in problems) if isinstance(problems, list) else ("malformed report",),
        plugins=tuple(str(p) for p in plugins) if isinstance(plugins, list) else (),
        collect_errors=tuple(collect_errors),
        aborted=aborted,
        result=result,
        not_found=not_found,
        reported=bool(verdicts) or any(r.get("kind") == "verdict" for r in records),
    )
