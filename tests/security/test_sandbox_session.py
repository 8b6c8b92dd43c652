"""The bubblewrap session (`swerepair.envs.sandbox.session`): one sandbox per episode whose
supervisor spawns each command. What the per-command mode gets from a fresh bubblewrap must hold
per command here too: nothing of a command outlives it, its timeout kills its tree, its scratch
space is its own, its isolation is the same; and a command that kills the supervisor gets an
observation, never an exception, while the next command runs in a fresh session. Runs as root
and, through `make security-user`, as an unprivileged user."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from swerepair.core import Task
from swerepair.envs import SweRepairEnv
from swerepair.envs.sandbox import SandboxConfig, make_sandbox

from attack_kit import MARKER, host_snapshot
from helpers import needs_bwrap

pytestmark = needs_bwrap

#: A daemon that leaves its command's session and process group (double fork, setsid), then
#: writes a file a second later.
DAEMON = (
    "python -c 'import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    '        os.system("sleep 1.{marker}"); open("{name}", "w").write("late")\n'
    "    os._exit(0)\n"
    'print("spawned")\''
)

#: What a command can tell about itself: identity, capabilities, filter, network, processes.
PROBE = r"""python -c '
import json, os, socket
s = dict(l.split(":", 1) for l in open("/proc/self/status"))
keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
print(json.dumps({
    "status": {k: s[k].strip() for k in keys},
    "ids": [os.getresuid(), os.getresgid(), os.getgroups()],
    "hostname": socket.gethostname(),
    "interfaces": sorted(n for _, n in socket.if_nameindex()),
    "pids": len([p for p in os.listdir("/proc") if p.isdigit()]),
    "root": sorted(os.listdir("/")),
    "tmp": [os.stat("/tmp").st_mode, os.listdir("/tmp") == []],
    "cwd": os.getcwd(),
    "limits": open("/proc/self/limits").read().splitlines(),
}))'"""


@pytest.fixture
def session_sandbox(toy_task: Task):
    sb = make_sandbox("bubblewrap", toy_task, SandboxConfig(session=True))
    yield sb
    sb.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def test_leftovers_of_a_command_never_run_on(session_sandbox) -> None:
    sb = session_sandbox
    assert sb.run(f"(sleep 1.{MARKER}; echo late > bg.txt) & echo started", 10).ok
    res = sb.run(DAEMON.format(marker=MARKER, name="daemon.txt"), 10)
    assert res.ok and "spawned" in res.output, res.output
    pids = sb.run("ls /proc | grep -c '^[0-9]'", 10).output.strip()
    assert int(pids) <= 4, pids  # the supervisor, bash, ls, grep: nothing left from before
    time.sleep(1.5)
    assert not (sb.host_repo / "bg.txt").exists(), "a background job outlived its command"
    assert not (sb.host_repo / "daemon.txt").exists(), "a daemon outlived its command"
    assert host_snapshot()["leftover_processes"] == []


def test_a_timeout_kills_the_tree_and_the_session_goes_on(session_sandbox) -> None:
    sb = session_sandbox
    sb.run("true", 10)
    supervisor = sb._session.supervisor_pid
    start = time.monotonic()
    res = sb.run(DAEMON.format(marker=MARKER, name="late.txt") + "; sleep 30", 1.0)
    assert res.timed_out and not res.ok
    assert time.monotonic() - start < 5
    assert sb.run("echo next", 10).output == "next\n"
    assert sb._session.supervisor_pid == supervisor, "a timeout needs no new session"
    time.sleep(1.5)
    assert not (sb.host_repo / "late.txt").exists()


def test_tmp_shm_and_ipc_are_each_commands_own(session_sandbox) -> None:
    sb = session_sandbox
    leave = (
        "python -c 'import ctypes, os\n"
        'os.makedirs("/tmp/d/e"); open("/tmp/d/e/f", "w").write("x"); os.chmod("/tmp/d", 0)\n'
        'open("/dev/shm/s", "w").write("x"); os.chmod("/tmp", 0o700)\n'
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        'print("shm", libc.shmget(0x5157, 4096, 0o1600))\n'
        'print("msg", libc.msgget(0x5158, 0o1600))\n'
        'rt = ctypes.CDLL("librt.so.1", use_errno=True)\n'
        'print("mq", rt.mq_open(b"/swerepair-q", os.O_CREAT | os.O_RDWR, 0o600, None))\''
    )
    look = (
        "python -c 'import ctypes, os\n"
        'print(sorted(os.listdir("/tmp")), os.listdir("/dev/shm"), oct(os.stat("/tmp").st_mode))\n'
        'print(*[len(open("/proc/sysvipc/" + k).read().splitlines()) for k in ("shm", "msg")])\n'
        'rt = ctypes.CDLL("librt.so.1", use_errno=True)\n'
        'print("mq", rt.mq_open(b"/swerepair-q", os.O_RDONLY))\''
    )
    before = sb.run(look, 10).output.splitlines()
    assert before[0].endswith("[] 0o41777") and before[1:] == ["1 1", "mq -1"], before  # headers alone
    res = sb.run(leave, 10)
    assert "shm -1" not in res.output and "msg -1" not in res.output and "mq -1" not in res.output, res.output
    assert sb.run(look, 10).output.splitlines() == before


def test_isolation_is_the_per_command_modes(toy_task: Task) -> None:
    seen = {}
    for session in (True, False):
        with make_sandbox("bubblewrap", toy_task, SandboxConfig(session=session)) as sb:
            res = sb.run(PROBE, 20)
            assert res.ok, res.output
            seen[session] = json.loads(res.output)
    assert seen[True] == seen[False]
    assert seen[True]["status"]["Seccomp"] == "2" and seen[True]["status"]["CapEff"] == "0000000000000000"


def test_the_agent_cannot_kill_or_stop_the_supervisor(session_sandbox) -> None:
    sb = session_sandbox
    sb.run("true", 10)
    supervisor = sb._session.supervisor_pid
    res = sb.run("kill -KILL 1; kill -STOP 1; kill -TERM 1; kill -INT 1; kill -KILL -1; echo done", 10)
    assert "done" in res.output
    assert sb.run("echo next", 10).output == "next\n"
    assert sb._session.supervisor_pid == supervisor
    out = sb.run("ls -l /proc/1/fd/ 2>&1; cat /proc/1/environ 2>&1; head -c1 /proc/1/mem 2>&1; echo end", 10).output
    assert "socket:" not in out and "PATH=" not in out and out.count("ermission denied") >= 3, out


def test_a_command_that_ends_the_supervisor_is_an_observation(session_sandbox) -> None:
    """The host kills the supervisor mid-command (as the OOM killer might); the command's own
    attempt through its limits (possible where the agent shares the supervisor's uid, started
    by a user; refused started by root) ends the same way or not at all."""
    sb = session_sandbox
    sb.run("true", 10)
    first = sb._session.supervisor_pid
    timer = threading.Timer(0.5, lambda: os.kill(first, 9))
    timer.start()
    res = sb.run(DAEMON.format(marker=MARKER, name="orphan.txt") + "; sleep 20", 30)
    timer.join()
    assert not res.ok and res.killed_reason and "session" in res.killed_reason, res
    assert sb.run("echo next", 10).output == "next\n"
    second = sb._session.supervisor_pid
    assert second != first and not _alive(first)
    res = sb.run("python -c 'import resource; resource.prlimit(1, resource.RLIMIT_CPU, (0, 0)); print(\"set\")'", 10)
    if "set" in res.output:  # the supervisor dies once it next runs: now or after the answer
        assert res.ok or (res.killed_reason and "session" in res.killed_reason), res
    else:
        assert "Operation not permitted" in res.output, res.output
    assert sb.run("echo again", 10).output == "again\n"
    time.sleep(1.5)
    assert not (sb.host_repo / "orphan.txt").exists()
    assert host_snapshot()["leftover_processes"] == []


def test_a_busy_session_runs_the_next_command_on_its_own(session_sandbox) -> None:
    """A command abandoned by its caller (env's tool deadline) may still run in the session; a
    command started meanwhile gets a bubblewrap of its own instead of waiting."""
    sb = session_sandbox
    sb.run("true", 10)
    results = {}
    slow = threading.Thread(target=lambda: results.setdefault("slow", sb.run("sleep 2; echo slow", 10)))
    slow.start()
    time.sleep(0.5)
    start = time.monotonic()
    results["fast"] = sb.run("echo fast", 10)
    assert time.monotonic() - start < 1.5
    slow.join()
    assert results["fast"].output == "fast\n" and results["slow"].output == "slow\n"


def test_close_leaves_no_process_on_the_host(toy_task: Task) -> None:
    sb = make_sandbox("bubblewrap", toy_task, SandboxConfig(session=True))
    sb.run(f"sleep {MARKER} & echo started", 10)
    session = sb._session
    pids = [session.supervisor_pid, session._proc.pid]
    sb.close()
    assert not any(_alive(p) for p in pids)
    assert host_snapshot()["leftover_processes"] == []


def test_the_verifier_never_uses_a_session(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], sandbox="bubblewrap", reward="tests_pass")
    env.reset(options={"task_id": toy_task.instance_id})
    assert env.unwrapped._ep.sandbox.config.session  # the agent's sandbox has one
    verifier_sandbox = env.reward_fn.sandbox_factory(toy_task)
    try:
        assert verifier_sandbox.config.session is False and verifier_sandbox._session is None
    finally:
        verifier_sandbox.close()
        env.close()


@pytest.mark.parametrize("session", [True, False], ids=["session", "per-command"])
def test_the_disk_check_skips_only_the_read_only_git(toy_task: Task, session: bool) -> None:
    """The disk budget's check (run after every command) leaves out the workspace's ``.git``
    because every command sees it through a read-only bind: the growth it measures is the whole
    tree's, a write into ``.git`` fails, and a workspace past its budget is still caught."""
    from swerepair.envs.sandbox import ResourceLimits
    from swerepair.envs.sandbox.hostfs import tree_bytes

    config = SandboxConfig(session=session, limits=ResourceLimits(disk_bytes=2 << 20))
    with make_sandbox("bubblewrap", toy_task, config) as sb:
        repo = sb.host_repo
        whole_before = tree_bytes(repo)
        assert sb.run("head -c 1000000 /dev/zero > grown.bin", 20).ok
        assert sb._disk_watch() is not None and sb._git_ro is True
        grown = tree_bytes(repo, skip=(".git",)) - sb._base_size
        assert grown == tree_bytes(repo) - whole_before > 900_000
        res = sb.run("echo x > .git/planted; mkdir -p .git/objects/zz && echo x > .git/objects/zz/f", 20)
        assert not res.ok and not (repo / ".git" / "planted").exists()
        res = sb.run("head -c 3000000 /dev/zero > past.bin", 20)
        assert res.killed_reason is not None and "disk budget" in res.killed_reason, res.output
