"""The bubblewrap sandbox: commands run in Linux namespaces as an unprivileged user.

Two modes (`SandboxConfig.session`), with the same guarantees per command:
- **session** (the default): one bubblewrap per sandbox (per episode), set up once; its PID 1 is
  a small supervisor (`swerepair.envs.sandbox.session`) that spawns each command as a fresh
  process with the identity, filter and limits below, and kills everything the command left
  before it answers. A step then costs a few times a bare process instead of a bubblewrap start.
- **per command** (``session=False``): a fresh bubblewrap for every command.
The verifier's sandboxes always run per command.

What is covered (started by root or by an ordinary user alike, in both modes):
- **Identity and privileges.** The command never holds a capability and never runs as host
  uid 0. Started by root, bubblewrap sets up the namespaces and mounts, then the command is
  switched to an unprivileged uid (`SANDBOX_UID`, ``nobody``) with an empty bounding set and
  ``no_new_privs``: it is an ordinary user of the host kernel. Started by a user, bubblewrap
  runs unprivileged in a new user namespace (capabilities dropped, no nested user namespaces).
  A **seccomp filter** (`swerepair.envs.sandbox.seccomp`) denies the mount family, ptrace,
  kexec, bpf, keyctl, new namespaces, io_uring and the like. Before the first command, a
  **self-check** runs a probe inside: if it holds any capability, runs as host root, lacks the
  filter or can write a kernel setting, the sandbox refuses to start and says why.
- **Filesystem.** Only ``/usr`` (with the ``/bin``, ``/lib*``, ``/sbin`` links), the files of
  ``/etc`` that programs need (no ``shadow``, no keys), the Python interpreter's prefixes and
  the restricted bin are visible, read-only. The repository is bind-mounted read-write at
  ``/workspace``, its ``.git`` read-only (and, under root, owned by root while the agent is
  not). ``/tmp`` and ``/dev/shm`` are private size-capped tmpfs that no command sees another's
  files in (per command: a new tmpfs; session: emptied by the supervisor once nothing of the
  command is left, with the command's System V IPC objects and POSIX message queues);
  ``/proc`` is the sandbox's own PID namespace (``/proc/sys`` read-only); ``/sys`` is absent;
  ``/dev`` is minimal (read-only in a session). The home directory, the swerepair package
  (gold patches live there) and its cache are not visible, and the mount list is not in
  ``/proc/1/cmdline`` (it is passed on a file descriptor).
- **Network.** A new, empty network namespace: nothing on the host, the LAN or the internet
  can be reached, 127.0.0.1 included.
- **Processes.** New PID, IPC, UTS and cgroup namespaces; the command cannot see or signal
  host processes. Per command: when the command exits, or its timeout kills bubblewrap, the
  namespace's init dies and the kernel kills every process left in it. Session: when the
  command's main process exits, or the host ends it (timeout, disk budget), the supervisor
  kills every other process of the namespace and reaps them until none is left, then answers;
  the host also checks the sandbox's cgroup. Either way nothing outlives the call, so no agent
  code runs while the host reads the workspace. A command that kills the session's supervisor
  takes the namespace with it; it is reported killed (an observation) and the next command
  starts a fresh session.
- **Resources.** The whole command tree's memory, process count and CPU through a cgroup the
  sandbox creates for itself (`swerepair.envs.sandbox.cgroup`) where the machine allows it;
  per process: CPU seconds, address space, file size and open files (setrlimit: util-linux
  ``prlimit`` per command; the supervisor in a session); a disk
  budget for the workspace (watched while the command runs; the command is killed past it)
  and size-capped tmpfs; wall-clock timeout; output captured up to a limit.

What is not covered:
- Kernel exploits: namespaces share the host kernel. Use the gVisor mode (``sandbox="gvisor"``)
  or a VM for policies you treat as hostile.
- Without a cgroup (no delegation on cgroup v2, an unprivileged user on v1), memory and
  process limits are per process only; the sandbox logs this once.
- Session: the sandbox's mount, PID, network, UTS and cgroup namespaces last the episode
  (nothing of the agent can live on in them, see above); started by a user, the supervisor
  shares the agent's uid, so a command can end the session (through the supervisor's
  rlimits, say): that command is reported killed, the next one runs in a fresh session.
  A command's hard CPU-seconds limit is set right after ``posix_spawn`` returns (its soft
  limit holds from the start); its other hard limits hold from its first instruction.
- The disk budget is sampled (every `DISK_POLL_S`, less often for big workspaces): a command
  can overshoot it by what it writes between two samples (tens of MB on a fast disk), each
  file capped by the per-file size limit. The last sample is taken after the command's
  processes are gone; the workspace's ``.git`` is not walked (bound read-only, it cannot grow).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

from swerepair.core import ExecResult, SandboxError
from swerepair.envs.sandbox.base import SANDBOX_UID, SandboxConfig
from swerepair.envs.sandbox.isolated import DISK_POLL_S, IsolatedSandbox
from swerepair.envs.sandbox.process import prlimit_prefix, run_process
from swerepair.envs.sandbox.seccomp import build_filter, filter_fd
from swerepair.envs.sandbox.session import BwrapSession, SessionDied, session_rlimits
from swerepair.envs.sandbox.view import RBIN, USR_LINKS, WORKDIR, host_view

__all__ = ["SANDBOX_UID", "BubblewrapSandbox", "bwrap_available", "privilege_mode"]


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


def privilege_mode() -> str:
    """``"root"`` (bubblewrap runs privileged, the command as `SANDBOX_UID`) or ``"user"``
    (bubblewrap runs unprivileged in a user namespace)."""
    return "root" if os.geteuid() == 0 else "user"


def _traversable_parents(args: list[str]) -> list[str]:
    """`args` with every missing parent directory of a mount point created first, mode 0755:
    bubblewrap makes them 0700, which the unprivileged command could not cross."""
    widths = {"--ro-bind": 3, "--bind": 3, "--symlink": 3, "--tmpfs": 2, "--dir": 2, "--proc": 2, "--dev": 2}
    out: list[str] = []
    pending: list[str] = []  # --perms/--size apply to the next action: keep them next to it
    made: set[str] = {"/"}
    i = 0
    while i < len(args):
        opt = args[i]
        if opt in ("--perms", "--size"):
            pending += args[i : i + 2]
            i += 2
            continue
        width = widths.get(opt, 1)
        if opt in widths:
            dest = args[i + width - 1]
            parents = []
            parent = os.path.dirname(dest)
            while parent not in made:
                parents.append(parent)
                parent = os.path.dirname(parent)
            for p in reversed(parents):
                out += ["--perms", "0755", "--dir", p]
                made.add(p)
            made.add(dest)
        out += pending + args[i : i + width]
        pending = []
        i += width
    return out + pending


_SELF_CHECK = r"""
import ctypes, json, os
problems = []
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    value = value.strip()
    if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb") and int(value, 16):
        problems.append(f"holds capabilities ({key} {value})")
    if key == "NoNewPrivs" and value != "1":
        problems.append("no_new_privs is not set")
    if key == "Seccomp" and value != "2":
        problems.append("no seccomp filter is active")
if os.getuid() == 0 or os.geteuid() == 0:
    problems.append("runs as uid 0")
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sysrq-trigger"):
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        continue
    os.close(fd)
    problems.append(f"can write the kernel setting {path}")
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0:
    problems.append("can mount filesystems")
if libc.unshare(0x10000000) == 0:
    problems.append("can create user namespaces")
try:
    open("/etc/shadow").close()
    problems.append("can read /etc/shadow")
except OSError:
    pass
print("SWEREPAIR-SELF-CHECK " + json.dumps(problems))
"""

_verified: set[tuple[object, ...]] = set()


@functools.lru_cache(maxsize=1)
def _filter_hex() -> str:
    return build_filter().hex()


@functools.lru_cache(maxsize=1)
def _supervisor_python() -> str:
    """The session supervisor's interpreter: the system's ``/usr/bin/python3`` where it is 3.9
    or newer (a short path in ``/proc/1/cmdline``, always in the view), else the interpreter
    running this package (its prefixes are in the view too)."""
    real = os.path.realpath("/usr/bin/python3")
    version = re.fullmatch(r"python(\d+)\.(\d+)", os.path.basename(real))
    if version and (int(version[1]), int(version[2])) >= (3, 9) and os.access(real, os.X_OK):
        return "/usr/bin/python3"
    return sys.executable


_verify_lock = threading.Lock()


class BubblewrapSandbox(IsolatedSandbox):
    """Commands run under `bwrap` with the workspace at ``/workspace`` (see the module docstring)."""

    workdir = WORKDIR

    def __init__(self, episode_dir: Path, repo_dir: Path, base_commit: str, config: SandboxConfig) -> None:
        super().__init__(episode_dir, repo_dir, base_commit, config)
        exe = shutil.which("bwrap")
        if exe is None:
            raise SandboxError("bubblewrap (bwrap) is not installed; apt-get install bubblewrap")
        self._bwrap = exe
        self.mode = privilege_mode()
        self._setpriv: list[str] = []
        if self.mode == "root":
            setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
            if setpriv is None:
                raise SandboxError("the sandbox needs util-linux 'setpriv' to drop root (apt-get install util-linux)")
            uid = config.sandbox_uid
            if uid == 0:
                raise SandboxError("sandbox_uid must not be 0: commands would run as host root")
            self._setpriv = [
                setpriv,
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        self._mounts = self._mount_args()
        #: whether the view binds the workspace's .git read-only (see `_disk_skip`); None: not known yet
        self._git_ro: bool | None = None
        #: the workspace directory sessions bind (device, inode); a session runs only while it holds
        self._session_workspace = self._workspace_identity()
        self._session: BwrapSession | None = None
        self._session_lock = threading.Lock()
        self._make_cgroup()
        try:
            self._verify()
        except BaseException:
            self._close_session()
            self._release_cgroup()
            raise

    @property
    def rbin_path(self) -> str:
        return RBIN

    # -- mounts ------------------------------------------------------------------------------
    def _mount_args(self) -> list[str]:
        args: list[str] = []
        limits = self.config.limits
        tmpfs = ["--proc", "/proc", "--dev", "/dev"]
        tmpfs += ["--perms", "01777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        tmpfs += ["--perms", "01777", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm"]
        for m in host_view(self.config.python, self.rbin, self.host_repo):
            if m.kind == "symlink":
                args += ["--symlink", m.source, m.dest]
            elif m.kind == "hide":
                args += ["--tmpfs", m.dest]
            else:
                if tmpfs and not m.dest.startswith(("/usr", "/etc", *USR_LINKS)):
                    args += tmpfs  # before the first prefix: a prefix under /tmp stays visible
                    tmpfs = []
                args += ["--ro-bind" if m.kind == "ro" else "--bind", m.source, m.dest]
        args = _traversable_parents(args + tmpfs)
        args += ["--remount-ro", "/", "--chdir", WORKDIR]
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        if self.mode == "user":
            args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
        return args

    # -- launching ---------------------------------------------------------------------------
    def _launch(
        self, inner: list[str], env: dict[str, str], timeout: float, stdin: str | None, max_output: int
    ) -> ExecResult:
        return self._launch_any(inner, env, timeout, stdin, max_output, watch_disk=True)

    def _launch_any(
        self,
        inner: list[str],
        env: dict[str, str],
        timeout: float,
        stdin: str | None,
        max_output: int,
        *,
        watch_disk: bool,
    ) -> ExecResult:
        """Run `inner` in the sandbox's session (``config.session``), else in a bwrap of its own.
        A command that finds the session busy (a command abandoned by its caller still runs
        there) gets a bwrap of its own too."""
        if self.config.session:
            result = self._launch_in_session(inner, env, timeout, stdin, max_output, watch_disk=watch_disk)
            if result is not None:
                return result
        return self._launch_bwrap(inner, env, timeout, stdin, max_output, watch_disk=watch_disk)

    # -- the session ---------------------------------------------------------------------------
    def _launch_in_session(
        self,
        inner: list[str],
        env: dict[str, str],
        timeout: float,
        stdin: str | None,
        max_output: int,
        *,
        watch_disk: bool,
    ) -> ExecResult | None:
        limits = self.config.limits
        rlimits = session_rlimits(
            limits.cpu_seconds if limits.cpu_seconds is not None else int(timeout) + 5,
            limits.address_space_bytes,
            limits.file_size_bytes,
            limits.open_files,
            None if self.cgroup else limits.max_processes,
        )
        watch = self._disk_watch() if watch_disk else None
        if self._workspace_identity() != self._session_workspace:
            # the workspace was removed or replaced behind our back: a session would go on in the
            # old directory; a bubblewrap of its own binds what is there now (or fails to)
            self._close_session()
            return None
        for attempt in (1, 2):
            session = self._current_session()
            try:
                return session.try_run(inner, env, rlimits, timeout, stdin, max_output, watch, DISK_POLL_S)
            except SessionDied:
                # the supervisor was gone before the command started (a command before ended
                # it): nothing ran; one more try in a fresh session
                session.close()
                if attempt == 2:
                    raise SandboxError("the sandbox session died twice before a command could start") from None
        return None  # pragma: no cover

    def _disk_skip(self) -> tuple[str, ...]:
        """The workspace's ``.git`` where every command sees it through a read-only bind (this
        sandbox's view: no command can change what it holds, and the host's tools never write
        it): the disk check, which runs after every command, measures the same growth walking a
        fraction of the tree."""
        if self._git_ro is None:
            git = str(self.host_repo / ".git")
            m = self._mounts
            bound = any(m[i : i + 3] == ["--ro-bind", git, f"{WORKDIR}/.git"] for i in range(len(m) - 2))
            try:
                self._git_ro = bound and stat.S_ISDIR(os.lstat(git).st_mode)
            except OSError:
                self._git_ro = False
        return (".git",) if self._git_ro else ()

    def _workspace_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the host directory bound at the workspace; None if it is gone."""
        try:
            st = os.stat(self.host_repo)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _current_session(self) -> BwrapSession:
        """The running session; a fresh one if there is none, it died, or the mounts changed."""
        with self._session_lock:
            return self._session_now()

    def _session_now(self) -> BwrapSession:
        session = self._session
        if session is not None and session.alive and session.mounts is self._mounts:
            return session
        if session is not None:
            session.close()
        self._session = None
        session = self._session = self._start_session()
        return session

    def _start_session(self) -> BwrapSession:
        mounts = self._mounts
        root = self.mode == "root"
        # What the supervisor needs for its one-time set-up (its own mount and IPC namespace, the
        # drop to the agent's uid); it holds none of them once it serves commands.
        keep = ["CAP_SYS_ADMIN", "CAP_SETPCAP"] + (["CAP_SETUID", "CAP_SETGID"] if root else [])
        python = _supervisor_python()

        def argv_for(script_fd: int, ctrl_fd: int, status_w: int) -> tuple[list[str], list[int]]:
            # The session ends on its socket's EOF, not with the host thread that started it; the
            # supervisor need not enter the workspace (each command does, once it is the agent).
            options = [a for a in mounts if a != "--die-with-parent"]
            i = options.index("--chdir")
            del options[i : i + 2]
            options += ["--as-pid-1", "--cap-drop", "ALL"]
            for cap in keep:
                options += ["--cap-add", cap]
            options += ["--json-status-fd", str(status_w)]
            args_fd = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
            os.write(args_fd, b"".join(a.encode() + b"\0" for a in options))
            os.lseek(args_fd, 0, os.SEEK_SET)
            argv = [self._bwrap, "--args", str(args_fd), "--", python, "-I", "-S", "-B"]
            argv += [f"/proc/self/fd/{script_fd}", str(ctrl_fd)]
            return self._in_cgroup(argv), [args_fd]

        limits = self.config.limits
        hello = {
            "uid": self.config.sandbox_uid if root else None,
            "workdir": WORKDIR,
            # hard caps the supervisor holds (one process more for itself), so that a command
            # holds them from its first instruction; each command then gets its own exact limits
            "rlimits": session_rlimits(
                None,
                limits.address_space_bytes,
                limits.file_size_bytes,
                limits.open_files,
                None if self.cgroup else limits.max_processes + 1,
            ),
            "filter": _filter_hex(),
        }
        procs = self.cgroup.procs_files[0] if self.cgroup is not None else None
        session = BwrapSession(argv_for, hello, cgroup_procs=procs)
        session.mounts = mounts
        return session

    def _close_session(self) -> None:
        session, self._session = getattr(self, "_session", None), None
        if session is not None:
            session.close()

    def close(self) -> None:
        """See `swerepair.core.Sandbox.close`; ends the session (nothing of it is left on the
        host), then removes the cgroup and the workspace."""
        self._close_session()
        super().close()

    def _launch_bwrap(
        self,
        inner: list[str],
        env: dict[str, str],
        timeout: float,
        stdin: str | None,
        max_output: int,
        *,
        watch_disk: bool,
    ) -> ExecResult:
        status_r, status_w = os.pipe()
        fds = [status_r, status_w]
        try:
            seccomp = filter_fd()
            fds.append(seccomp)
            setenv: list[str] = []
            for key, value in env.items():
                setenv += ["--setenv", key, value]
            options = [*self._mounts, *setenv, "--seccomp", str(seccomp), "--json-status-fd", str(status_w)]
            args_fd = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
            fds.append(args_fd)
            os.write(args_fd, b"".join(a.encode() + b"\0" for a in options))
            os.lseek(args_fd, 0, os.SEEK_SET)
            argv = [
                self._bwrap,
                "--args",
                str(args_fd),
                "--",
                *self._setpriv,
                *prlimit_prefix(
                    self.config.limits, timeout, nproc=None if self.cgroup else self.config.limits.max_processes
                ),
                *inner,
            ]
            launcher_env = {"PATH": "/usr/bin:/bin"}
            argv = self._in_cgroup(argv)
            watch = self._disk_watch() if watch_disk else None
            try:
                result = run_process(
                    argv,
                    timeout=timeout,
                    env=launcher_env,
                    stdin=stdin,
                    max_output_bytes=max_output,
                    pass_fds=(status_w, seccomp, args_fd),
                    watch=watch,
                    watch_every=DISK_POLL_S,
                )
            except OSError as exc:
                raise SandboxError(f"cannot start bwrap: {exc}") from exc
            os.close(status_w)
            fds.remove(status_w)
            with os.fdopen(status_r, "rb") as status:
                fds.remove(status_r)
                events = [json.loads(line) for line in status.read().splitlines() if line.strip()]
        finally:
            for fd in fds:
                os.close(fd)
        # bwrap reports "exit-code" only once the command itself ran; without it, setting up
        # the sandbox failed (a mount, a namespace, the cgroup) and the output is the complaint.
        ran = any("exit-code" in e for e in events)
        if not ran and not result.timed_out and not result.killed_reason:
            if result.exit_code < 0:
                raise SandboxError(f"bwrap was killed by signal {-result.exit_code} before the command ran")
            raise SandboxError(f"bwrap could not set up the sandbox: {result.output.strip()[:2000]}")
        return result

    # -- self-check --------------------------------------------------------------------------
    def _verify(self) -> None:
        """Run the isolation probe once per process and settings; refuse to run if it fails.

        The probe checks what only the inside can tell (capabilities, no_new_privs, seccomp,
        writable kernel settings, mount, user namespaces, /etc/shadow) and that it is not uid 0.
        Its host uid is settled outside: `SANDBOX_UID` (never 0) under root, the caller's
        own non-zero uid otherwise (a nested user namespace hides the host mapping from inside)."""
        key = (self.mode, self.config.python, self.config.sandbox_uid, os.geteuid(), self.config.session)
        with _verify_lock:
            if key in _verified:
                return
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
            python = self.config.python
            if not os.access(python, os.X_OK):  # the probe needs some Python; the system's will do
                python = shutil.which("python3", path="/usr/bin:/bin") or python
            result = self._launch_any([python, "-I", "-c", _SELF_CHECK], env, 60.0, None, 1 << 16, watch_disk=False)
            marker = "SWEREPAIR-SELF-CHECK "
            lines = [ln for ln in result.output.splitlines() if ln.startswith(marker)]
            if not lines:
                raise SandboxError(f"the sandbox self-check did not run: {result.output.strip()[-1000:]}")
            problems = json.loads(lines[-1][len(marker) :])
            if problems:
                raise SandboxError(
                    "refusing to run: inside the sandbox a command " + "; ".join(problems) + f" (mode: {self.mode})"
                )
            _verified.add(key)
