"""A bubblewrap session: one sandbox per episode, a fresh process per command.

Starting bubblewrap costs milliseconds (namespaces, about forty mounts, a cgroup join); a tool
step that runs ``true`` costs far less. A session starts bubblewrap once, with a small
**supervisor** (`SUPERVISOR`, run by the system's Python 3) as PID 1 of its namespace, and sends
it each command over a socket.

Set-up, once: bubblewrap builds the same namespaces and view as for a single command (minus
the seccomp argument), and gives the supervisor only ``CAP_SYS_ADMIN`` and ``CAP_SETPCAP`` (root
mode also ``CAP_SETUID``, ``CAP_SETGID``). The supervisor makes a mount and IPC namespace of its
own (its user namespace owns them in user mode), makes ``/dev`` read-only, mounts the IPC
namespace's message-queue filesystem where only it looks, then drops everything: every
capability set empty (the bounding set included), ``no_new_privs``, the hard per-process limits,
the same seccomp filter as every command, and the agent's uid: started by root its real and
saved uid and its gids are `SANDBOX_UID`'s while its effective uid stays 0 without any
capability (so the agent, a plain uid, cannot change its limits; files are touched as the
agent's uid); started by a user it is the agent's uid. It is not dumpable.

Per command: the supervisor spawns the command with ``posix_spawn`` (a vfork: no copy of its
memory), in a new session, with its output on the pipe the host handed over (and stdin's, or
``/dev/null``), default signal dispositions, the effective uid reset to the real one (root
mode), in ``/workspace``; it inherits the identity, filter and hard limits above, and the
supervisor then sets its exact limits (CPU seconds from the timeout) with prlimit. When the
command's main process exits, or the host asks (timeout, disk budget), the supervisor kills
every other process of the PID namespace and reaps them until it has no child left (every
process of the namespace descends from PID 1, so then none is left), empties ``/tmp`` and
``/dev/shm``, removes the System V IPC objects (util-linux ``ipcrm``, run as the agent's uid)
and POSIX message queues left, and only then answers with the exit status. Where the sandbox
has a cgroup, the host also checks that it holds nothing but bubblewrap and the supervisor.

The supervisor against the agent:
- as PID 1 it gets from inside its namespace only the signals it handles (SIGCHLD, on which it
  reaps): SIGKILL and SIGSTOP from the agent are ignored by the kernel; ptrace and
  process_vm_* are denied by the filter, and not being dumpable its ``/proc`` entries (``fd``,
  ``mem``, ``environ``) are closed to the agent;
- its control socket is close-on-exec, and it never reads the command's output (the host hands
  over the pipe and reads it), so the agent can write output but cannot forge an exit status
  (it keeps the pipe's write end, unused, until it has answered: the host then sees the end of
  the output with the answer and wakes once);
- if it dies all the same (the memory limit's OOM killer may pick it; started by a user the
  agent may lower its limits), the kernel kills the whole namespace with it; the host waits
  for bubblewrap to exit, reports the command as killed (``killed_reason``: an observation,
  never an exception) and starts a fresh session for the next command. The same happens when
  it does not answer within `KILL_GRACE_S` of a kill, or its cgroup holds an unknown process.
- the session ends when the host closes the socket (a crashed host included); it is not tied
  to the host thread that started it (bubblewrap's ``--die-with-parent`` would be).

What differs from the per-command mode: the sandbox's mount, PID, network, UTS and cgroup
namespaces last for the episode; nothing of the agent can stay in them (see above; the rest
of the view is read-only except the workspace). A command's hard CPU-seconds limit is set by
the supervisor's next system call after ``posix_spawn`` returns (until then its soft limit is
its own plus the supervisor's CPU time, its hard limit none); its other hard limits hold from
its first instruction. A command that finds the session busy (one abandoned by its caller
still runs) gets a bubblewrap of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from swerepair.core import ExecResult, SandboxError

__all__ = ["KILL_GRACE_S", "SUPERVISOR", "BwrapSession", "SessionDied"]

log = logging.getLogger(__name__)

#: Seconds the host waits for the supervisor to report a killed command before it gives the
#: session up (and kills the namespace from outside).
KILL_GRACE_S = 5.0
#: Seconds the host waits for a new session's supervisor to say it is ready.
START_TIMEOUT_S = 30.0
_MSG_MAX = 1 << 20

#: The supervisor, PID 1 of the session's namespace. It reads one JSON request per command from
#: the control socket (fd `argv[1]`), with the output pipe's write end (and stdin's read end)
#: attached, and answers ``{"exit": status}`` once the command and everything it started are gone,
#: or ``{"error": where, "message": text}``. ``{"kill": true}`` ends the running command.
SUPERVISOR = r"""
import ctypes, json, os, resource, select, signal, socket, stat, sys
CTRL = socket.socket(fileno=int(sys.argv[1]))
os.closerange(3, CTRL.fileno())
os.closerange(CTRL.fileno() + 1, 1 << 16)
os.set_inheritable(CTRL.fileno(), False)
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 4, 24, 38, 22, 47
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE = 16384, 1 << 18
CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MQ = "/dev/.swerepair-mq"
libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
signal.signal(signal.SIGINT, signal.SIG_DFL)

def send(obj):
    CTRL.send(json.dumps(obj).encode())

RECV_BUF = bytearray(1 << 20)  # one buffer for every request (a fresh 1 MiB one costs more than the rest)
FD_SPACE = socket.CMSG_SPACE(4 * 4)

def recv():
    n, anc, _, _ = CTRL.recvmsg_into([RECV_BUF], FD_SPACE)
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True) for i in range(0, len(data) - 3, 4)]
    for fd in fds:
        os.set_inheritable(fd, False)
    if not n:
        raise EOFError
    return json.loads(RECV_BUF[:n]), fds

def check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")

def mount(src, dst, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    check(libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), f"mount {dst}")

CONF, _ = recv()
UID = CONF["uid"]

# -- set-up, with the capabilities bubblewrap left us -----------------------------------------
# A mount and IPC namespace of our own (user mode: owned by our user namespace, so that we may
# mount in it): /dev read-only (in user mode the agent's uid owns it), and the IPC namespace's
# POSIX message queues where only we look, to remove what a command leaves.
check(libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
mount(None, "/", None, MS_REC | MS_PRIVATE)
os.mkdir(MQ, 0o700)
mount("mqueue", MQ, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
LAST_CAP = int(open("/proc/sys/kernel/cap_last_cap").read())
check(libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0), "clear ambient capabilities")
for cap in range(LAST_CAP + 1):
    libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
if UID is not None:
    # root: real uid and gids the agent's, effective and saved uid 0 (the agent, a plain uid,
    # can then neither change our limits nor our priority); each command gets the real uid as
    # its effective one before it executes (posix_spawn's resetids).
    os.setgroups([])
    os.setresgid(UID, UID, UID)
    os.setresuid(UID, 0, UID)
    libc.setfsuid(UID)  # files are touched as the agent's uid (the workspace, the scratch dirs)

class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
check(libc.capset(ctypes.byref(CapHeader(0x20080522, 0)), (CapData * 2)()), "capset")
check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
for res, soft, hard in CONF["rlimits"]:  # the hard caps every command inherits
    resource.setrlimit(res, (soft, hard))
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
FILTER = bytes.fromhex(CONF["filter"])
FILTER_BUF = ctypes.create_string_buffer(FILTER, len(FILTER))
check(libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(SockFprog(len(FILTER) // 8, ctypes.addressof(FILTER_BUF))), 0, 0),
      "seccomp")
os.chdir(CONF["workdir"])
DEVNULL = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
IPCRM = next((p for p in ("/usr/bin/ipcrm", "/bin/ipcrm") if os.access(p, os.X_OK)), None)
SCRATCH = [(d, os.stat(d).st_dev) for d in ("/tmp", "/dev/shm")]
wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGCHLD)

# -- between commands ------------------------------------------------------------------------
def reap_all():
    # Kill everything but ourselves in the PID namespace; return once no child is left (every
    # process of the namespace descends from PID 1, so then none is left at all).
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return

def wipe(path, dev, top):
    # Remove what the command left in a scratch directory, never crossing into another mount
    # (an interpreter prefix bound below /tmp stays).
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_dev != dev:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                os.chmod(e.path, 0o700)
            except OSError:
                pass
            wipe(e.path, dev, False)
            try:
                os.rmdir(e.path)
            except OSError:
                pass
        else:
            try:
                os.unlink(e.path)
            except OSError:
                pass
    if top:
        try:
            os.chmod(path, 0o1777)
        except OSError:
            pass

SYSVIPC = ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem")

def ipc_listed(path):
    # Whether the table lists an object: a line after its header (read until there is one, or EOF).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        data = b""
        while data.count(b"\n") < 2:
            more = os.read(fd, 65536)
            if not more:
                break
            data += more
        return data.count(b"\n") > 1 or (data.count(b"\n") == 1 and not data.endswith(b"\n"))
    except OSError:
        return False
    finally:
        os.close(fd)

def clean_ipc():
    # System V objects can be removed only by their owner (or CAP_SYS_ADMIN): util-linux ipcrm
    # does it as the agent's uid, where there are any. Message queues are files to us.
    if any(map(ipc_listed, SYSVIPC)) and IPCRM:
        try:
            quiet = [(os.POSIX_SPAWN_DUP2, DEVNULL, 1), (os.POSIX_SPAWN_DUP2, DEVNULL, 2)]
            pid = os.posix_spawn(IPCRM, ["ipcrm", "--all"], {}, resetids=UID is not None, file_actions=quiet)
            os.waitpid(pid, 0)
        except OSError:
            pass
    try:
        for name in os.listdir(MQ):
            os.unlink(os.path.join(MQ, name))
    except OSError:
        pass

def cleanup():
    reap_all()
    for d, dev in SCRATCH:
        wipe(d, dev, True)
    clean_ipc()

# -- one command -----------------------------------------------------------------------------
def serve(req, fds):
    out_fd, started_fd = fds[0], fds[1]
    in_fd = fds[2] if len(fds) > 2 else DEVNULL
    cpu = req["cpu"]
    # A command inherits our soft CPU-time limit (its own plus what we used so far) until it
    # gets its exact limits below, right after posix_spawn returns.
    own = resource.getrusage(resource.RUSAGE_SELF)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu + int(own.ru_utime + own.ru_stime) + 1, resource.RLIM_INFINITY))
    actions = [(os.POSIX_SPAWN_DUP2, in_fd, 0), (os.POSIX_SPAWN_DUP2, out_fd, 1), (os.POSIX_SPAWN_DUP2, out_fd, 2)]
    try:
        pid = os.posix_spawn(req["argv"][0], req["argv"], req["env"], file_actions=actions, setsid=True,
                             setsigdef=DEFAULT_SIGNALS, setsigmask=(), resetids=UID is not None)
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        cleanup()
        send({"error": "exec", "message": str(exc)})
        return
    # The command's exact limits (it holds the hard caps of the others already). Its uids are all
    # the agent's from the spawn on (resetids), so prlimit may act on it at once.
    for res, soft, hard in req["rlimits"]:
        try:
            resource.prlimit(pid, res, (soft, hard))
        except ProcessLookupError:
            break
        except OSError:  # never leave a command running without its limits
            os.kill(pid, signal.SIGKILL)
            break
    os.write(started_fd, b"s")  # the host reads it only if we die: the command did start
    # We keep the output pipe's write end (never writing to it) until we have answered: the host
    # then sees the end of the output with the answer, one wake-up instead of two.
    for fd in fds[1:]:
        os.close(fd)
    status = None
    while status is None:
        while True:
            try:
                got, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                got = 0
            if got == 0:
                break
            if got == pid:
                status = os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
                break
        if status is not None:
            break
        ready, _, _ = select.select([CTRL, wake_r], [], [])
        if wake_r in ready:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if CTRL in ready:
            msg, extra = recv()
            for fd in extra:
                os.close(fd)
            if msg.get("kill"):
                status = -9
    cleanup()
    send({"exit": status})
    os.close(out_fd)

send({"ready": True})
while True:
    try:
        req, fds = recv()
    except (EOFError, ConnectionError):
        break
    if req.get("quit"):
        break
    serve(req, fds)
reap_all()
"""


class SessionDied(Exception):
    """The session's supervisor is gone or broke its protocol (internal to `BwrapSession`)."""


class BwrapSession:
    """One long-lived bubblewrap whose supervisor runs commands; see the module docstring.

    `argv_for(script_fd, ctrl_fd, status_fd)` returns the launcher's argv (bubblewrap behind
    the cgroup join, the supervisor as its command) and the other descriptors it must inherit
    (closed here once it started); `hello` is the supervisor's configuration (``uid``: the
    agent's under root, else None; ``workdir``; ``rlimits``: the hard caps it holds;
    ``filter``: the seccomp program, hex). `cgroup_procs` is the sandbox cgroup's procs file,
    for the host's own check after each command. Starting returns at once; the first command
    waits for the supervisor to be ready."""

    def __init__(
        self,
        argv_for: Callable[[int, int, int], tuple[list[str], list[int]]],
        hello: dict,
        *,
        cgroup_procs: Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        #: the mount arguments it was started with (the sandbox starts another when they change)
        self.mounts: object = None
        self._ready = False
        self._closed = False
        self.supervisor_pid: int | None = None
        self._cgroup_procs = cgroup_procs
        self._infra_pids: set[int] = set()
        host, inner = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (host, inner):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MSG_MAX)
        self._ctrl = host
        self._buf = bytearray(_MSG_MAX)
        script_fd = os.memfd_create("swerepair-supervisor", os.MFD_CLOEXEC)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        try:
            os.write(script_fd, SUPERVISOR.encode())
            os.lseek(script_fd, 0, os.SEEK_SET)
            argv, extra_fds = argv_for(script_fd, inner.fileno(), status_w)
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env={"PATH": "/usr/bin:/bin"},
                    start_new_session=True,
                    pass_fds=(script_fd, inner.fileno(), status_w, *extra_fds),
                )
            finally:
                for fd in extra_fds:
                    os.close(fd)
        except OSError as exc:
            host.close()
            os.close(status_r)
            raise SandboxError(f"cannot start bwrap: {exc}") from exc
        finally:
            inner.close()
            os.close(script_fd)
            os.close(status_w)
        self._status_r = status_r
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._send(hello)

    # -- protocol ---------------------------------------------------------------------------
    def _send(self, obj: dict, fds: Sequence[int] = ()) -> None:
        try:
            socket.send_fds(self._ctrl, [json.dumps(obj).encode()], list(fds))
        except OSError as exc:
            raise SessionDied(f"cannot reach the supervisor: {exc}") from exc

    def _recv(self) -> dict:
        try:
            # into one buffer per session: a fresh 1 MiB one per message costs more than the rest
            n, anc, _, _ = self._ctrl.recvmsg_into([self._buf], socket.CMSG_SPACE(4 * 4))
        except OSError as exc:
            raise SessionDied(f"the supervisor's socket failed: {exc}") from exc
        for level, kind, data in anc:  # the supervisor never sends descriptors
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for i in range(0, len(data) - 3, 4):
                    with contextlib.suppress(OSError):
                        os.close(int.from_bytes(data[i : i + 4], sys.byteorder, signed=True))
        if not n:
            raise SessionDied("the supervisor is gone")
        try:
            msg = json.loads(self._buf[:n])
        except ValueError as exc:
            raise SessionDied("the supervisor sent something that is not JSON") from exc
        if not isinstance(msg, dict):
            raise SessionDied("the supervisor broke its protocol")
        return msg

    def _killed_from_outside(self, wait: float = 1.0) -> int | None:
        """The signal that ended bubblewrap, if one did (within `wait` seconds), else None (it
        exited because its PID 1, the supervisor, did)."""
        try:
            code = self._proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        return -code if code < 0 else None

    def _launcher_output(self) -> str:
        """What bubblewrap and the supervisor printed (read once they are gone)."""
        assert self._proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            os.set_blocking(self._proc.stdout.fileno(), True)
            return (self._proc.stdout.read() or b"").decode(errors="replace").strip()[-2000:]
        return ""

    def _await_ready(self) -> None:
        """Wait for the supervisor's hello; a session that cannot start is a `SandboxError`
        (bubblewrap could not set up the sandbox: a mount, a namespace, the cgroup)."""
        if self._ready:
            return
        readable, _, _ = _select([self._ctrl], START_TIMEOUT_S)
        msg: dict | None = None
        if readable:
            with contextlib.suppress(SessionDied):
                msg = self._recv()
        if not msg or not msg.get("ready"):
            self._give_up(release=False)
            output = self._launcher_output()
            self._release_fds()
            raise SandboxError(f"bwrap could not set up the sandbox: {output}")
        events = []
        with contextlib.suppress(OSError, ValueError):
            os.set_blocking(self._status_r, False)
            events = [json.loads(line) for line in os.read(self._status_r, 65536).splitlines() if line.strip()]
        pids = [e["child-pid"] for e in events if isinstance(e, dict) and "child-pid" in e]
        self.supervisor_pid = int(pids[0]) if pids else None
        if self._cgroup_procs is not None:
            self._infra_pids = set(_read_pids(self._cgroup_procs))
        self._ready = True

    @property
    def alive(self) -> bool:
        return not self._closed and self._proc.poll() is None

    # -- running ----------------------------------------------------------------------------
    def try_run(
        self,
        argv: list[str],
        env: dict[str, str],
        rlimits: list[list[int]],
        timeout: float,
        stdin: str | None,
        max_output: int,
        watch: Callable[[], str | None] | None,
        watch_every: float,
    ) -> ExecResult | None:
        """Run one command; ``None`` when another command holds the session (the caller then
        runs it on its own, per command)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._run(argv, env, rlimits, timeout, stdin, max_output, watch, watch_every)
        finally:
            self._lock.release()

    def _run(
        self,
        argv: list[str],
        env: dict[str, str],
        rlimits: list[list[int]],
        timeout: float,
        stdin: str | None,
        max_output: int,
        watch: Callable[[], str | None] | None,
        watch_every: float,
    ) -> ExecResult:
        if self._closed:
            raise SessionDied("the session is closed")
        self._await_ready()
        start = time.monotonic()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        started_r, started_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        in_r = in_w = None
        try:
            fds = [out_w, started_w]
            if stdin is not None:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                fds.append(in_r)
            try:
                cpu = next(soft for res, soft, _ in rlimits if res == resource.RLIMIT_CPU)
                self._send({"argv": argv, "env": env, "rlimits": rlimits, "cpu": cpu}, fds)
            except SessionDied:
                self._give_up()
                raise
            finally:
                os.close(out_w)
                os.close(started_w)
                out_w = started_w = None
                if in_r is not None:
                    os.close(in_r)
                    in_r = None
            if in_w is not None:
                _write_stdin(in_w, stdin or "")
                in_w = None
            return self._collect(out_r, started_r, start, timeout, max_output, watch, watch_every)
        finally:
            for fd in (out_r, out_w, started_r, started_w, in_r, in_w):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _collect(
        self,
        out_r: int,
        started_r: int,
        start: float,
        timeout: float,
        max_output: int,
        watch: Callable[[], str | None] | None,
        watch_every: float,
    ) -> ExecResult:
        os.set_blocking(out_r, False)
        kept = bytearray()
        total = 0
        timed_out = False
        killed_reason: str | None = None
        kill_sent_at: float | None = None
        status: int | None = None
        status_at = 0.0
        died: str | None = None
        gone = False  # the supervisor's socket closed: it (and the namespace) died
        output_open = True
        deadline = start + timeout
        next_watch = start + watch_every
        # bubblewrap, outside the namespace, out of the agent's sight and reach: if it exits during
        # the command, the host's side failed (it was killed), or the supervisor died
        try:
            bwrap_fd: int | None = os.pidfd_open(self._proc.pid)
        except (AttributeError, OSError):
            bwrap_fd = None
        with contextlib.ExitStack() as stack, selectors.DefaultSelector() as sel:
            if bwrap_fd is not None:
                stack.callback(os.close, bwrap_fd)
                sel.register(bwrap_fd, selectors.EVENT_READ, "bwrap")
            sel.register(out_r, selectors.EVENT_READ, "out")
            sel.register(self._ctrl, selectors.EVENT_READ, "ctrl")
            while status is None or output_open:
                now = time.monotonic()
                if status is None and kill_sent_at is None:
                    reason = None
                    if now >= deadline:
                        timed_out = True
                        reason = "timeout"
                    elif watch is not None and now >= next_watch:
                        next_watch = now + watch_every
                        killed_reason = watch()
                        reason = killed_reason
                    if reason is not None:
                        kill_sent_at = now
                        try:
                            self._send({"kill": True})
                        except SessionDied as exc:
                            died = str(exc)
                            break
                if status is None and kill_sent_at is not None and now - kill_sent_at > KILL_GRACE_S:
                    died = "the supervisor did not end the command"
                    break
                if status is not None and now - status_at > 2.0:
                    break  # the output pipe stays open: someone outside holds it; stop reading
                if status is None:
                    wait = (deadline - now) if kill_sent_at is None else KILL_GRACE_S - (now - kill_sent_at)
                    if watch is not None and kill_sent_at is None:
                        wait = min(wait, next_watch - now)
                    wait = max(wait, 0.0) + 0.001
                else:
                    wait = 0.05
                for key, _ in sel.select(wait):
                    if key.data == "bwrap":
                        died, gone = "bubblewrap exited", True
                        break
                    if key.data == "out":
                        try:
                            chunk = os.read(out_r, 65536)
                        except BlockingIOError:
                            continue
                        if not chunk:
                            output_open = False
                            sel.unregister(out_r)
                            continue
                        total += len(chunk)
                        room = max_output - len(kept)
                        if room > 0:
                            kept += chunk[:room]
                    else:
                        try:
                            msg = self._recv()
                        except SessionDied as exc:
                            died, gone = str(exc), True
                            break
                        if "exit" in msg and isinstance(msg["exit"], int):
                            status, status_at = msg["exit"], time.monotonic()
                            sel.unregister(self._ctrl)
                        elif "error" in msg:
                            return self._setup_error(msg, start)
                        else:
                            died = "the supervisor broke its protocol"
                            break
                if died:
                    break
        if died is None and not self._only_infrastructure_left():
            died = "a process outlived its command"
        if died is not None and not _started(started_r):
            # The supervisor was gone before the command started (a command before this one
            # ended it): nothing ran, the caller runs it again in a fresh session.
            self._give_up()
            raise SessionDied(died)
        if died is not None and gone:
            signal_no = self._killed_from_outside()
            if signal_no is not None:
                # bubblewrap, outside the namespace, was killed: the agent cannot see or signal it,
                # so the host's side failed (an operator, the OOM killer): not the agent's doing
                self._give_up()
                raise SandboxError(f"the sandbox's bubblewrap was killed (signal {signal_no}) during the command")
        if died is not None:
            log.warning("sandbox session given up: %s", died)
            self._give_up()
            # the namespace is gone now: drain what is left in the pipe
            with contextlib.suppress(OSError):
                while True:
                    chunk = os.read(out_r, 65536)
                    if not chunk:
                        break
                    total += len(chunk)
                    kept += chunk[: max(max_output - len(kept), 0)]
            if killed_reason is None and not timed_out:
                killed_reason = "the sandbox session ended during the command"
            status = -9
        elif timed_out or killed_reason is not None:
            status = -9
        if killed_reason is None and watch is not None and not timed_out:
            killed_reason = watch()  # a burst at the very end still counts
        if killed_reason is not None:
            kept += f"\n[killed: {killed_reason}]".encode()
        assert status is not None
        return ExecResult(
            output=bytes(kept).decode("utf-8", errors="replace"),
            exit_code=status,
            timed_out=timed_out,
            truncated=total > len(kept),
            duration_s=time.monotonic() - start,
            output_bytes=total,
            killed_reason=killed_reason,
        )

    def _setup_error(self, msg: dict, start: float) -> ExecResult:
        text = str(msg.get("message", ""))[:2000]
        if msg.get("error") == "exec":  # the command itself cannot run (too long, say)
            return ExecResult(
                output=f"cannot run the command: {text}",
                exit_code=126,
                duration_s=time.monotonic() - start,
            )
        self._give_up()
        raise SandboxError(f"the sandbox session could not set up the command: {text}")

    def _only_infrastructure_left(self) -> bool:
        """The host's own check, where there is a cgroup: no process of the session's PID
        namespace but the supervisor (a bubblewrap of a command run on its own meanwhile
        shares the cgroup, not the namespace)."""
        if self._cgroup_procs is None or not self._infra_pids or self.supervisor_pid is None:
            return True
        extra = set(_read_pids(self._cgroup_procs)) - self._infra_pids
        if not extra:
            return True
        try:
            ours = os.readlink(f"/proc/{self.supervisor_pid}/ns/pid")
        except OSError:
            return False
        for pid in extra:
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") == ours:
                    return False
            except OSError:
                continue  # gone
        return True

    # -- ending -----------------------------------------------------------------------------
    def _give_up(self, *, release: bool = True) -> None:
        """Kill the namespace from outside and wait until bubblewrap has exited (its PID 1
        exits only after every process of the namespace is gone)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._ctrl.close()
        if self.supervisor_pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.supervisor_pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("bubblewrap (pid %d) did not exit after SIGKILL", self._proc.pid)
        if release:
            self._release_fds()

    def _release_fds(self) -> None:
        for close in (lambda: os.close(self._status_r), self._proc.stdout.close if self._proc.stdout else None):
            if close is not None:
                with contextlib.suppress(OSError):
                    close()
        self._status_r = -1

    def close(self) -> None:
        """End the session: ask the supervisor to kill what is left and exit, and wait for
        bubblewrap; kill it from outside if that takes more than a second."""
        if self._closed:
            if self._proc.poll() is None:
                self._give_up()
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._ctrl.close()  # the supervisor reads EOF: it kills everything and exits
        try:
            self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self._give_up()
            return
        self._release_fds()


def _select(socks: list, timeout: float) -> tuple[list, list, list]:
    import select

    return select.select(socks, [], [], timeout)


def _started(fd: int) -> bool:
    """Whether the supervisor said (on the command's "started" pipe) that it spawned it."""
    try:
        return os.read(fd, 1) == b"s"
    except OSError:
        return False


def _read_pids(path: Path) -> list[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return [int(p) for p in data.split()]
    except (OSError, ValueError):
        return []
    finally:
        os.close(fd)


def _write_stdin(fd: int, text: str) -> None:
    try:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
    except (BrokenPipeError, OSError):
        pass
    finally:
        os.close(fd)


def session_rlimits(
    cpu: int | None, address_space: int, file_size: int, open_files: int, nproc: int | None
) -> list[list[int]]:
    """The per-process limits (resource, soft, hard) a command of a session runs under, as
    ``prlimit`` sets them in the per-command mode (`cpu` None: no CPU limit in the list)."""
    limits = [] if cpu is None else [(resource.RLIMIT_CPU, cpu, cpu)]
    limits += [
        (resource.RLIMIT_AS, address_space, address_space),
        (resource.RLIMIT_FSIZE, file_size, file_size),
        (resource.RLIMIT_NOFILE, open_files, open_files),
    ]
    if nproc:
        limits.append((resource.RLIMIT_NPROC, nproc, nproc))
    return [list(x) for x in limits]
