"""Build the bundled task set from its sources: ``python -m swerepair.envs.bundled.build``.

Sources (in the repository, not installed):

- ``projects/<name>/``: a small Python project in its *fixed* state, with its pytest suite;
- ``tasks/<name>/<name>-<N>/``: one task each: ``issue.md`` (the problem statement),
  ``fix.patch`` (the gold patch), ``test.patch`` (the tests that expose the bug) and
  ``task.json`` (``FAIL_TO_PASS``, ``created_at``).

Output (installed with the package, in ``data/``):

- ``<name>.bundle``: a git bundle with one root commit per task holding the *buggy* tree (the
  project with ``fix.patch`` reversed). Each commit is its own root, so no task's history
  contains another task's fix; dates and authors are fixed, so the shas are reproducible.
- ``tasks.jsonl``: the task rows in the SWE-bench schema, with ``repo_source`` naming the
  bundle. ``PASS_TO_PASS`` is computed here: every test that passes both on the buggy tree and
  on the fixed tree, with the test patch applied.

The build checks each task: FAIL_TO_PASS fails before the fix and passes after; nothing else
fails either time. ``swerepair tasks validate`` proves the same inside the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from swerepair.envs.sandbox.workspace import GIT_ENV
from swerepair.rewards.testrun import PYTEST_COMMAND, parse_pytest_report

HERE = Path(__file__).resolve().parent
FIXED_DATE = "2026-01-01T00:00:00+00:00"


def _run(cmd: list[str] | str, cwd: Path, stdin: str | None = None, check: bool = True) -> str:
    env = GIT_ENV | {
        "GIT_AUTHOR_DATE": FIXED_DATE,
        "GIT_COMMITTER_DATE": FIXED_DATE,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": f"{Path(sys.executable).parent}:{GIT_ENV['PATH']}",
    }
    proc = subprocess.run(
        cmd, cwd=cwd, input=stdin, capture_output=True, text=True, env=env, shell=isinstance(cmd, str)
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _copy_project(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".benchmarks", "*.pyc"))


def _pytest(tree: Path) -> dict[str, str]:
    out = _run(PYTEST_COMMAND, tree, check=False)
    verdicts = parse_pytest_report(out)
    if not verdicts:
        raise RuntimeError(f"pytest reported nothing in {tree}:\n{out[-3000:]}")
    return verdicts


def build_task(project: Path, task_dir: Path, repo: Path, scratch: Path) -> dict[str, object]:
    """Commit the task's buggy tree to `repo` and return its SWE-bench row."""
    name = project.name
    meta = json.loads((task_dir / "task.json").read_text())
    fix = (task_dir / "fix.patch").read_text()
    test = (task_dir / "test.patch").read_text()
    f2p: list[str] = meta["FAIL_TO_PASS"]

    buggy = scratch / f"{task_dir.name}-buggy"
    _copy_project(project, buggy)
    _run(["git", "apply", "-R", "-"], buggy, stdin=fix)

    # Commit the buggy tree as a root commit of its own.
    _run(["git", "checkout", "-q", "--orphan", f"task/{task_dir.name}"], repo)
    _run(["git", "rm", "-rfq", "--ignore-unmatch", "."], repo)
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(buggy, repo, dirs_exist_ok=True)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-q", "-m", f"{name}: import sources"], repo)
    sha = _run(["git", "rev-parse", "HEAD"], repo).strip()

    # Verdicts before and after the fix, with the test patch applied.
    _run(["git", "apply", "-"], buggy, stdin=test)
    before = _pytest(buggy)
    _run(["git", "apply", "-"], buggy, stdin=fix)
    after = _pytest(buggy)
    problems = [t for t in f2p if before.get(t) == "PASSED" or t not in before]
    problems += [t for t in f2p if after.get(t) != "PASSED"]
    others = set(before) | set(after)
    problems += sorted(t for t in others - set(f2p) if before.get(t) != "PASSED" or after.get(t) != "PASSED")
    if problems:
        raise RuntimeError(f"{task_dir.name}: tests that break the task's contract: {problems}")
    p2p = sorted(t for t in others - set(f2p))
    issue = (task_dir / "issue.md").read_text().strip() + "\n"
    return {
        "instance_id": f"swerepair__{task_dir.name}",
        "repo": f"swerepair/{name}",
        "base_commit": sha,
        "problem_statement": issue,
        "patch": fix,
        "test_patch": test,
        "FAIL_TO_PASS": f2p,
        "PASS_TO_PASS": p2p,
        "created_at": meta.get("created_at", ""),
        "version": "0.1",
        "repo_source": f"{name}.bundle",
    }


def build(out_dir: Path, projects: list[str] | None = None) -> list[dict[str, object]]:
    """Build every project's bundle and the tasks file into `out_dir`; return the rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    names = projects or sorted(p.name for p in (HERE / "projects").iterdir() if p.is_dir())
    for name in names:
        project = HERE / "projects" / name
        task_dirs = sorted((HERE / "tasks" / name).iterdir(), key=lambda p: int(p.name.rsplit("-", 1)[1]))
        with tempfile.TemporaryDirectory(prefix=f"swerepair-build-{name}-") as tmp:
            scratch = Path(tmp)
            repo = scratch / "repo"
            repo.mkdir()
            _run(["git", "init", "-q", "-b", "main"], repo)
            for task_dir in task_dirs:
                rows.append(build_task(project, task_dir, repo, scratch))
                print(f"built {rows[-1]['instance_id']} at {str(rows[-1]['base_commit'])[:12]}", file=sys.stderr)
            _run(["git", "checkout", "-q", "--detach"], repo)
            _run(["git", "branch", "-q", "-D", "main"], repo, check=False)
            bundle = out_dir / f"{name}.bundle"
            if bundle.exists():
                bundle.unlink()
            _run(["git", "bundle", "create", "-q", str(bundle), "--branches"], repo)
    with open(out_dir / "tasks.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="output directory")
    parser.add_argument("--project", action="append", help="build only these projects")
    args = parser.parse_args(argv)
    rows = build(args.out, args.project)
    print(f"{len(rows)} tasks written to {args.out / 'tasks.jsonl'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
