"""Ground floor of swerepair: the sandbox protocol and the plain record types.

Everything here is importable by every other package (`envs`, `agents`, `rewards`, `trainers`)
without creating an import cycle, and imports nothing heavier than the standard library.
"""

from __future__ import annotations

import fcntl
import glob
import importlib
import importlib.metadata
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "PLUGIN_GROUPS",
    "Episode",
    "ExecResult",
    "PluginError",
    "Sandbox",
    "SandboxError",
    "Task",
    "build_once",
    "cache_root",
    "load_plugin",
    "plugin_name",
]


def cache_root() -> Path:
    """Directory for swerepair's caches: ``$SWEREPAIR_CACHE``, else ``$XDG_CACHE_HOME/swerepair``
    (``~/.cache/swerepair``). Checkouts, converted models and the restricted bin live there."""
    explicit = os.environ.get("SWEREPAIR_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "swerepair"


# --------------------------------------------------------------------------- plugins by name

#: The entry-point groups through which other packages add rewards, episode rewards and scaffolds
#: that configs and the command line can name. In a plugin's pyproject.toml::
#:
#:     [project.entry-points."swerepair.rewards"]
#:     touches_gold = "mypkg.rewards:touches_only_gold_files"
PLUGIN_GROUPS = ("swerepair.rewards", "swerepair.episode_rewards", "swerepair.scaffolds")


class PluginError(ValueError):
    """A name that is neither built in, nor an installed entry point, nor an importable ``module:attr``."""


def _import_path(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_plugin(group: str, name: str, builtins: Mapping[str, Any] | None = None) -> Any:
    """The object `name` stands for in `group` (one of `PLUGIN_GROUPS`), looked up in this order:

    1. `builtins` (the package's own: ``REWARDS``, the bundled scaffolds);
    2. an entry point of that name in `group`, from any installed distribution;
    3. an import path ``module:attr`` (``attr`` may be dotted), as Gymnasium's entry points.

    There is no mutable registry: what a name means is decided by code and installed metadata,
    so the same name means the same thing in a config file, on the command line and on
    ``--resume``. Raises `PluginError` naming what was tried.

    >>> load_plugin("swerepair.rewards", "os.path:basename") is os.path.basename
    True
    """
    if builtins is not None and name in builtins:
        return builtins[name]
    for entry in importlib.metadata.entry_points(group=group):
        if entry.name == name:
            return entry.load()
    if ":" in name:
        try:
            return _import_path(name)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"{name!r} cannot be imported: {exc}") from None
    known = sorted({*(builtins or {}), *(e.name for e in importlib.metadata.entry_points(group=group))})
    raise PluginError(
        f"unknown name {name!r} in {group}; choose one of {known}, an entry point of the group "
        f"{group!r}, or an import path module:attr"
    )


def plugin_name(obj: Any, group: str, builtins: Mapping[str, Any] | None = None) -> str | None:
    """The name under which `load_plugin` gives back `obj` itself: its built-in name, an entry
    point's name, or ``module:qualname``; None for what has no such name (a lambda, a closure,
    a ``functools.partial``, an object built at run time), which a config file cannot carry.

    >>> plugin_name(os.path.basename, "swerepair.rewards") in ("posixpath:basename", "ntpath:basename")
    True
    >>> plugin_name(lambda patch, task: 1.0, "swerepair.rewards") is None
    True
    """
    for name, value in (builtins or {}).items():
        if value is obj:
            return name
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    path = f"{module}:{qualname}" if module and qualname and "<" not in qualname else None
    for entry in importlib.metadata.entry_points(group=group):
        if path is not None and entry.value.replace(" ", "") == path:
            return entry.name
    if path is None:
        return None
    try:
        return path if _import_path(path) is obj else None
    except (ImportError, AttributeError):
        return None


def build_once(final: Path, build: Callable[[Path], None], *, complete: Callable[[Path], bool] | None = None) -> Path:
    """Return `final`, building it first if it is not complete yet, once per machine.

    `build(tmp)` fills a fresh temporary directory next to `final` (``.<name>.tmp-*``, same
    file system), which is then renamed into place, so nobody ever sees a half-built directory;
    a file lock makes concurrent processes (training ranks starting together) wait for the
    first builder and reuse its result. Nothing depends on the lock for correctness: a complete
    `final` is never replaced or deleted, and a builder that finds `final` already complete when
    it is done (a file system whose locks do not reach other hosts) discards its own copy.
    Temporary directories left by a killed builder (of this host) are removed by the next one.
    `complete(path)` says whether a directory is usable (default: it exists); an incomplete
    leftover is moved aside and replaced by the lock holder.
    """
    done = complete or (lambda p: p.is_dir())
    if done(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            locked = True
        except OSError:  # no flock on this file system (ENOLCK): the rename alone keeps it atomic
            locked = False
        if done(final):
            return final
        for stale in final.parent.glob(f"{glob.escape(prefix)}*"):
            if locked and _dead_builders(stale, stale.name[len(prefix) :]):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{socket.gethostname()}-{os.getpid()}-", dir=final.parent))
        try:
            build(tmp)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide a shared cache from others
            if locked and final.exists() and not done(final):  # an incomplete leftover: moved aside
                aside = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
                os.rename(final, aside / "old")
                shutil.rmtree(aside, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # another builder's complete copy is there by now: keep it, drop ours
                if not done(final):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _dead_builders(directory: Path, tag: str) -> bool:
    """Whether a temporary directory tagged ``<host>-<pid>-<random>`` was left by a builder that
    is gone: a process of this host that no longer runs, or anything over a day old (the lock
    holder alone builds, but a lock may not reach other hosts)."""
    host, _, pid = tag.rpartition("-")[0].rpartition("-")
    if not host or not pid.isdigit():
        return True  # not one of ours: nobody builds into it
    if host != socket.gethostname():
        try:
            return time.time() - (directory.stat().st_mtime) > 86400
        except OSError:
            return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by another user
        return False
    return False


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the command run inside it).

    Raised when a workspace cannot be prepared, the isolation layer (bwrap) cannot start, or the
    sandbox was already closed. The environment turns it into a *failed* episode, never into a
    zero reward: the agent did nothing wrong.
    """


@dataclass(frozen=True)
class ExecResult:
    """What running one command in a sandbox produced.

    Attributes:
        output: stdout and stderr interleaved as the command wrote them, decoded as UTF-8 with
            replacement characters for invalid bytes, cut at the sandbox's capture limit.
        exit_code: the command's exit status; negative for death by signal (-9: killed), as in
            `subprocess`. When `timed_out` is true the value is whatever the kill produced.
        timed_out: the command ran past its timeout and its whole process tree was killed.
        truncated: `output` holds only the first part of what the command wrote.
        duration_s: wall-clock seconds from start to the end of the process tree.
        output_bytes: how many bytes the command wrote in total (before any truncation).
        killed_reason: why the sandbox killed the command before it ended by itself, other
            than its timeout (a disk budget exceeded, say); ``None`` otherwise.
    """

    output: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    duration_s: float = 0.0
    output_bytes: int = 0
    killed_reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command exited 0 within its timeout and was not killed."""
        return self.exit_code == 0 and not self.timed_out and self.killed_reason is None


@runtime_checkable
class Sandbox(Protocol):
    """An isolated checkout of one repository at one commit, in which commands run.

    `workdir` is the absolute path of the repository as commands inside the sandbox see it.
    Relative paths given to `read_file`/`write_file` are relative to it; paths that resolve
    outside it (through `..` or symlinks) raise `ValueError`.
    """

    workdir: str

    def run(
        self,
        cmd: str,
        timeout: float,
        *,
        restricted: bool = False,
        stdin: str | None = None,
    ) -> ExecResult:
        """Run `cmd` with bash in `workdir`, killing its whole process tree after `timeout` s.

        With `restricted=True` the command runs in `bash -r` with a PATH that holds only the
        programs the sandbox allows the agent (see `swerepair.envs.sandbox.rbin`).
        Raises `SandboxError` only when the sandbox itself is broken.
        """
        ...

    def read_file(self, path: str) -> str:
        """Return the text of a workspace file (UTF-8, invalid bytes replaced)."""
        ...

    def write_file(self, path: str, text: str) -> None:
        """Create or overwrite a workspace file, creating parent directories."""
        ...

    def diff(self) -> str:
        """`git diff` of the whole workspace (untracked files included) against the base commit."""
        ...

    def close(self) -> None:
        """Remove everything the sandbox created. Safe to call twice."""
        ...


@dataclass(frozen=True)
class Task:
    """One repair task, with the field names of the SWE-bench datasets.

    Attributes:
        instance_id: unique name of the task, e.g. ``"swerepair__intervals-1"``.
        repo: the repository as ``owner/name``.
        base_commit: the commit the agent starts from (the bug is present there).
        problem_statement: the issue text the agent is given.
        patch: the gold patch (``git diff`` of the non-test files that fixes the bug).
        test_patch: the ``git diff`` adding or changing the tests that expose the bug.
        FAIL_TO_PASS: test ids that fail at `base_commit` and pass once `patch` is applied.
        PASS_TO_PASS: test ids that pass both before and after `patch`.
        repo_source: where the repository's git objects come from: a local git checkout or a
            ``.bundle`` file. ``None`` means the task set gave none (the env then refuses it).
        extra: every other column of the source row (``version``, ``hints_text``, ...).
    """

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str
    test_patch: str
    FAIL_TO_PASS: tuple[str, ...]
    PASS_TO_PASS: tuple[str, ...]
    repo_source: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The task as a JSON-serialisable SWE-bench row (lists for the test-id columns)."""
        row: dict[str, Any] = dict(self.extra)
        row.update(
            instance_id=self.instance_id,
            repo=self.repo,
            base_commit=self.base_commit,
            problem_statement=self.problem_statement,
            patch=self.patch,
            test_patch=self.test_patch,
            FAIL_TO_PASS=list(self.FAIL_TO_PASS),
            PASS_TO_PASS=list(self.PASS_TO_PASS),
        )
        if self.repo_source is not None:
            row["repo_source"] = self.repo_source
        return row


@dataclass
class Episode:
    """One finished (or failed) episode, ready for a trainer.

    Attributes:
        instance_id: the task.
        messages: the conversation as the env returned it.
        tokens: every token id of the conversation, in order.
        loss_mask: 1 where the model generated the token, else 0; same length as `tokens`.
        logprobs: the sampling logprob of each generated token, in order (one per 1 in the
            mask).
        reward: the env's reward on the final step.
        info: the env's final info (patch, reward components, tool stats, exit reason,
            ``failed``) plus ``policy_versions``, ``template_prefix_stable`` and, for turns
            generated on inference servers, ``policy_servers`` (the server URL of each turn).
    """

    instance_id: str
    messages: list[dict[str, Any]]
    tokens: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """The episode carries no learning signal (sandbox or verifier failure)."""
        return bool(self.info.get("failed"))

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the JSONL record of ``swerepair solve``)."""
        return {
            "instance_id": self.instance_id,
            "messages": self.messages,
            "tokens": self.tokens,
            "loss_mask": self.loss_mask,
            "logprobs": self.logprobs,
            "reward": self.reward,
            "info": self.info,
        }
