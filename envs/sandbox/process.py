"""Run one process tree with a timeout, a capture limit and resource limits.

Shared by every sandbox. The command's stdout and stderr go to one pipe; the first
`max_output_bytes` bytes are kept, the rest is counted and discarded, so a command that prints
gigabytes costs no memory. On timeout the whole process group is killed with SIGKILL; after a
normal exit the group is killed too, so background jobs do not outlive the call (within the
limits of process groups: a program that calls `setsid` escapes a group, which is why the
bubblewrap sandbox also uses a PID namespace).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from swerepair.core import ExecResult

__all__ = ["ResourceLimits", "prlimit_prefix", "run_process"]


@dataclass(frozen=True)
class ResourceLimits:
    """Resource limits of sandbox commands.

    Per process (setrlimit, every sandbox):

    Attributes:
        cpu_seconds: CPU time per process; `None` derives it from the command's timeout.
        address_space_bytes: virtual memory per process (RLIMIT_AS).
        file_size_bytes: largest file a process may write (RLIMIT_FSIZE).
        open_files: open file descriptors per process (RLIMIT_NOFILE).
        max_output_bytes: how much of the command's output is kept; the rest is counted only.

    For the whole command tree (bubblewrap; a cgroup where the machine allows one, see
    `swerepair.envs.sandbox.cgroup`; 0 turns a limit off):

    Attributes:
        memory_bytes: memory of all the command's processes together (tmpfs pages included).
        max_processes: processes and threads alive at once.
        cpus: CPU time per wall second (1.0 = one core); 0 for no limit.
        disk_bytes: how much the workspace may grow beyond its starting size.
        tmp_bytes: size of the private ``/tmp`` (and ``/dev/shm``) of each command.
    """

    cpu_seconds: int | None = None
    address_space_bytes: int = 4 << 30
    file_size_bytes: int = 256 << 20
    open_files: int = 1024
    max_output_bytes: int = 1 << 20
    memory_bytes: int = 4 << 30
    max_processes: int = 512
    cpus: float = 0.0
    disk_bytes: int = 1 << 30
    tmp_bytes: int = 512 << 20


def prlimit_prefix(limits: ResourceLimits, timeout: float, *, nproc: int | None = None) -> list[str]:
    """argv prefix that applies `limits` with util-linux `prlimit` (empty if it is missing).

    `nproc` also sets RLIMIT_NPROC: the fallback process limit where no cgroup bounds the tree
    (it counts every process of the command's uid, in its user namespace).

    `prlimit` is used instead of a `preexec_fn` because `preexec_fn` is unsafe in threaded
    programs (rollout workers often are).
    """
    exe = _prlimit()
    if exe is None:
        return []
    cpu = limits.cpu_seconds if limits.cpu_seconds is not None else int(timeout) + 5
    return [
        exe,
        f"--cpu={cpu}",
        f"--as={limits.address_space_bytes}",
        f"--fsize={limits.file_size_bytes}",
        f"--nofile={limits.open_files}",
        *([f"--nproc={nproc}"] if nproc else []),
        "--",
    ]


@functools.lru_cache(maxsize=1)
def _prlimit() -> str | None:
    exe = shutil.which("prlimit", path="/usr/bin:/bin")
    if exe is None:
        logging.getLogger(__name__).warning(
            "util-linux 'prlimit' was not found: sandbox commands run WITHOUT resource limits"
        )
    return exe


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_process(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    cwd: str | None = None,
    stdin: str | None = None,
    max_output_bytes: int = 1 << 20,
    pass_fds: Sequence[int] = (),
    watch: Callable[[], str | None] | None = None,
    watch_every: float = 0.25,
) -> ExecResult:
    """Run `argv` in a new session and return what it printed and how it ended.

    `watch`, if given, is called every `watch_every` seconds while the command runs; when it
    returns a reason, the process group is killed and the result's `killed_reason` says why.
    Raises `OSError` only if the program cannot be started at all.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    if stdin is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin.encode("utf-8"))
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    kept = bytearray()
    total = 0
    timed_out = False
    deadline = start + timeout
    exit_seen_at: float | None = None
    killed_reason: str | None = None
    next_watch = start + watch_every
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if exit_seen_at is None and proc.poll() is not None:
                # The main process is gone: kill leftovers that may hold the pipe open,
                # then drain what is already buffered.
                _kill_group(proc)
                exit_seen_at = now
            if exit_seen_at is not None and now - exit_seen_at > 2.0:
                break
            if exit_seen_at is None and now >= deadline:
                timed_out = True
                _kill_group(proc)
                exit_seen_at = now
            if exit_seen_at is None and watch is not None and now >= next_watch:
                next_watch = now + watch_every
                killed_reason = watch()
                if killed_reason is not None:
                    _kill_group(proc)
                    exit_seen_at = now
            wait = 0.05 if exit_seen_at is None else 0.01
            if not sel.select(min(wait, max(deadline - now, 0.0) + 0.01)):
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            total += len(chunk)
            room = max_output_bytes - len(kept)
            if room > 0:
                kept += chunk[:room]
    proc.stdout.close()
    if proc.poll() is None:
        # The output pipe closed but the process runs on: wait out the rest of its time.
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            timed_out = True
    _kill_group(proc)
    exit_code = proc.wait()
    if killed_reason is None and watch is not None and not timed_out:
        killed_reason = watch()  # a burst at the very end still counts
    if killed_reason is not None:
        kept += f"\n[killed: {killed_reason}]".encode()
    return ExecResult(
        output=bytes(kept).decode("utf-8", errors="replace"),
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=total > len(kept),
        duration_s=time.monotonic() - start,
        output_bytes=total,
        killed_reason=killed_reason,
    )
