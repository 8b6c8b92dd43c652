"""Build the bundled synthesized task set: ``python -m swerepair.envs.synth.bundled`` (``make bundled-synth``).

Sources (in the repository, not installed): the four bundled projects in their fixed state
(``envs/bundled/projects/<name>/``) and the hand-written tasks (``envs/bundled/tasks/<name>/``).

For each project: its tree is committed to a fresh git repository (fixed author and date, so
the commit is the same on every machine), `swerepair.envs.synth.synthesize` runs over it with
a fixed seed, and the kept tasks' buggy commits go to ``data/synth-<name>.bundle``. Every
function that a hand-written task's fix touches is **held out** (``exclude_lines``): no
synthesized task changes code there, so a policy trained on ``bundled-synth`` has not seen the
evaluation bugs' functions changed. All rows go to ``data/synth.jsonl.gz`` (``tasks="bundled-synth"``).

Logs and counts go to ``--log-dir`` (default ``runs/bundled-synth``): one log per project,
``stats.json`` with the per-maker counts and timings, and the validation outcomes
(``cache-<name>.jsonl``, `SynthConfig.cache`), so that a rebuild tries again only what changed.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from swerepair.envs.synth.history import git_out
from swerepair.envs.synth.synthesize import FIXED_DATE, SynthConfig, synthesize
from swerepair.rewards.patch import parse_patch

HERE = Path(__file__).resolve().parent.parent / "bundled"
#: The shipped set's settings (changing them changes the set).
SEED = 0
MAX_PER_FUNCTION = 3
MAX_PER_FILE = 40
TIME_BUDGET_S = 60.0
OUT_NAME = "synth.jsonl.gz"


def held_out_lines(project: Path, task_root: Path) -> dict[str, set[int]]:
    """``{path: lines}`` of every function (or, at module level, every line) that a
    hand-written task's ``fix.patch`` changes, in the fixed tree's numbering."""
    touched: dict[str, set[int]] = {}
    for fix in sorted(task_root.glob("*/fix.patch")):
        for fp in parse_patch(fix.read_text(encoding="utf-8")):
            if not fp.new_path:
                continue
            lines = touched.setdefault(fp.new_path, set())
            for hunk in fp.hunks:
                line = hunk.new_start
                for text in hunk.lines:
                    tag = text[:1]
                    if tag == "+":
                        lines.add(line)
                        line += 1
                    elif tag == "-":
                        lines.update((line - 1, line))  # a deletion: the lines around it
                    elif tag == " ":
                        line += 1
    held: dict[str, set[int]] = {}
    for path, lines in touched.items():
        source = project / path
        if not source.is_file():
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        out = held.setdefault(path, set())
        for line in lines:
            inside = [f for f in functions if f.lineno <= line <= (f.end_lineno or f.lineno)]
            if inside:
                f = min(inside, key=lambda f: (f.end_lineno or f.lineno) - f.lineno)
                out.update(range(f.lineno, (f.end_lineno or f.lineno) + 1))
            else:
                out.add(line)
    return held


def project_repo(project: Path, dest: Path) -> str:
    """Commit the project's tree to a new git repository at `dest`; return the commit."""
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc"))
    env = {"GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE}
    git_out(dest, "init", "-q", "-b", "main")
    git_out(dest, "add", "-A")
    git_out(dest, "commit", "-q", "-m", f"{project.name}: import sources", env=env)
    return git_out(dest, "rev-parse", "HEAD").strip()


def names_order(repo: str) -> str:
    """Rows are grouped by project, in name order."""
    return repo.split("/")[-1]


def build(
    out_dir: Path,
    projects: list[str] | None = None,
    *,
    jobs: int = 2,
    log_dir: Path = Path("runs/bundled-synth"),
    limit: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Synthesize every project's tasks into `out_dir`; return the rows (see the module docstring)."""
    names = projects or sorted(p.name for p in (HERE / "projects").iterdir() if p.is_dir())
    log_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    started = time.monotonic()
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"swerepair-synth-{name}-") as tmp:
            repo = Path(tmp) / name
            project_repo(HERE / "projects" / name, repo)
            config = SynthConfig(
                seed=SEED,
                max_per_file=MAX_PER_FILE,
                max_per_function=MAX_PER_FUNCTION,
                limit=limit,
                jobs=jobs,
                time_budget_s=TIME_BUDGET_S,
                repo_name=f"swerepair/{name}",
                id_prefix=f"swerepair__{name}",
                exclude_lines=held_out_lines(HERE / "projects" / name, HERE / "tasks" / name),
                cache=log_dir / f"cache-{name}.jsonl",
            )
            bundle = out_dir / f"synth-{name}.bundle"
            result = synthesize(
                repo,
                Path(tmp) / "tasks.jsonl",
                config,
                bundle=bundle,
                log=log_dir / f"{name}.log",
                progress=progress,
            )
            for row in result.rows:
                rows.append({**row, "repo_source": bundle.name})
            stats[name] = result.stats
            print(f"{name}: {len(result.rows)} tasks ({result.stats['seconds']:.0f}s)", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    if projects and (out_dir / OUT_NAME).exists():  # a partial rebuild keeps the other projects' rows
        with gzip.open(out_dir / OUT_NAME, "rt", encoding="utf-8") as old:
            kept = [json.loads(line) for line in old if line.strip()]
        rows = [r for r in kept if r["repo"].split("/")[-1] not in names] + rows
        rows.sort(key=lambda r: names_order(r["repo"]))
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    tmp_path = out_dir / (OUT_NAME + ".tmp")
    with open(tmp_path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
        fh.write(payload)
    os.replace(tmp_path, out_dir / OUT_NAME)
    stats["total"] = {"tasks": len(rows), "seconds": round(time.monotonic() - started, 1)}
    (log_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="output directory")
    parser.add_argument("--project", action="append", help="build only these projects")
    parser.add_argument("--jobs", type=int, default=2, help="candidates validated in parallel")
    parser.add_argument("--log-dir", type=Path, default=Path("runs/bundled-synth"), help="logs and stats.json")
    parser.add_argument("--limit", type=int, default=None, help="at most this many tasks per project (for trials)")
    args = parser.parse_args(argv)
    if not (HERE / "projects").is_dir():
        print("the bundled projects are not here (they are in the source repository only)", file=sys.stderr)
        return 2
    rows = build(args.out, args.project, jobs=args.jobs, log_dir=args.log_dir, limit=args.limit)
    print(f"{len(rows)} tasks written to {args.out / OUT_NAME}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
