"""The gVisor sandbox: each command runs in a gVisor container (``runsc``), under a kernel of
its own written in a memory-safe language, for policies you treat as hostile.

What is covered, beyond what bubblewrap covers (same view of the host, `swerepair.envs.sandbox.view`;
same unprivileged uid, no capabilities, ``no_new_privs``; no network; the cgroup, rlimits,
disk budget, timeout and output cap of `IsolatedSandbox`):
- **The host kernel.** The command's system calls are served by gVisor's Sentry, not by the
  host kernel (``--platform=ptrace`` here: no KVM needed); a kernel bug the command could
  reach under bubblewrap is not reachable. Files reach the Sentry through gVisor's gofer, which
  opens only the mounted paths.

What is not covered:
- Bugs in gVisor itself, and side channels of the shared hardware.
- It is slower: about 0.19 s per command against about 13 ms under bubblewrap (see
  benchmarks/env_step.py); use it for evaluation of untrusted policies, or when the extra
  cost per tool call is small against generation.
- It needs root here (``runsc run`` sets up its sandbox with privileges; rootless runsc is
  not used).

`runsc` is a Debian package (``apt-get install runsc``); gVisor is also a Docker runtime
(``--runtime=runsc``), which the Docker sandbox can use.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

from swerepair.core import ExecResult, SandboxError
from swerepair.envs.sandbox.base import SandboxConfig
from swerepair.envs.sandbox.isolated import DISK_POLL_S, IsolatedSandbox
from swerepair.envs.sandbox.process import run_process
from swerepair.envs.sandbox.view import RBIN, WORKDIR, host_view

__all__ = ["GVisorSandbox", "runsc_available"]

_ids = itertools.count()


@functools.lru_cache(maxsize=1)
def runsc_available() -> bool:
    """True when ``runsc`` is installed and this process is root (what this sandbox needs)."""
    return shutil.which("runsc") is not None and os.geteuid() == 0


class GVisorSandbox(IsolatedSandbox):
    """Commands run as gVisor containers with the workspace at ``/workspace`` (module docstring)."""

    workdir = WORKDIR

    def __init__(self, episode_dir: Path, repo_dir: Path, base_commit: str, config: SandboxConfig) -> None:
        exe = shutil.which("runsc")
        if exe is None:
            raise SandboxError("gVisor (runsc) is not installed; apt-get install runsc")
        if os.geteuid() != 0:
            raise SandboxError("the gVisor sandbox needs root here; use sandbox='bubblewrap' as a user")
        super().__init__(episode_dir, repo_dir, base_commit, config)
        self._runsc = exe
        self._bundle = episode_dir / "bundle"
        self._state = episode_dir / "runsc-state"
        rootfs = self._bundle / "rootfs"
        rootfs.mkdir(parents=True)
        self._state.mkdir()
        self._mounts = self._oci_mounts(rootfs)
        self._make_cgroup()

    @property
    def rbin_path(self) -> str:
        return RBIN

    def _oci_mounts(self, rootfs: Path) -> list[dict[str, object]]:
        limits = self.config.limits
        mounts: list[dict[str, object]] = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [f"size={limits.tmp_bytes}"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs", "options": [f"size={limits.tmp_bytes}"]},
        ]
        for m in host_view(self.config.python, self.rbin, self.host_repo):
            if m.kind == "symlink":  # the root filesystem is ours: the link lives there
                os.symlink(m.source, rootfs / m.dest.lstrip("/"))
            elif m.kind == "hide":
                mounts.append({"destination": m.dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
            else:
                mode = "ro" if m.kind == "ro" else "rw"
                mounts.append({"destination": m.dest, "type": "bind", "source": m.source, "options": ["rbind", mode]})
        return mounts

    def _spec(self, inner: list[str], env: dict[str, str], timeout: float) -> dict[str, object]:
        limits = self.config.limits
        cpu = limits.cpu_seconds if limits.cpu_seconds is not None else int(timeout) + 5
        rlimits = {
            "RLIMIT_CPU": cpu,
            "RLIMIT_AS": limits.address_space_bytes,
            "RLIMIT_FSIZE": limits.file_size_bytes,
            "RLIMIT_NOFILE": limits.open_files,
        }
        uid = self.file_owner[0] if self.file_owner else os.getuid()
        no_caps: dict[str, list[str]] = {
            k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")
        }
        return {
            "ociVersion": "1.0.0",
            "process": {
                "terminal": False,
                "user": {"uid": uid, "gid": uid},
                "args": inner,
                "env": [f"{k}={v}" for k, v in env.items()],
                "cwd": WORKDIR,
                "capabilities": no_caps,
                "noNewPrivileges": True,
                "rlimits": [{"type": k, "hard": v, "soft": v} for k, v in rlimits.items()],
            },
            "root": {"path": "rootfs", "readonly": True},
            "hostname": "sandbox",
            "mounts": self._mounts,
            "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
        }

    def _launch(
        self, inner: list[str], env: dict[str, str], timeout: float, stdin: str | None, max_output: int
    ) -> ExecResult:
        (self._bundle / "config.json").write_text(json.dumps(self._spec(inner, env, timeout)))
        cid = f"swerepair-{os.getpid()}-{next(_ids)}"
        base = [self._runsc, "--network=none", "--platform=ptrace", "--ignore-cgroups", "--root", str(self._state)]
        argv = self._in_cgroup([*base, "run", "--bundle", str(self._bundle), cid])
        try:
            result = run_process(
                argv,
                timeout=timeout,
                env={"PATH": "/usr/bin:/bin"},
                stdin=stdin,
                max_output_bytes=max_output,
                watch=self._disk_watch(),
                watch_every=DISK_POLL_S,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start runsc: {exc}") from exc
        finally:
            # `runsc run` removes its container when it ends by itself; a killed one leaves it
            # (its state files name it): remove it then, and only then
            if any(name.startswith(f"{cid}_") for name in os.listdir(self._state)):
                subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30, check=False)
        if result.exit_code != 0 and result.output.lstrip().startswith(("running container:", "creating container:")):
            raise SandboxError(f"runsc could not start the container: {result.output.strip()[:2000]}")
        return result
