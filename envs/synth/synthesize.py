"""Task synthesis: validated bug-repair tasks from a local Python repository, in the sandbox.

`synthesize(repo, out, SynthConfig(...))` (``swerepair tasks synth``) does, in order:

1. **Baseline.** The repository's committed ``HEAD`` runs its test files twice in a fresh
   sandbox (the trusted runner of `swerepair.rewards.verifier.runner`); the tests that pass
   both times are the ones a task may use. The time budget of one test run is
   ``time_budget_s`` (default: five times the baseline, at least 20 s).
2. **Candidates.** The bug makers (`swerepair.envs.synth.mutators`) propose one-spot changes
   to every non-test Python file; identical results are merged; lines in ``exclude_lines``
   are left alone. The candidates are shuffled with ``seed``, maker by maker, and interleaved
   so that every maker gets its turn.
3. **Validation.** Each candidate is written into a fresh sandbox and the tests run: it is
   kept only when at least one baseline-passing test fails (FAIL_TO_PASS), a second run gives
   the same verdicts, no run breaks collection or crashes, and each run ends within the time
   budget. PASS_TO_PASS is every other baseline-passing test. Candidates are tried in order,
   in batches of `BATCH` across ``jobs`` workers, skipping those whose function or file has
   already reached ``max_per_function`` / ``max_per_file`` kept tasks, until ``limit`` tasks
   are kept; the result does not depend on ``jobs``.
4. **History** (``history=True``): commits mined by `swerepair.envs.synth.history`, validated
   at their parent commit with their test patch (FAIL_TO_PASS fails before the fix and passes
   after it, twice).
5. **Tasks.** Each kept mutant gets its own root commit (the buggy tree, fixed author and
   date, so the shas are reproducible) in a task-set repository, and each history task a
   branch at its parent; all of them go into one git bundle next to the task file. The gold
   ``patch`` is ``git diff`` from the buggy commit to ``HEAD``; ``test_patch`` is empty for
   mutants (the tests that catch the bug are already in the tree). The issue text comes from
   `swerepair.envs.synth.issues`.

Written: the task file (JSONL, SWE-bench schema, ``repo_source`` naming the bundle), the bundle,
a log with one line per candidate, and ``<out>.stats.json`` with the counts per bug maker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shlex
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from swerepair.core import Sandbox, SandboxError, Task
from swerepair.envs.sandbox import SandboxConfig, make_sandbox, resolve_kind
from swerepair.envs.synth.history import DIFF_FLAGS, HistoryCandidate, git_out, history_candidates
from swerepair.envs.synth.issues import IssueRewriter, facts_for, issue_text, parse_failures, test_function_source
from swerepair.envs.synth.mutators import MAKERS, Edit, apply_edit, candidates
from swerepair.rewards.patch import is_test_path, parse_patch
from swerepair.rewards.testrun import apply_patch_in
from swerepair.rewards.verifier.runner import RunnerReport, run_trusted

__all__ = ["BATCH", "FIXED_DATE", "SynthConfig", "SynthError", "SynthResult", "synthesize"]

#: Author and committer date of every synthesized commit (reproducible shas).
FIXED_DATE = "2026-01-01T00:00:00+00:00"
#: Candidates validated between two decisions on the caps (fixed, so that ``jobs`` does not
#: change which candidates are kept).
BATCH = 16
#: Files never mutated: packaging, test configuration, documentation builds.
_NOT_SOURCE = ("setup.py", "conftest.py", "noxfile.py", "fabfile.py", "manage.py")
_NOT_SOURCE_DIRS = ("docs", "doc", "examples", "example", "benchmarks", "scripts", "build", "dist")
#: How the failing tests are run once more for the issue text: short tracebacks.
_SHORT_PYTEST = "python -m pytest -p no:cacheprovider -q --tb=short --color=no -o console_output_style=classic"


class SynthError(ValueError):
    """Synthesis cannot start: a bad argument or a repository it cannot use (one line)."""


@dataclass(frozen=True)
class SynthConfig:
    """The knobs of `synthesize`.

    Attributes:
        seed: orders the candidates and picks the issue templates; the same seed (and
            repository, settings and machine behaviour) gives the same task file.
        makers: bug makers to use (default: all of `swerepair.envs.synth.mutators.MAKERS`);
            empty: no mutants (history only).
        max_per_file / max_per_function: at most this many kept tasks per source file / per
            function (module and class level count as one "function" per file); None: no cap.
        limit: stop once this many tasks are kept (None: try every candidate).
        jobs: candidates validated in parallel.
        history: also mine the history (`swerepair.envs.synth.history`), newest first.
        max_commits: how many commits history mining looks at.
        python: the interpreter that runs the tests in the sandbox (default: swerepair's own).
        sandbox: ``auto``, ``bubblewrap``, ``gvisor`` or ``local``.
        tests: test files or folders to run (default: every ``test_*.py``/``*_test.py`` that
            `swerepair.rewards.patch.is_test_path` calls a test).
        paths: files or folders whose code may be changed (default: every non-test ``.py``).
        time_budget_s: limit of one test run (default: 5x the baseline run, at least 20 s).
        repo_name: the rows' ``repo`` (default ``local/<directory name>``).
        id_prefix: start of every instance id (default: ``repo_name`` with ``/`` -> ``__``).
        exclude_lines: ``{path: line numbers}`` no candidate may touch (e.g. the lines of
            hand-written tasks held out for evaluation); counted as ``held_out``.
        rewrite_issue: optional ``(text, facts) -> text`` rewriting each issue (an LLM).
        max_fail_to_pass: drop a candidate that fails more tests than this (None: no limit).
        cache: a JSONL file of validation outcomes, read at the start and appended to as
            candidates are validated: a rerun (after an interruption, or to regenerate the
            issue texts) tries again only what it does not find there. Keyed by the commit, the
            change, the test files, the baseline's passing tests and ``time_budget_s``.
    """

    seed: int = 0
    makers: Sequence[str] | None = None
    max_per_file: int | None = 20
    max_per_function: int | None = 2
    limit: int | None = None
    jobs: int = 1
    history: bool = False
    max_commits: int = 200
    python: str | None = None
    sandbox: str = "auto"
    tests: Sequence[str] | None = None
    paths: Sequence[str] | None = None
    time_budget_s: float | None = None
    repo_name: str | None = None
    id_prefix: str | None = None
    exclude_lines: Mapping[str, Collection[int]] = field(default_factory=dict)
    rewrite_issue: IssueRewriter | None = None
    max_fail_to_pass: int | None = None
    cache: str | Path | None = None


@dataclass
class SynthResult:
    """What `synthesize` made.

    Attributes:
        rows: the task rows written (SWE-bench schema).
        out / bundle / log / stats_path: the files written (bundle is None without tasks).
        stats: the counts written to ``stats_path`` (see `synthesize`).
        warnings: things the caller should tell the user.
    """

    rows: list[dict[str, Any]]
    out: Path
    bundle: Path | None
    log: Path
    stats_path: Path
    stats: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Candidate:
    index: int
    kind: str  # "mutation" or "history"
    maker: str
    path: str
    function: str
    edit: Edit | None = None
    text: str = ""
    history: HistoryCandidate | None = None

    @property
    def where(self) -> str:
        if self.edit is not None:
            return f"{self.path}:{self.edit.line}"
        assert self.history is not None
        return self.history.commit[:12]


@dataclass
class _Outcome:
    """What validating one candidate found. ``output`` is the short-traceback run of the
    failing tests (``shown``) the issue text is written from; ``sources`` the test files it
    needs where they are not HEAD's (history tasks). Cached as JSON (`SynthConfig.cache`)."""

    kept: bool
    reason: str = ""
    detail: str = ""
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""
    shown: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "cached"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Outcome:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__}, cached=True)


def _check_config(config: SynthConfig) -> None:
    unknown = [m for m in config.makers or () if m not in MAKERS]
    if unknown:
        raise SynthError(f"unknown bug maker(s) {', '.join(unknown)}; choose from {', '.join(MAKERS)}")
    for name in ("max_per_file", "max_per_function", "limit", "max_fail_to_pass"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise SynthError(f"{name} must be a positive integer or None, got {value!r}")
    if not isinstance(config.jobs, int) or config.jobs < 1:
        raise SynthError(f"jobs must be a positive integer, got {config.jobs!r}")
    if config.max_commits < 1:
        raise SynthError(f"max_commits must be positive, got {config.max_commits}")
    if config.time_budget_s is not None and config.time_budget_s <= 0:
        raise SynthError(f"time_budget_s must be positive, got {config.time_budget_s}")
    if config.python is not None and not (os.path.isfile(config.python) and os.access(config.python, os.X_OK)):
        raise SynthError(f"--python {config.python}: no such executable")
    try:
        resolve_kind(config.sandbox)
    except ValueError as exc:
        raise SynthError(str(exc)) from None


def _head(repo: Path) -> str:
    if not repo.is_dir():
        raise SynthError(f"{repo} is not a directory")
    try:
        top = git_out(repo, "rev-parse", "--show-toplevel").strip()
        head = git_out(repo, "rev-parse", "--verify", "HEAD^{commit}").strip()
    except RuntimeError:
        raise SynthError(
            f"{repo} is not a git repository with a commit (synthesis starts from HEAD: git init && git add -A "
            "&& git commit)"
        ) from None
    if Path(top).resolve() != repo.resolve():
        raise SynthError(f"{repo} is inside the repository {top}; pass its top level")
    return head


def _slug(name: str) -> str:
    return name.replace("/", "__")


def _under(path: str, roots: Sequence[str] | None) -> bool:
    if not roots:
        return True
    return any(path == r.rstrip("/") or path.startswith(r.rstrip("/") + "/") for r in roots)


def _files(repo: Path, head: str) -> list[str]:
    return [p for p in git_out(repo, "ls-tree", "-r", "--name-only", "-z", head).split("\0") if p]


def _is_test_module(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.endswith(".py") and is_test_path(path) and (name.startswith("test_") or name.endswith("_test.py"))


def _is_source(path: str) -> bool:
    parts = path.split("/")
    return (
        path.endswith(".py")
        and not is_test_path(path)
        and parts[-1] not in _NOT_SOURCE
        and not any(p.startswith(".") for p in parts)
        and parts[0] not in _NOT_SOURCE_DIRS
    )


def _problem(report: RunnerReport) -> str | None:
    """Why a test run says nothing usable about the tests, or None."""
    if report.result.timed_out:
        return "over the time budget"
    if report.result.killed_reason:
        return "exceeds the sandbox's resources"
    if not report.started:
        return "the test runner did not start"
    if report.collect_errors or report.exit_code == 2:
        return "breaks test collection"
    if not report.finished:
        return "crashes the test run"
    if report.exit_code in (3, 4) or report.problems:
        return "breaks the test run"
    return None


class _Synthesizer:
    def __init__(self, repo: Path, config: SynthConfig, log: TextIO) -> None:
        self.repo = repo
        self.config = config
        self.log = log
        self.kind = resolve_kind(config.sandbox)
        self.sconfig = SandboxConfig(python=config.python) if config.python else SandboxConfig()
        self.head = _head(repo)
        self.repo_name = config.repo_name or f"local/{repo.resolve().name}"
        self.prefix = config.id_prefix or _slug(self.repo_name)
        self.source_task = self._task(self.head)
        self.files = _files(repo, self.head)
        self.test_files = sorted(f for f in self.files if _is_test_module(f) and _under(f, config.tests))
        if not self.test_files:
            where = f" under {', '.join(config.tests)}" if config.tests else ""
            raise SynthError(f"no test files (test_*.py, *_test.py) in {repo} at HEAD{where}")
        self.passing: list[str] = []
        self.budget = 0.0
        self.stats: dict[str, Any] = {}

    def _task(self, commit: str) -> Task:
        return Task(
            instance_id=f"{self.prefix}.source",
            repo=self.repo_name,
            base_commit=commit,
            problem_statement="",
            patch="",
            test_patch="",
            FAIL_TO_PASS=(),
            PASS_TO_PASS=(),
            repo_source=str(self.repo.resolve()),
        )

    def sandbox(self, task: Task | None = None) -> Sandbox:
        return make_sandbox(self.kind, task or self.source_task, self.sconfig)

    def say(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()

    # -- 1. baseline -------------------------------------------------------------------------
    def baseline(self) -> None:
        timeout = self.config.time_budget_s or 600.0
        runs: list[RunnerReport] = []
        seconds: list[float] = []
        for _ in range(2):
            start = time.monotonic()
            try:
                with self.sandbox() as sb:
                    runs.append(run_trusted(sb, self.test_files, timeout))
            except SandboxError as exc:
                raise SynthError(f"the sandbox cannot run the tests at HEAD: {exc}") from None
            seconds.append(time.monotonic() - start)
            problem = _problem(runs[-1])
            if problem and problem != "breaks test collection":
                tail = runs[-1].result.output.strip()[-300:].replace("\n", " | ")
                raise SynthError(f"the tests at HEAD cannot be used: {problem}: {tail}")
        first, second = runs
        every = sorted(set(first.verdicts) | set(second.verdicts))
        self.passing = [t for t in every if first.verdict(t) == "PASSED" and second.verdict(t) == "PASSED"]
        flaky = [t for t in every if first.verdict(t) != second.verdict(t)]
        if not self.passing:
            raise SynthError(f"no test passes at HEAD ({len(every)} reported); a task needs passing tests to break")
        self.budget = self.config.time_budget_s or max(20.0, 5.0 * max(seconds))
        self.stats["baseline"] = {
            "tests": len(every),
            "passing": len(self.passing),
            "flaky": len(flaky),
            "collect_errors": sorted(set(first.collect_errors)),
            "seconds": round(max(seconds), 2),
        }
        self.stats["time_budget_s"] = round(self.budget, 2)
        self.say(
            f"baseline: {len(every)} tests, {len(self.passing)} pass twice, {len(flaky)} flaky; "
            f"run {max(seconds):.1f}s; time budget {self.budget:.1f}s"
        )

    # -- 2. candidates -----------------------------------------------------------------------
    def mutation_candidates(self, counts: dict[str, Counter[str]]) -> list[_Candidate]:
        makers = list(self.config.makers) if self.config.makers is not None else list(MAKERS)
        by_maker: dict[str, list[_Candidate]] = {m: [] for m in makers}
        excluded = {p: set(lines) for p, lines in self.config.exclude_lines.items()}
        for path in self.files:
            if not _is_source(path) or not _under(path, self.config.paths):
                continue
            text = git_out(self.repo, "show", f"{self.head}:{path}")
            dropped: Counter[tuple[str, str]] = Counter()
            for edit in candidates(text, path, makers, dropped=dropped):
                counts[edit.maker]["generated"] += 1
                if excluded.get(path, set()) & set(range(edit.line, edit.end_line + 1)):
                    counts[edit.maker]["held_out"] += 1
                    continue
                by_maker[edit.maker].append(
                    _Candidate(0, "mutation", edit.maker, path, edit.function, edit, apply_edit(text, edit))
                )
            for (maker, why), n in dropped.items():
                counts[maker]["generated"] += n
                counts[maker][why] += n
        rng = random.Random(self.config.seed)
        for group in by_maker.values():
            rng.shuffle(group)
        ordered: list[_Candidate] = []
        while any(by_maker.values()):
            for maker in makers:
                if by_maker[maker]:
                    ordered.append(by_maker[maker].pop(0))
        return ordered

    def history_candidates(self, counts: Counter[str]) -> list[_Candidate]:
        found = history_candidates(self.repo, self.config.max_commits, self.head)
        counts["generated"] += len(found)
        return [_Candidate(0, "history", "history", ",".join(h.code_files), "", history=h) for h in found]

    # -- 3. validation ---------------------------------------------------------------------------
    def _short_run(self, sb: Sandbox, failing: Sequence[str]) -> tuple[list[str], str]:
        """Run (up to 20 of) the failing tests once more, with short tracebacks, for the issue."""
        shown = list(failing[:20])
        cmd = f"{_SHORT_PYTEST} -- {' '.join(shlex.quote(t) for t in shown)}"
        try:
            return shown, sb.run(cmd, self.budget).output
        except SandboxError:
            return shown, ""

    def facts(self, cand: _Candidate, outcome: _Outcome) -> dict[str, Any]:
        """The facts of the failing test whose report reads best (a wrong value with its call,
        then an exception, then anything), from the outcome's short-traceback run."""
        changed = [cand.path] if cand.history is None else list(cand.history.code_files)
        failing = outcome.fail_to_pass
        blocks = parse_failures(outcome.output)
        best: tuple[int, int, dict[str, Any]] | None = None
        sources = dict(outcome.sources)
        for i, test_id in enumerate(t for t in outcome.shown if t in set(failing)):
            path, _, rest = test_id.partition("::")
            if path not in sources:
                try:
                    sources[path] = git_out(self.repo, "show", f"{self.head}:{path}")
                except RuntimeError:
                    sources[path] = ""
            facts = facts_for(
                test_id,
                blocks.get(rest.replace("::", ".")),
                test_source=test_function_source(sources[path], rest.split("[", 1)[0].replace("::", ".")),
                failing=failing,
                changed_paths=changed,
            )
            rank = {"wrong_value": 0, "exception": 1, "not_raised": 1}.get(facts["kind"], 3)
            if facts["kind"] != "fails" and not facts["call"]:
                rank = 2
            if best is None or (rank, i) < best[:2]:
                best = (rank, i, facts)
        return best[2] if best is not None else facts_for(failing[0], None, failing=failing)

    def try_mutation(self, cand: _Candidate) -> _Outcome:
        start = time.monotonic()
        try:
            with self.sandbox() as sb:
                sb.write_file(cand.path, cand.text)
                first = run_trusted(sb, self.test_files, self.budget)
                problem = _problem(first)
                if problem:
                    return _Outcome(False, problem, seconds=time.monotonic() - start)
                failing = [t for t in self.passing if first.verdict(t) != "PASSED"]
                if not failing:
                    return _Outcome(False, "no test fails", seconds=time.monotonic() - start)
                if self.config.max_fail_to_pass is not None and len(failing) > self.config.max_fail_to_pass:
                    return _Outcome(False, "too many tests fail", seconds=time.monotonic() - start)
                second = run_trusted(sb, self.test_files, self.budget)
                problem = _problem(second)
                if problem:
                    return _Outcome(False, problem, seconds=time.monotonic() - start)
                if any(first.verdict(t) != second.verdict(t) for t in self.passing):
                    return _Outcome(False, "nondeterministic", seconds=time.monotonic() - start)
                shown, output = self._short_run(sb, failing)
        except SandboxError as exc:
            return _Outcome(False, "sandbox error", str(exc)[:300], seconds=time.monotonic() - start)
        others = [t for t in self.passing if t not in set(failing)]
        return _Outcome(True, "", "", failing, others, time.monotonic() - start, output, shown)

    def try_history(self, cand: _Candidate) -> _Outcome:
        start = time.monotonic()
        hc = cand.history
        assert hc is not None

        def done(reason: str, detail: str = "") -> _Outcome:
            return _Outcome(False, reason, detail, seconds=time.monotonic() - start)

        try:
            with self.sandbox(self._task(hc.parent)) as sb:
                if not apply_patch_in(sb, hc.test_patch).ok:
                    return done("the test patch does not apply")
                files = [f for f in hc.test_files if _is_test_module(f) and sb.run(f"test -f {shlex.quote(f)}", 30).ok]
                if not files:
                    return done("the test patch leaves no test module to run")
                before = [run_trusted(sb, files, self.budget) for _ in range(2)]
                for report in before:
                    if report.result.timed_out or not report.started or report.result.killed_reason:
                        return done(_problem(report) or "the test run failed")
                failing_before = sorted(
                    t for t in set(before[0].verdicts) | set(before[1].verdicts) if before[0].verdict(t) != "PASSED"
                )
                # the issue is written from the failures before the fix (the fix is applied next)
                shown, output = self._short_run(sb, failing_before) if failing_before else ([], "")
                sources = {}
                for test_id in shown:
                    path = test_id.split("::", 1)[0]
                    with contextlib.suppress(SandboxError, ValueError, OSError):
                        sources.setdefault(path, sb.read_file(path))
                if not apply_patch_in(sb, hc.patch).ok:
                    return done("the fix does not apply")
                after = [run_trusted(sb, files, self.budget) for _ in range(2)]
                for report in after:
                    problem = _problem(report)
                    if problem:
                        return done(f"after the fix: {problem}")
        except SandboxError as exc:
            return done("sandbox error", str(exc)[:300])
        ids = sorted(set().union(*(r.verdicts for r in (*before, *after))))
        if any(before[0].verdict(t) != before[1].verdict(t) or after[0].verdict(t) != after[1].verdict(t) for t in ids):
            return done("nondeterministic")
        f2p = [t for t in ids if before[0].verdict(t) != "PASSED" and after[0].verdict(t) == "PASSED"]
        p2p = [t for t in ids if before[0].verdict(t) == "PASSED" and after[0].verdict(t) == "PASSED"]
        if not f2p:
            return done("no test fails before the fix and passes after it")
        return _Outcome(True, "", "", f2p, p2p, time.monotonic() - start, output, shown, sources)

    # -- the outcome cache -----------------------------------------------------------------------
    def _cache_key(self, cand: _Candidate) -> str:
        what = [cand.path, cand.text] if cand.history is None else [cand.history.commit]
        key = [cand.kind, self.head, *what, self.test_files, self.passing, self.config.time_budget_s]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()

    def load_cache(self) -> None:
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_lock = threading.Lock()
        path = self.config.cache
        if path is None or not Path(path).exists():
            return
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    record = json.loads(line)
                    self._cache[record["key"]] = record["outcome"]

    def attempt(self, cand: _Candidate) -> _Outcome:
        """Validate `cand`, or take its outcome from the cache."""
        key = self._cache_key(cand)
        cached = self._cache.get(key)
        if cached is not None:
            return _Outcome.from_json(cached)
        outcome = self.try_mutation(cand) if cand.kind == "mutation" else self.try_history(cand)
        if self.config.cache is not None and outcome.reason != "sandbox error":
            line = json.dumps({"key": key, "outcome": outcome.to_json()}) + "\n"
            with self._cache_lock, open(self.config.cache, "a", encoding="utf-8") as fh:
                fh.write(line)
        return outcome


def _function_key(cand: _Candidate) -> tuple[str, str]:
    return (cand.path, cand.function or "<module>")


def _run_all(
    syn: _Synthesizer,
    cands: list[_Candidate],
    progress: Any,
) -> dict[int, _Outcome | str]:
    """Validate `cands` in order, in fixed-size batches, honouring the caps and the limit.

    Returns index -> the outcome, or a string for a candidate never tried (``capped``,
    ``limit reached``)."""
    config = syn.config
    results: dict[int, _Outcome | str] = {}
    kept_fn: Counter[tuple[str, str]] = Counter()
    kept_file: Counter[str] = Counter()
    kept = 0
    pending = list(range(len(cands)))
    cap_fn = config.max_per_function
    cap_file = config.max_per_file

    def full(fn_count: int, file_count: int) -> bool:
        return (cap_fn is not None and fn_count >= cap_fn) or (cap_file is not None and file_count >= cap_file)

    with ThreadPoolExecutor(max_workers=config.jobs) as pool:
        while pending and (config.limit is None or kept < config.limit):
            batch: list[int] = []
            in_fn: Counter[tuple[str, str]] = Counter()
            in_file: Counter[str] = Counter()
            still: list[int] = []
            for i in pending:
                cand = cands[i]
                fkey = _function_key(cand)
                if cand.kind == "mutation" and full(kept_fn[fkey], kept_file[cand.path]):
                    results[i] = "capped"
                    progress.update(1)
                    continue
                room = cand.kind != "mutation" or not full(
                    kept_fn[fkey] + in_fn[fkey], kept_file[cand.path] + in_file[cand.path]
                )
                room = room and (config.limit is None or kept + len(batch) < config.limit)
                if room and len(batch) < BATCH:
                    batch.append(i)
                    in_fn[fkey] += 1
                    in_file[cand.path] += 1
                else:
                    still.append(i)
            pending = still
            if not batch:
                break
            for i, outcome in zip(batch, pool.map(syn.attempt, [cands[i] for i in batch]), strict=False):
                cand = cands[i]
                if outcome.kept and config.limit is not None and kept >= config.limit:
                    results[i] = "limit reached"
                else:
                    results[i] = outcome
                    if outcome.kept:
                        kept += 1
                        kept_fn[_function_key(cand)] += 1
                        kept_file[cand.path] += 1
                status = "kept" if outcome.kept else f"dropped ({outcome.reason})"
                detail = f" {outcome.detail}" if outcome.detail else ""
                what = cand.edit.description if cand.edit is not None else f"changes {cand.path} and tests"
                scope = (cand.function or "<module>") if cand.kind == "mutation" else "commit"
                syn.say(
                    f"[{i + 1}/{len(cands)}] {cand.maker} {cand.where} {scope}: {what} -> "
                    f"{status} {outcome.seconds:.1f}s{detail}"
                )
                progress.update(1)
                progress.set_postfix(kept=kept, refresh=False)
    for i in pending:
        results[i] = "limit reached"
    return results


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with swerepair[train]; without it there is no bar
        return _NoProgress()
    return tqdm(total=total, desc="candidates", unit="cand", file=sys.stderr, dynamic_ncols=True)


# -- 5. the task-set repository ------------------------------------------------------------------


class _TaskRepo:
    """A bare repository that collects one ref per task, bundled at the end."""

    def __init__(self, root: Path, source: Path, head: str) -> None:
        self.git_dir = root / "taskset.git"
        git_out(root, "init", "-q", "--bare", str(self.git_dir))
        self.source = source
        self.head = head
        git_out(self.git_dir, "fetch", "-q", "--no-tags", str(source.resolve()), f"+{head}:refs/synth/head")
        self.env = {
            "GIT_AUTHOR_DATE": FIXED_DATE,
            "GIT_COMMITTER_DATE": FIXED_DATE,
            "GIT_INDEX_FILE": str(root / "index"),
        }

    def fetch_history(self) -> None:
        git_out(self.git_dir, "fetch", "-q", "--no-tags", str(self.source.resolve()), "+refs/heads/*:refs/synth/src/*")

    def mutant_commit(self, path: str, text: str, message: str) -> str:
        """A root commit holding HEAD's tree with `path` replaced by `text`."""
        line = git_out(self.git_dir, "ls-tree", self.head, "--", path).split()
        mode = line[0] if line else "100644"
        blob = git_out(self.git_dir, "hash-object", "-w", "--stdin", stdin=text).strip()
        git_out(self.git_dir, "read-tree", self.head, env=self.env)
        git_out(self.git_dir, "update-index", "--cacheinfo", f"{mode},{blob},{path}", env=self.env)
        tree = git_out(self.git_dir, "write-tree", env=self.env).strip()
        return git_out(self.git_dir, "commit-tree", tree, "-m", message, env=self.env).strip()

    def diff(self, old: str, new: str) -> str:
        return git_out(self.git_dir, "diff", *DIFF_FLAGS, old, new)

    def add_ref(self, instance_id: str, commit: str) -> None:
        git_out(self.git_dir, "update-ref", f"refs/heads/task/{instance_id}", commit)

    def bundle(self, path: Path) -> None:
        for ref in git_out(self.git_dir, "for-each-ref", "--format=%(refname)", "refs/synth").split():
            git_out(self.git_dir, "update-ref", "-d", ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        # one packing thread: the same objects give the same bytes (threads make deltas vary)
        git_out(self.git_dir, "-c", "pack.threads=1", "bundle", "create", "-q", str(tmp), "--branches")
        os.replace(tmp, path)


def _count_lines(patch: str) -> int:
    return sum(len(h.added) + len(h.removed) for fp in parse_patch(patch) for h in fp.hunks)


def _row(
    syn: _Synthesizer,
    taskrepo: _TaskRepo,
    cand: _Candidate,
    outcome: _Outcome,
    bundle_ref: str,
) -> dict[str, Any]:
    config = syn.config
    if cand.kind == "mutation":
        digest = hashlib.sha256(f"{cand.path}\0{cand.text}".encode()).hexdigest()[:8]
        instance_id = f"{syn.prefix}.{cand.maker}__{digest}"
        base = taskrepo.mutant_commit(cand.path, cand.text, f"{syn.repo_name.rsplit('/', 1)[-1]}: import sources")
        patch = taskrepo.diff(base, syn.head)
        test_patch = ""
        changed = [cand.path]
        created = FIXED_DATE
    else:
        hc = cand.history
        assert hc is not None
        instance_id = f"{syn.prefix}.history__{hc.commit[:10]}"
        base, patch, test_patch, changed = hc.parent, hc.patch, hc.test_patch, list(hc.code_files)
        created = git_out(syn.repo, "show", "-s", "--format=%cI", hc.commit).strip()
    taskrepo.add_ref(instance_id, base)
    statement = issue_text(
        syn.facts(cand, outcome), seed=config.seed, key=instance_id, rewrite=config.rewrite_issue, changed_paths=changed
    )
    return {
        "instance_id": instance_id,
        "repo": syn.repo_name,
        "base_commit": base,
        "problem_statement": statement,
        "patch": patch,
        "test_patch": test_patch,
        "FAIL_TO_PASS": outcome.fail_to_pass,
        "PASS_TO_PASS": outcome.pass_to_pass,
        "created_at": created,
        "version": "synth",
        "repo_source": bundle_ref,
        "synth_method": cand.kind,
        "synth_maker": cand.maker if cand.kind == "mutation" else "",
        "synth_seed": config.seed,
        "lines_changed": _count_lines(patch),
        "files_changed": len(parse_patch(patch)),
        "num_fail_to_pass": len(outcome.fail_to_pass),
        "num_pass_to_pass": len(outcome.pass_to_pass),
    }


def synthesize(
    repo: str | Path,
    out: str | Path,
    config: SynthConfig | None = None,
    *,
    bundle: str | Path | None = None,
    log: str | Path | None = None,
    progress: bool = True,
    on_warning: Callable[[str], None] | None = None,
) -> SynthResult:
    """Synthesize validated tasks from the git repository `repo` (its committed HEAD) into the
    task file `out` (``.jsonl``); see the module docstring for what happens and what is written.

    `bundle` (default ``<out>.bundle``, i.e. `out` with the suffix replaced) receives the git
    bundle, `log` (default ``<out>.log``) one line per candidate; the counts go to
    ``<out>.stats.json``. Raises `SynthError` (one line) for arguments or a repository it
    cannot use."""
    config = config or SynthConfig()
    _check_config(config)
    repo, out = Path(repo), Path(out)
    if out.suffix != ".jsonl":
        raise SynthError(f"--out {out}: the task file must end in .jsonl")
    if not out.parent.is_dir():
        raise SynthError(f"--out {out}: the folder {out.parent} does not exist")
    bundle_path = Path(bundle) if bundle is not None else out.with_suffix(".bundle")
    log_path = Path(log) if log is not None else out.with_suffix(".log")
    stats_path = out.with_suffix(".stats.json")
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        if on_warning is not None:
            on_warning(text)

    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log_fh, tempfile.TemporaryDirectory(prefix="swerepair-synth-") as tmp:
        syn = _Synthesizer(repo, config, log_fh)
        if git_out(repo, "status", "--porcelain", "--untracked-files=no").strip():
            warn(f"{repo} has uncommitted changes; synthesis uses the committed HEAD {syn.head[:12]}")
        syn.say(f"repository {repo.resolve()} at {syn.head}, seed {config.seed}, sandbox {syn.kind}")
        syn.baseline()
        syn.load_cache()
        maker_counts: dict[str, Counter[str]] = {
            m: Counter() for m in (config.makers if config.makers is not None else MAKERS)
        }
        cands = syn.mutation_candidates(maker_counts) if config.makers is None or config.makers else []
        history_counts: Counter[str] = Counter()
        if config.history:
            cands += syn.history_candidates(history_counts)
        for i, cand in enumerate(cands):
            cand.index = i
        syn.say(f"{len(cands)} candidates")
        bar = _progress(len(cands), progress)
        try:
            results = _run_all(syn, cands, bar)
        finally:
            bar.close()
        taskrepo = _TaskRepo(Path(tmp), repo, syn.head)
        if config.history:
            taskrepo.fetch_history()
        bundle_ref = os.path.relpath(bundle_path.resolve(), out.resolve().parent)
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        kept_seconds = 0.0
        tried_seconds = 0.0
        cached = 0
        for cand in cands:
            result = results.get(cand.index, "limit reached")
            counts = maker_counts[cand.maker] if cand.kind == "mutation" else history_counts
            if isinstance(result, str):
                counts[result] += 1
                continue
            counts["tried"] += 1
            cached += result.cached
            tried_seconds += result.seconds
            if not result.kept:
                counts[f"dropped: {result.reason}"] += 1
                continue
            row = _row(syn, taskrepo, cand, result, bundle_ref)
            if row["instance_id"] in seen or row["patch"] in seen:
                counts["dropped: duplicate diff"] += 1
                continue
            seen.update((row["instance_id"], row["patch"]))
            counts["kept"] += 1
            kept_seconds += result.seconds
            rows.append(row)
        if rows:
            taskrepo.bundle(bundle_path)
        else:
            warn("no candidate was kept: no task file entries and no bundle")
            with contextlib.suppress(FileNotFoundError):
                bundle_path.unlink()
        tmp_out = out.with_name(out.name + ".tmp")
        with open(tmp_out, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp_out, out)
        total = time.monotonic() - started
        stats = {
            "repo": str(repo.resolve()),
            "head": syn.head,
            "seed": config.seed,
            **syn.stats,
            "candidates": len(cands),
            "kept": len(rows),
            "tried": sum(c["tried"] for c in [*maker_counts.values(), history_counts]),
            "seconds": round(total, 1),
            "seconds_per_kept": round(total / len(rows), 2) if rows else None,
            "validation_seconds_tried": round(tried_seconds, 1),
            "validation_seconds_kept": round(kept_seconds, 1),
            "from_cache": cached,
            "makers": {m: dict(sorted(c.items())) for m, c in maker_counts.items()},
        }
        if config.history:
            stats["history"] = dict(sorted(history_counts.items()))
        stats_path.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        syn.say(f"kept {len(rows)} of {stats['tried']} tried ({len(cands)} candidates) in {total:.0f}s")
    return SynthResult(rows, out, bundle_path if rows else None, log_path, stats_path, stats, warnings)
