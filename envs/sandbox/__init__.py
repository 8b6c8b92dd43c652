"""Sandboxes: where the agent's commands run. See `bubblewrap` and `local` for what each isolates.

`make_sandbox(kind, task)` prepares a fresh workspace for `task` (a copy of the cached checkout
at its base commit) and returns a sandbox over it. `kind` is ``"bubblewrap"``, ``"local"`` or
``"gvisor"`` (a gVisor kernel per command, for hostile policies), ``"auto"`` (bubblewrap where it
works, else local with a loud warning).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

from swerepair.core import ExecResult, Sandbox, SandboxError, Task
from swerepair.envs.sandbox.base import SandboxConfig, WorkspaceSandbox
from swerepair.envs.sandbox.bubblewrap import BubblewrapSandbox, bwrap_available
from swerepair.envs.sandbox.gvisor import GVisorSandbox, runsc_available
from swerepair.envs.sandbox.local import LocalSandbox, LocalSandboxWarning
from swerepair.envs.sandbox.process import ResourceLimits
from swerepair.envs.sandbox.workspace import TaskRepositoryError, new_workspace, prepare_checkout

if TYPE_CHECKING:
    from swerepair.envs.sandbox.docker import DockerSandbox

__all__ = [
    "SANDBOX_KINDS",
    "BubblewrapSandbox",
    "ExecResult",
    "GVisorSandbox",
    "LocalSandbox",
    "LocalSandboxWarning",
    "ResourceLimits",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "TaskRepositoryError",
    "WorkspaceSandbox",
    "bwrap_available",
    "make_sandbox",
    "resolve_kind",
    "runsc_available",
    "with_task_environment",
]

SANDBOX_KINDS = ("auto", "bubblewrap", "gvisor", "docker", "local")


def resolve_kind(kind: str) -> str:
    """Turn ``"auto"`` into the sandbox that will actually be used; validate the others."""
    if kind not in SANDBOX_KINDS:
        raise ValueError(f"unknown sandbox {kind!r}; choose one of {SANDBOX_KINDS}")
    if kind == "auto":
        return "bubblewrap" if bwrap_available() else "local"
    return kind


def make_sandbox(
    kind: str,
    task: Task,
    config: SandboxConfig | None = None,
    *,
    image: str | None = None,
    runtime: str | None = None,
) -> WorkspaceSandbox | DockerSandbox:
    """A new sandbox with a fresh workspace of `task.repo` at `task.base_commit`.

    For ``kind="docker"``: `image` (default ``config.docker_image``, else the task's image, see
    `DockerSandbox.for_task`) and `runtime` (default ``config.docker_runtime``; ``"runsc"`` for
    gVisor) choose the container."""
    config = config or SandboxConfig()
    kind = resolve_kind(kind)
    if kind == "docker":
        from swerepair.envs.sandbox.docker import DockerSandbox

        return DockerSandbox.for_task(
            task, image or config.docker_image, config, runtime=runtime or config.docker_runtime
        )
    if kind == "bubblewrap" and not bwrap_available():
        raise SandboxError("bubblewrap cannot create namespaces here; use sandbox='local'")
    if kind == "gvisor" and not runsc_available():
        raise SandboxError("the gVisor sandbox needs runsc (apt-get install runsc) and root")
    config = with_task_environment(task, config)
    checkout = prepare_checkout(task)
    episode_dir, repo_dir = new_workspace(checkout, parent=config.tmp_dir)
    cls = {"bubblewrap": BubblewrapSandbox, "gvisor": GVisorSandbox}.get(kind, LocalSandbox)
    try:
        return cls(episode_dir, repo_dir, task.base_commit, config)
    except BaseException:
        import shutil

        shutil.rmtree(episode_dir, ignore_errors=True)
        raise


def with_task_environment(task: Task, config: SandboxConfig) -> SandboxConfig:
    """`config` with `task`'s built Docker-free environment as its interpreter, where there is one
    (`swerepair.envs.pyenvs.environment_for`) and `config` leaves the interpreter to the default."""
    if config.environments is None or config.python != sys.executable:
        return config
    from swerepair.envs.pyenvs.manage import environment_for

    root = None if config.environments == "auto" else config.environments
    python = environment_for(task, root)
    return config if python is None else dataclasses.replace(config, python=str(python))
