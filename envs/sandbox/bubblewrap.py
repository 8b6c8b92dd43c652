"""The bubblewrap sandbox: each command runs in fresh Linux namespaces.

What is covered:
- **Filesystem.** Only the system directories (``/usr``, ``/etc``, ``/bin``, ``/lib*``,
  ``/sbin``) and the Python interpreter's prefixes are visible, read-only. The repository is
  bind-mounted read-write at ``/workspace``, its ``.git`` read-only. ``/tmp`` is a private
  tmpfs per command; ``/proc`` and ``/dev`` are minimal; everything else is read-only. The home directory, the swerepair
  package (gold patches live there) and its cache are not visible.
- **Network.** A new, empty network namespace: no interface but an unconfigured loopback, so
  nothing on the host, the LAN or the internet can be reached, 127.0.0.1 included.
- **Processes.** New PID, IPC, UTS and cgroup namespaces; the command cannot see or signal
  host processes. When the command exits, or its timeout kills bubblewrap, the namespace's
  init dies and the kernel kills every process left in it: background jobs and double-forked
  daemons do not outlive the call.
- **Resources.** Per process: CPU seconds, address space, file size and open files (setrlimit
  through ``prlimit``); wall-clock timeout per command; output captured up to a limit.

What is not covered:
- Kernel exploits: namespaces share the host kernel. Use a VM (or a container runtime with
  its own kernel) for code you consider hostile rather than merely clumsy.
- Total memory and CPU of the whole tree (no cgroup is created): a fork bomb is bounded only
  by the PID namespace dying at the timeout, and RLIMIT_AS is per process.
- Disk use inside the workspace beyond the per-file size limit.
- The user inside is root when the host user is root (no uid mapping is forced), so file
  permissions inside the workspace do not restrict it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from swerepair.core import ExecResult, SandboxError, cache_root
from swerepair.envs.sandbox.base import SandboxConfig, WorkspaceSandbox
from swerepair.envs.sandbox.process import prlimit_prefix, run_process

__all__ = ["BubblewrapSandbox", "bwrap_available"]

WORKDIR = "/workspace"
RBIN = "/opt/swerepair/bin"
_SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@functools.lru_cache(maxsize=1)
def bwrap_available() -> bool:
    """True when `bwrap` is installed and can create the namespaces this sandbox needs."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        proc = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _package_dir() -> str:
    import swerepair

    return os.path.realpath(os.path.dirname(swerepair.__file__))


class BubblewrapSandbox(WorkspaceSandbox):
    """Commands run under `bwrap` with the workspace at ``/workspace``."""

    workdir = WORKDIR

    def __init__(self, episode_dir: Path, repo_dir: Path, base_commit: str, config: SandboxConfig) -> None:
        super().__init__(episode_dir, repo_dir, base_commit, config)
        exe = shutil.which("bwrap")
        if exe is None:
            raise SandboxError("bubblewrap (bwrap) is not installed; apt-get install bubblewrap")
        self._bwrap = exe
        self._mounts = self._mount_args()

    @property
    def rbin_path(self) -> str:
        return RBIN

    def _mount_args(self) -> list[str]:
        args: list[str] = []
        for d in _SYSTEM_DIRS:
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        # The interpreter that runs the tests, wherever it lives (pyenv, venv, conda).
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
        py = Path(self.config.python)
        prefixes.add(str(py.parent.parent))
        prefixes.add(str(Path(os.path.realpath(py)).parent.parent))
        visible: list[str] = []
        for p in sorted(prefixes):
            real = os.path.realpath(p)
            if real == "/" or any(real == s or real.startswith(s + "/") for s in _SYSTEM_DIRS):
                continue  # never expose the whole root; system dirs are mounted already
            for path in {p, real}:
                if os.path.isdir(path) and path not in visible:
                    visible.append(path)
        # /tmp first: a prefix may live under /tmp and must stay visible above the tmpfs.
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in sorted(visible, key=len):
            args += ["--ro-bind", path, path]
        # Hide the swerepair package (its task data holds the gold patches) and the cache
        # (pristine checkouts) wherever a mount above exposed them, /usr included; then put
        # back any interpreter prefix that lives inside a hidden directory (an editable
        # install's .venv inside the source tree).
        exposed = [os.path.realpath(v) for v in visible] + [d for d in _SYSTEM_DIRS if not os.path.islink(d)]
        hidden = [
            secret
            for secret in (_package_dir(), os.path.realpath(cache_root()))
            if os.path.isdir(secret) and any(secret == v or secret.startswith(v + "/") for v in exposed)
        ]
        for secret in hidden:
            args += ["--tmpfs", secret]
        for path in sorted(visible, key=len):
            if any(path.startswith(h + "/") for h in hidden):
                args += ["--ro-bind", path, path]
        args += [
            "--dir",
            "/opt/swerepair",
            "--ro-bind",
            str(self.rbin),
            RBIN,
            "--bind",
            str(self.host_repo),
            WORKDIR,
        ]
        if (self.host_repo / ".git").is_dir():
            args += ["--ro-bind", str(self.host_repo / ".git"), f"{WORKDIR}/.git"]
        args += [
            "--remount-ro",
            "/",
            "--chdir",
            WORKDIR,
            "--unshare-all",
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
        ]
        return args

    def _launch(
        self, inner: list[str], env: dict[str, str], timeout: float, stdin: str | None, max_output: int
    ) -> ExecResult:
        read_fd, write_fd = os.pipe()
        try:
            setenv: list[str] = []
            for key, value in env.items():
                setenv += ["--setenv", key, value]
            argv = [
                self._bwrap,
                *self._mounts,
                *setenv,
                "--json-status-fd",
                str(write_fd),
                "--",
                *prlimit_prefix(self.config.limits, timeout),
                *inner,
            ]
            try:
                result = run_process(
                    argv,
                    timeout=timeout,
                    env={"PATH": "/usr/bin:/bin"},
                    stdin=stdin,
                    max_output_bytes=max_output,
                    pass_fds=(write_fd,),
                )
            except OSError as exc:
                raise SandboxError(f"cannot start bwrap: {exc}") from exc
            os.close(write_fd)
            write_fd = -1
            with os.fdopen(read_fd, "rb") as status:
                read_fd = -1
                events = [json.loads(line) for line in status.read().splitlines() if line.strip()]
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
        # bwrap reports "exit-code" only once the command itself ran; without it, setting up
        # the sandbox failed (a mount, a namespace) and the output is bwrap's complaint.
        ran = any("exit-code" in e for e in events)
        if not ran and not result.timed_out:
            raise SandboxError(f"bwrap could not set up the sandbox: {result.output.strip()[:2000]}")
        return result
