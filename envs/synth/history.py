"""History mining: commits that fix code and add or change tests, as SWE-bench builds its rows.

A commit is a candidate when it has exactly one parent and its diff touches both code (a
Python file that is not a test) and tests (`swerepair.rewards.patch.is_test_path`). Its diff is
split the way SWE-bench splits a pull request: ``test_patch`` is the part on test files, and
``patch`` (the gold fix) is everything else. The task's base commit is the parent.

`swerepair.envs.synth.synthesize` then runs the candidate in the sandbox, at the parent with
the test patch applied, before and after the fix (each twice): FAIL_TO_PASS are the tests that
fail before and pass after, PASS_TO_PASS those that pass every time, and a candidate without a
FAIL_TO_PASS test, or whose verdicts change between the two runs, is dropped. As in
SWE-bench, the tests run are the test files the test patch touches.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from swerepair.envs.sandbox.workspace import GIT_ENV
from swerepair.rewards.patch import is_test_path

__all__ = ["HistoryCandidate", "git_out", "history_candidates"]

#: How the synthesizer asks git for a diff: plain text, no helpers, no rename detection.
DIFF_FLAGS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")


def git_out(repo: Path | str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a git command in `repo` and return its standard output; raise `RuntimeError` with
    git's message when it fails."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "-c", "safe.directory=*", "-c", "core.hooksPath=/dev/null", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**GIT_ENV, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


@dataclass(frozen=True)
class HistoryCandidate:
    """A commit that may become a task.

    Attributes:
        commit: the fixing commit.
        parent: its parent, the task's base commit.
        patch: the diff of the non-test files (the gold fix).
        test_patch: the diff of the test files.
        code_files / test_files: the paths on each side.
    """

    commit: str
    parent: str
    patch: str
    test_patch: str
    code_files: tuple[str, ...]
    test_files: tuple[str, ...]


def _split(repo: Path, parent: str, commit: str) -> HistoryCandidate | None:
    names = [n for n in git_out(repo, "diff", "--name-only", *DIFF_FLAGS, parent, commit).splitlines() if n]
    tests = tuple(n for n in names if is_test_path(n))
    others = tuple(n for n in names if not is_test_path(n))
    if not tests or not any(n.endswith(".py") for n in others):
        return None
    numstat = git_out(repo, "diff", "--numstat", *DIFF_FLAGS, parent, commit)
    if any(line.startswith("-\t-\t") for line in numstat.splitlines()):
        return None  # a binary change cannot travel as a text patch
    patch = git_out(repo, "diff", *DIFF_FLAGS, parent, commit, "--", *others)
    test_patch = git_out(repo, "diff", *DIFF_FLAGS, parent, commit, "--", *tests)
    return HistoryCandidate(commit, parent, patch, test_patch, others, tests)


def history_candidates(repo: Path | str, max_commits: int = 200, rev: str = "HEAD") -> list[HistoryCandidate]:
    """The candidate commits among the last `max_commits` non-merge commits of `rev`, newest first."""
    repo = Path(repo)
    out: list[HistoryCandidate] = []
    listing = git_out(repo, "rev-list", "--no-merges", "--parents", f"--max-count={max_commits}", rev)
    for line in listing.splitlines():
        shas = line.split()
        if len(shas) != 2:
            continue  # a root commit has nothing to compare with
        candidate = _split(repo, shas[1], shas[0])
        if candidate is not None:
            out.append(candidate)
    return out
