"""The local sandbox: commands run directly on the host, in the episode's workspace copy.

What is covered: the agent's shell is still restricted bash with the restricted PATH, each
command has a timeout and resource limits, and its process group is killed when it ends.

What is not covered: **everything else.** Commands see the whole filesystem with your
permissions, the network, and your other processes; a program that calls `setsid` escapes the
cleanup. Use it only where bubblewrap cannot run, with models you trust, or for debugging.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from swerepair.core import ExecResult, SandboxError
from swerepair.envs.sandbox.base import SandboxConfig, WorkspaceSandbox
from swerepair.envs.sandbox.process import prlimit_prefix, run_process

__all__ = ["LocalSandbox", "LocalSandboxWarning"]

log = logging.getLogger(__name__)


class LocalSandboxWarning(UserWarning):
    """The local sandbox was selected: it isolates nothing."""


class LocalSandbox(WorkspaceSandbox):
    """No isolation: rbash and resource limits only. Warns on creation."""

    def __init__(self, episode_dir: Path, repo_dir: Path, base_commit: str, config: SandboxConfig) -> None:
        super().__init__(episode_dir, repo_dir, base_commit, config)
        self.workdir = str(repo_dir)
        message = (
            "swerepair: the 'local' sandbox ISOLATES NOTHING: agent commands run on this host "
            "with your permissions and network access. Use sandbox='bubblewrap' where possible."
        )
        warnings.warn(message, LocalSandboxWarning, stacklevel=3)
        log.warning(message)

    def _launch(
        self, inner: list[str], env: dict[str, str], timeout: float, stdin: str | None, max_output: int
    ) -> ExecResult:
        try:
            return run_process(
                [*prlimit_prefix(self.config.limits, timeout), *inner],
                timeout=timeout,
                env=env,
                cwd=self.workdir,
                stdin=stdin,
                max_output_bytes=max_output,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start a local command: {exc}") from exc
