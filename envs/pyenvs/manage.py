"""A task set's environments as a whole: build them in parallel, find a task's, list, prune."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swerepair.core import Task
from swerepair.envs.pyenvs.build import (
    BuildOptions,
    BuildResult,
    build_environment,
    default_root,
    disk_usage,
    read_record,
    venv_python,
)
from swerepair.envs.pyenvs.plan import EnvPlan, env_key, plan_environments
from swerepair.rewards.verifier.harness import task_spec

__all__ = [
    "EnvInfo",
    "build_environments",
    "environment_for",
    "list_environments",
    "prune_environments",
]

log = logging.getLogger(__name__)


def build_environments(
    tasks: Iterable[Task],
    options: BuildOptions | None = None,
    *,
    jobs: int = 1,
    progress: bool = False,
    on_result: Callable[[EnvPlan, BuildResult], None] | None = None,
) -> list[tuple[EnvPlan, BuildResult]]:
    """Build every environment `tasks` need (one per repository version), `jobs` at a time.

    Returns ``(plan, result)`` per environment, in key order. A build's failure is its result,
    never an exception; tasks without a harness spec need none and are not listed.
    """
    options = options or BuildOptions()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    plans, _ = plan_environments(tasks)
    bar = _bar(len(plans)) if progress else None
    lock = threading.Lock()

    def one(plan: EnvPlan) -> BuildResult:
        try:
            result = build_environment(plan, options)
        except Exception as exc:
            log.exception("building %s", plan.key)
            result = BuildResult(plan.key, "failed", f"internal error: {type(exc).__name__}: {exc}")
        with lock:
            if bar is not None:
                bar.set_postfix_str(f"{plan.key} {result.status}", refresh=False)
                bar.update(1)
            if on_result is not None:
                on_result(plan, result)
        return result

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, plans))
    finally:
        if bar is not None:
            bar.close()
    return list(zip(plans, results, strict=True))


def _bar(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with swerepair[train]
        return None
    return tqdm(total=total, desc="environments", unit="env", file=sys.stderr, dynamic_ncols=True)


_RECORDS: dict[tuple[str, float], dict[str, Any] | None] = {}


def environment_for(task: Task, root: Path | str | None = None) -> Path | None:
    """The interpreter of `task`'s built environment under `root` (default `default_root`), or
    None: the task carries no harness spec, or its environment is not built (or failed)."""
    spec = task_spec(task)
    if spec is None:
        return None
    env_dir = Path(root) if root is not None else default_root()
    env_dir = env_dir / env_key(spec)
    record_path = env_dir / "env.json"
    try:
        stamp = (str(record_path), record_path.stat().st_mtime)
    except OSError:
        return None
    if stamp not in _RECORDS:
        _RECORDS[stamp] = read_record(env_dir)
    record = _RECORDS[stamp]
    if not record or record.get("status") != "ok":
        return None
    python = venv_python(env_dir)
    return python if python.exists() else None


@dataclass(frozen=True)
class EnvInfo:
    """One environment directory under a root.

    Attributes:
        key: its key (``owner__name/<version>-<hash>``).
        status: ``ok``, ``failed``, ``blocked`` or ``partial`` (no record: being built, or a
            build that died).
        python: the interpreter's version ("" when unknown).
        disk_bytes: every file's size.
        own_bytes: what removing it frees (files not hard-linked with the store or another env).
        record: its record (empty for a partial one).
    """

    key: str
    status: str
    python: str
    disk_bytes: int
    own_bytes: int
    record: dict[str, Any]


def _env_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = []
    for repo in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "store"):
        found += sorted(p for p in repo.iterdir() if p.is_dir())
    return found


def list_environments(root: Path | str | None = None, *, sizes: bool = True) -> list[EnvInfo]:
    """Every environment under `root` (default `default_root`), in key order."""
    root = Path(root) if root is not None else default_root()
    infos = []
    for env_dir in _env_dirs(root):
        record = read_record(env_dir) or {}
        apparent, own = disk_usage(env_dir) if sizes else (0, 0)
        status = str(record.get("status") or "partial")
        python = str((record.get("python") or {}).get("version") or "")
        infos.append(EnvInfo(env_dir.relative_to(root).as_posix(), status, python, apparent, own, record))
    return infos


def prune_environments(
    root: Path | str | None = None,
    *,
    keep: Iterable[Task] | None = None,
    statuses: Sequence[str] = (),
    everything: bool = False,
    store: bool = False,
    dry_run: bool = False,
) -> tuple[list[EnvInfo], int]:
    """Remove environments; returns those removed (or that would be) and the bytes freed.

    Removed: with `everything`, all; with `keep`, those no task of `keep` uses; with
    `statuses`, those whose status is listed (``failed``, ``blocked``, ``partial``). The
    criteria add up. `store` also empties the shared package store (the next build downloads
    again); an environment's hard-linked files stay valid without it.
    """
    root = Path(root) if root is not None else default_root()
    wanted = None if keep is None else {plan.key for plan in plan_environments(keep)[0]}
    removed: list[EnvInfo] = []
    freed = 0
    for info in list_environments(root):
        if everything or info.status in statuses or (wanted is not None and info.key not in wanted):
            removed.append(info)
            freed += info.own_bytes
            if not dry_run:
                shutil.rmtree(root / info.key, ignore_errors=True)
                (root / (info.key + ".lock")).unlink(missing_ok=True)
    if store and (root / "store").is_dir():
        freed += disk_usage(root / "store")[1]
        if not dry_run:
            shutil.rmtree(root / "store", ignore_errors=True)
    if not dry_run:
        for repo in root.iterdir() if root.is_dir() else ():
            if repo.is_dir() and repo.name != "store" and not any(repo.iterdir()):
                repo.rmdir()
    return removed, freed


def describe(results: Sequence[tuple[EnvPlan, BuildResult]]) -> str:
    """A JSON summary of a build (one object), for ``--json``."""
    return json.dumps(
        {
            "environments": [
                {
                    "key": plan.key,
                    "tasks": len(plan.tasks),
                    "status": result.status,
                    "reason": result.reason,
                    "seconds": round(result.seconds, 2),
                    "python": (result.record.get("python") or {}).get("version"),
                    "disk_bytes": result.record.get("disk_bytes"),
                    "own_bytes": result.record.get("own_bytes"),
                }
                for plan, result in results
            ]
        }
    )


def human_bytes(n: int) -> str:
    """`n` bytes for a person: ``12.3 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
