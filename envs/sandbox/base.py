"""What the bubblewrap and local sandboxes share: file access, the diff, settings and cleanup.

A subclass only says how one command is launched (`_launch`); everything else (workspace
paths, reading and writing files, the patch, closing) is here.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from swerepair.core import ExecResult, SandboxError
from swerepair.envs.sandbox.hostfs import read_regular, resolve_inside, write_regular
from swerepair.envs.sandbox.process import ResourceLimits
from swerepair.envs.sandbox.rbin import DEFAULT_PROGRAMS, build_rbin

if TYPE_CHECKING:
    from swerepair.envs.sandbox.docker.pool import PoolConfig

__all__ = ["DIFF_LIMIT_BYTES", "SANDBOX_UID", "SandboxConfig", "WorkspaceSandbox"]

#: The host uid (and gid) commands of the isolating sandboxes run as when started by root:
#: ``nobody``, which owns no files.
SANDBOX_UID = 65534

#: The largest patch `diff()` returns; beyond it the patch text is cut.
DIFF_LIMIT_BYTES = 64 << 20

#: git settings for every git call the infrastructure makes on a workspace: no hooks, no
#: fsmonitor, no external diff or textconv programs, no pager, whatever the repository says.
_SAFE_GIT = (
    "-c safe.directory=* -c core.hooksPath=/dev/null -c core.fsmonitor=false -c core.untrackedCache=false "
    "-c core.autocrlf=false -c core.quotepath=false -c diff.external= -c core.pager=cat "
    "-c core.sshCommand=false -c protocol.allow=never --no-pager"
)

_DIFF_EXCLUDES = " ".join(f"':(exclude,glob){p}'" for p in ("**/__pycache__/**", "**/*.pyc", "**/.pytest_cache/**"))


@dataclass(frozen=True)
class SandboxConfig:
    """Settings shared by the built-in sandboxes.

    Attributes:
        limits: per-command resource limits.
        python: interpreter behind `python`/`pytest` in the sandbox (default: the running one,
            which has pytest installed as a swerepair dependency).
        programs: programs the restricted shell may call besides git, sed, python and pytest.
        tmp_dir: where episode workspaces are created (default: the system temp directory).
        sandbox_uid: the host uid (and gid) bubblewrap commands run as when the sandbox is
            started by root (default ``nobody``); it should own no files of the host. The
            Docker sandbox runs the agent as this uid inside its container.
        docker_image: the Docker sandbox's image for every task (default: per task, see
            `swerepair.envs.sandbox.docker.DockerSandbox.for_task`).
        docker_runtime: the Docker sandbox's OCI runtime, e.g. ``"runsc"`` (gVisor; the engine
            must have it registered); default: the engine's.
        docker_pool: the Docker sandbox's warm pool and image disk budget
            (`swerepair.envs.sandbox.docker.pool.PoolConfig`); default: its defaults.
        session: bubblewrap only: one sandbox per episode whose supervisor runs each command
            in a fresh process with the same isolation and guarantees
            (`swerepair.envs.sandbox.session`; a step then costs a few times a bare process)
            instead of a new bubblewrap per command (False). Default: on, unless the
            environment variable ``SWEREPAIR_SANDBOX_SESSION`` is ``0``. The verifier's
            sandboxes never use a session.
        environments: where Docker-free environments are looked up
            (`swerepair.envs.pyenvs`): ``"auto"`` (the default root), a directory, or None
            (never). A task whose environment is built there runs with its interpreter, unless
            `python` was set to another interpreter than the running one.
    """

    limits: ResourceLimits = field(default_factory=ResourceLimits)
    python: str = field(default_factory=lambda: sys.executable)
    programs: tuple[str, ...] = DEFAULT_PROGRAMS
    tmp_dir: str | None = None
    sandbox_uid: int = SANDBOX_UID
    docker_image: str | None = None
    docker_runtime: str | None = None
    docker_pool: PoolConfig | None = None
    environments: str | None = "auto"
    session: bool = field(default_factory=lambda: os.environ.get("SWEREPAIR_SANDBOX_SESSION", "1") != "0")


def _base_env(home: str) -> dict[str, str]:
    return {
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        # The workspace belongs to the sandbox's user and .git to the host's: allow that, and
        # never run hooks or an fsmonitor, whatever .git/config says.
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": "*",
        "GIT_CONFIG_KEY_1": "core.hooksPath",
        "GIT_CONFIG_VALUE_1": "/dev/null",
        "GIT_CONFIG_KEY_2": "core.fsmonitor",
        "GIT_CONFIG_VALUE_2": "false",
        "GIT_PAGER": "cat",
        "PAGER": "cat",
    }


def bash_command(cmd: str, *, restricted: bool, path: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run `cmd` with bash in a sandbox: ``bash -r`` for the
    restricted shell, no profile or rc files either way; `path` is the command's PATH (the
    restricted programs, or the interpreter's directory and the system's)."""
    env = _base_env("/tmp") | {"PATH": path}
    if restricted:
        env["SHELL"] = "/bin/bash"
        return ["/bin/bash", "--noprofile", "--norc", "-r", "-c", cmd], env
    return ["/bin/bash", "--noprofile", "--norc", "-c", cmd], env


class WorkspaceSandbox(ABC):
    """A sandbox over a host directory holding the episode's copy of the repository."""

    #: path of the repository as commands inside the sandbox see it
    workdir: str
    #: (uid, gid) that files the host creates in the workspace are given to; None: the host's
    file_owner: tuple[int, int] | None = None

    def __init__(
        self,
        episode_dir: Path,
        repo_dir: Path,
        base_commit: str,
        config: SandboxConfig,
    ) -> None:
        self.episode_dir = episode_dir
        self.host_repo = repo_dir
        self.base_commit = base_commit
        self.config = config
        self.rbin = build_rbin(config.programs, python=config.python)
        self._closed = False

    # -- launching -------------------------------------------------------------------------
    @abstractmethod
    def _launch(
        self, inner: list[str], env: dict[str, str], timeout: float, stdin: str | None, max_output: int
    ) -> ExecResult:
        """Run the argv `inner` in `workdir` with environment `env`, isolated as this sandbox is,
        keeping at most `max_output` bytes of its output."""

    def _python_path(self) -> str:
        return f"{Path(self.config.python).parent}:/usr/local/bin:/usr/bin:/bin"

    def run(
        self,
        cmd: str,
        timeout: float,
        *,
        restricted: bool = False,
        stdin: str | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """See `swerepair.core.Sandbox.run`; `max_output_bytes` overrides the configured capture
        limit for this command."""
        if self._closed:
            raise SandboxError("sandbox is closed")
        path = self.rbin_path if restricted else self._python_path()
        inner, env = bash_command(cmd, restricted=restricted, path=path)
        limit = max_output_bytes if max_output_bytes is not None else self.config.limits.max_output_bytes
        return self._launch(inner, env, timeout, stdin, limit)

    @property
    def rbin_path(self) -> str:
        """PATH of the restricted shell as commands inside the sandbox see it."""
        return str(self.rbin)

    # -- files -----------------------------------------------------------------------------
    def host_path(self, path: str) -> Path:
        """Map a workspace path (relative, or absolute under `workdir`) to the host file.

        Raises `ValueError` for paths that leave the workspace, directly, through `..` or
        through a symlink, and for paths inside `.git`.
        """
        if not path or "\x00" in path:
            raise ValueError("empty or invalid path")
        rel = path
        if os.path.isabs(rel):
            prefix = self.workdir.rstrip("/") + "/"
            if not rel.startswith(prefix):
                raise ValueError(f"{path}: outside the workspace {self.workdir}")
            rel = rel[len(prefix) :]
        return resolve_inside(self.host_repo, rel)

    def read_file(self, path: str) -> str:
        """See `swerepair.core.Sandbox.read_file`. Only regular files are read (never a FIFO,
        socket or device, never through a symlink) and at most `MAX_FILE_BYTES`; anything
        else raises `ValueError`."""
        return read_regular(self.host_path(path)).decode("utf-8", errors="replace")

    def write_file(self, path: str, text: str) -> None:
        """See `swerepair.core.Sandbox.write_file`. Writes only regular files with one link,
        never through a symlink; new files belong to the sandbox's user."""
        write_regular(self.host_repo, self.host_path(path), text.encode("utf-8"), owner=self.file_owner)

    # -- patch -----------------------------------------------------------------------------
    def diff(self) -> str:
        """`git diff` against the base commit, untracked files included, without touching the
        workspace: a throwaway index and object directory take git's writes.

        Python caches (``__pycache__``, ``*.pyc``, ``.pytest_cache``) are left out whatever the
        repository's ``.gitignore`` says: they are by-products of running tests, not edits.
        A patch beyond `DIFF_LIMIT_BYTES` is cut there (the rewards accept any text).
        """
        base = shlex.quote(self.base_commit)
        script = (
            "set -e; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; "
            'cp .git/index "$t/index"; mkdir "$t/objects"; '
            'export GIT_INDEX_FILE="$t/index" GIT_OBJECT_DIRECTORY="$t/objects" '
            'GIT_ALTERNATE_OBJECT_DIRECTORIES="$PWD/.git/objects"; '
            f"g='git {_SAFE_GIT}'; "
            f"$g add -A -- . {_DIFF_EXCLUDES}; "
            f"$g diff --cached --no-color --no-ext-diff --no-textconv --no-renames {base}"
        )
        result = self.run(script, timeout=120.0, max_output_bytes=DIFF_LIMIT_BYTES)
        if not result.ok:
            raise SandboxError(f"git diff failed (exit {result.exit_code}): {result.output[-2000:]}")
        return result.output

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """See `swerepair.core.Sandbox.close`."""
        if self._closed:
            return
        self._closed = True
        shutil.rmtree(self.episode_dir, ignore_errors=True)

    def __enter__(self) -> WorkspaceSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; close() is the contract
        with contextlib.suppress(Exception):
            self.close()
