"""Workspaces: a pristine checkout per (repository, base commit), copied for each episode.

The first time a (repo, base_commit, source) triple is needed, its repository source (a local git
checkout or a ``.bundle`` file) is fetched into a fresh git repository in the cache
(``$SWEREPAIR_CACHE`` or ``~/.cache/swerepair``), the base commit is checked out on a branch
``main``, every other ref and reflog is dropped and unreachable objects are pruned, so that no
later commit (the fix, say) can be recovered from the agent's ``.git``. This costs a few hundred
milliseconds once per task per machine and is guarded by a file lock, so parallel workers
share it.

Each episode then gets a plain copy of that checkout in a temporary directory: constant time
per episode (a few milliseconds for the bundled repositories), never slower as episodes
accumulate, and deleted on close. Debian 12's bubblewrap (0.8) has no overlay mounts, so a copy
is the portable choice.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from swerepair.core import SandboxError, Task, build_once, cache_root

__all__ = ["GIT_ENV", "TaskRepositoryError", "base_file_reader", "git", "new_workspace", "prepare_checkout"]


class TaskRepositoryError(ValueError):
    """The task set names a repository or commit that does not exist: a configuration error,
    raised to the caller instead of failing episodes one by one."""


#: Environment for the git commands the infrastructure runs (never the agent's).
GIT_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": tempfile.gettempdir(),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "LANG": "C.UTF-8",
    "GIT_AUTHOR_NAME": "swerepair",
    "GIT_AUTHOR_EMAIL": "swerepair@localhost",
    "GIT_COMMITTER_NAME": "swerepair",
    "GIT_COMMITTER_EMAIL": "swerepair@localhost",
}


#: No hooks, fsmonitor, external diff or textconv programs, pager or transport helpers, whatever a
#: repository's config says.
_SAFE_GIT = (
    *("-c", "safe.directory=*", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"),
    *("-c", "diff.external=", "-c", "core.pager=cat", "--no-pager"),
)


def git(repo: Path | str, *args: str, timeout: float = 120.0) -> str:
    """Run a git command for the infrastructure; raise `SandboxError` with its output on failure."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *_SAFE_GIT, *args],
            env=GIT_ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"git {' '.join(args)}: {exc}") from exc
    if proc.returncode != 0:
        raise SandboxError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", text).strip("_") or "repo"


def _source_key(source: Path) -> str:
    """What a cached checkout is keyed by besides the commit: the source's resolved path and, for
    a file (a bundle), its size and modification time, so that a checkout made from one source
    is never served for another (whose fetch would fail if it does not hold the commit)."""
    resolved = source.resolve()
    stat = resolved.stat()
    ident = f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}" if resolved.is_file() else str(resolved)
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def prepare_checkout(task: Task, cache_dir: Path | None = None) -> Path:
    """Return the cached pristine checkout of `task.repo` at `task.base_commit`, creating it once."""
    if task.repo_source is None:
        raise TaskRepositoryError(
            f"task {task.instance_id}: no repository source; pass repos=... to load_tasks or set "
            "'repo_source' in the task row"
        )
    source = Path(task.repo_source)
    if not source.exists():
        raise TaskRepositoryError(f"task {task.instance_id}: repository source {source} does not exist")
    if not re.fullmatch(r"[0-9a-fA-F]{7,64}", task.base_commit):
        raise TaskRepositoryError(f"task {task.instance_id}: base_commit {task.base_commit!r} is no sha")
    root = (cache_dir or cache_root()) / "checkouts" / _slug(task.repo)
    final = root / f"{task.base_commit}.{_source_key(source)}"  # another source is fetched (and checked) anew

    def fetch(tmp: Path) -> None:
        git(tmp, "init", "-q", "-b", "main")
        git(tmp, "fetch", "-q", "--no-tags", str(source.resolve()), "+refs/*:refs/src/*")
        try:
            git(tmp, "cat-file", "-e", f"{task.base_commit}^{{commit}}")
        except SandboxError as exc:
            raise TaskRepositoryError(
                f"task {task.instance_id}: base_commit {task.base_commit} is not in {source}"
            ) from exc
        git(tmp, "checkout", "-q", "-f", "-B", "main", task.base_commit)
        for ref in git(tmp, "for-each-ref", "--format=%(refname)", "refs/src").split():
            git(tmp, "update-ref", "-d", ref)
        git(tmp, "reflog", "expire", "--expire=now", "--all")
        git(tmp, "gc", "-q", "--prune=now")
        # Nothing may tell the agent where the repository came from or what else it held.
        shutil.rmtree(tmp / ".git" / "hooks", ignore_errors=True)
        shutil.rmtree(tmp / ".git" / "logs", ignore_errors=True)
        for leftover in ("FETCH_HEAD", "ORIG_HEAD", "description"):
            (tmp / ".git" / leftover).unlink(missing_ok=True)

    return build_once(final, fetch, complete=lambda p: (p / ".git").is_dir())


def base_file_reader(task: Task) -> Callable[[str], str | None] | None:
    """``read(path)``: a file of `task` at its base commit, from its cached checkout
    (`prepare_checkout`); None for a path outside the checkout or not a file. None for a task
    with no local repository (a Docker image's)."""
    if task.repo_source is None:
        return None
    root = prepare_checkout(task).resolve()

    def read(path: str) -> str | None:
        file = (root / path).resolve()
        if not file.is_relative_to(root) or not file.is_file():
            return None
        return file.read_text(encoding="utf-8", errors="surrogateescape")

    return read


def new_workspace(checkout: Path, parent: str | None = None) -> tuple[Path, Path]:
    """Copy `checkout` into a new temporary directory.

    Returns ``(episode_dir, repo_dir)``: the directory to delete on close, and the repository
    copy inside it.
    """
    episode_dir = Path(tempfile.mkdtemp(prefix="swerepair-ep-", dir=parent))
    repo_dir = episode_dir / "repo"
    try:
        shutil.copytree(checkout, repo_dir, symlinks=True)
    except OSError as exc:
        shutil.rmtree(episode_dir, ignore_errors=True)
        raise SandboxError(f"cannot copy workspace from {checkout}: {exc}") from exc
    return episode_dir, repo_dir
