"""What the isolating sandboxes (bubblewrap, gVisor) share: the workspace handed to an
unprivileged uid when started by root, a cgroup for the command tree, and the disk budget."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from swerepair.core import SandboxError
from swerepair.envs.sandbox.base import SandboxConfig, WorkspaceSandbox
from swerepair.envs.sandbox.cgroup import Cgroup, CgroupSpec, create_cgroup
from swerepair.envs.sandbox.hostfs import chown_tree, tree_bytes

__all__ = ["DISK_POLL_S", "IsolatedSandbox"]

log = logging.getLogger(__name__)

#: Seconds between two measurements of the workspace's disk use while a command runs.
DISK_POLL_S = 0.02
_no_cgroup_logged = False


class IsolatedSandbox(WorkspaceSandbox):
    """A workspace sandbox whose commands run isolated; see `BubblewrapSandbox` and `GVisorSandbox`."""

    def __init__(self, episode_dir: Path, repo_dir: Path, base_commit: str, config: SandboxConfig) -> None:
        super().__init__(episode_dir, repo_dir, base_commit, config)
        self.cgroup: Cgroup | None = None
        self._base_size: int | None = None
        if os.geteuid() == 0:
            uid = config.sandbox_uid
            self.file_owner = (uid, uid)
            try:
                chown_tree(self.host_repo, self.file_owner)
            except OSError as exc:
                raise SandboxError(f"cannot hand the workspace to uid {uid}: {exc}") from exc

    def _make_cgroup(self) -> None:
        """Create the command tree's cgroup where the machine allows it (logged once where not)."""
        global _no_cgroup_logged
        limits = self.config.limits
        if not (limits.memory_bytes or limits.max_processes):
            return
        self.cgroup = create_cgroup(
            CgroupSpec(
                memory_bytes=limits.memory_bytes or (1 << 62),
                max_processes=limits.max_processes or 1 << 22,
                cpus=limits.cpus,
            )
        )
        if self.cgroup is None and not _no_cgroup_logged:
            _no_cgroup_logged = True
            log.warning(
                "no cgroup could be created here: the sandbox's memory and process limits apply "
                "per process only (see swerepair.envs.sandbox.cgroup)"
            )

    def _in_cgroup(self, argv: list[str]) -> list[str]:
        """`argv` behind a shell that first joins the cgroup, so every process it starts is inside."""
        if self.cgroup is None:
            return argv
        joins = " ".join(f"'{p}'" for p in self.cgroup.procs_files)
        script = f'for f in {joins}; do echo $$ > "$f" || exit 125; done; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *argv]

    def _disk_skip(self) -> tuple[str, ...]:
        """Top-level entries of the workspace the disk budget's walk leaves out: those no
        command can change (none here; a sandbox whose view binds some read-only says which)."""
        return ()

    def _disk_watch(self) -> Callable[[], str | None] | None:
        """A check of the workspace's growth against the disk budget, cheap enough to call every
        `DISK_POLL_S`: it skips calls while the last measurement's cost says it is too soon (a
        big repository is measured less often). ``None`` without a budget."""
        budget = self.config.limits.disk_bytes
        if not budget:
            return None
        skip = self._disk_skip()
        if self._base_size is None:
            self._base_size = tree_bytes(self.host_repo, skip=skip)
        repo, base_size = self.host_repo, self._base_size
        next_at = 0.0

        def watch() -> str | None:
            nonlocal next_at
            now = time.monotonic()
            if now < next_at:
                return None
            used = tree_bytes(repo, stop_at=base_size + budget, skip=skip) - base_size
            next_at = now + 10 * (time.monotonic() - now)
            return f"the workspace grew past its disk budget of {budget} bytes" if used > budget else None

        return watch

    def _release_cgroup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.close()
            self.cgroup = None

    def close(self) -> None:
        """See `swerepair.core.Sandbox.close`; also removes the sandbox's cgroup."""
        self._release_cgroup()
        super().close()
