"""Faults survived, at the level of one env and one rollout: each fault is injected for real where it
can run here, and the episode it hits ends failed (``info["failed"]``, a reason, no reward) or, for
a hanging command or tool, as an observation, while nothing else is lost.

The trainer-level counterparts (the failed episodes dropped and counted, the next step run) are in
tests/trainers/test_faults.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swerepair.agents import Scaffold, Tool, nano_agent
from swerepair.agents.inference.backend import GenerationError
from swerepair.agents.inference.http import free_port
from swerepair.agents.inference.server_backend import ServerBackend
from swerepair.agents.policies.base import AssistantTurn
from swerepair.agents.policies.scripted import ScriptedPolicy, hermes_call
from swerepair.core import SandboxError, Task
from swerepair.envs import SweRepairEnv
from swerepair.envs.rollout import run_episodes
from swerepair.envs.sandbox import SandboxConfig, TaskRepositoryError, make_sandbox
from swerepair.envs.sandbox import workspace as workspace_module

from helpers import SANDBOX_KINDS, TOY_FILES, make_repo, needs_bwrap, set_bwrap_mode

SHELL_LS = hermes_call("shell", {"cmd": "ls"})
STOP = "I am done."


def assert_failed(step: tuple[Any, ...], reason: str, *, contains: str = "") -> dict[str, Any]:
    """The final step of an episode the infrastructure spoiled: truncated, reward 0, nothing scored."""
    _, reward, terminated, truncated, info = step
    assert (terminated, truncated, reward) == (False, True, 0.0)
    assert info["failed"] is True and info["exit_reason"] == reason
    assert info["reward_components"] == {} and info["patch"] == ""
    assert contains in info["failure"], info["failure"]
    return info


# -- 1. a sandbox killed mid-episode -------------------------------------------------------------------
@pytest.mark.parametrize("kind", SANDBOX_KINDS)
def test_workspace_destroyed_between_steps_fails_the_episode(toy_task: Task, kind: str) -> None:
    """The episode's workspace is deleted behind the env's back after a step: the next command
    cannot run (bwrap cannot bind it, the local shell has no directory), and the episode fails."""
    env = SweRepairEnv(tasks=[toy_task], sandbox=kind)
    env.reset()
    assert env.step(SHELL_LS)[4]["tool_stats"]["calls"] == {"shell": 1}
    shutil.rmtree(env.sandbox.episode_dir)
    assert_failed(env.step(SHELL_LS), "sandbox_error", contains="sandbox: ")
    env.close()


@pytest.mark.parametrize("kind", SANDBOX_KINDS)
def test_destroyed_workspace_fails_the_episode_whatever_the_last_tool(toy_task: Task, kind: str) -> None:
    """apply_patch writes on the host side, so a vanished workspace reads to the model as a missing
    file; the episode still ends failed, when its patch cannot be taken."""
    env = SweRepairEnv(tasks=[toy_task], sandbox=kind)
    env.reset()
    shutil.rmtree(env.sandbox.episode_dir)
    edit = {"file": "calc.py", "search": "a - b", "replace": "a + b"}
    obs, _, terminated, truncated, _ = env.step(hermes_call("apply_patch", edit))
    assert not (terminated or truncated) and obs[-1]["content"].startswith("Error: apply_patch")
    assert_failed(env.step(STOP), "sandbox_error")
    env.close()


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
def test_sandbox_closed_behind_the_envs_back_fails_the_episode(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], sandbox="auto")
    env.reset()
    env.sandbox.close()
    assert_failed(env.step(SHELL_LS), "sandbox_error", contains="sandbox is closed")
    env.close()


def _kill_bwrap_running(marker: str, parent: int, deadline_s: float, killed: list[int]) -> None:
    """Kill (SIGKILL) the bwrap process this process started whose command line holds `marker`."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not killed:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                ppid = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("PPid"))
            except (OSError, StopIteration):
                continue
            if comm == "bwrap" and marker.encode() in cmdline and int(ppid.split()[1]) == parent:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.02)


@needs_bwrap
def test_bwrap_killed_during_a_long_command_fails_the_episode(toy_task: Task, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread SIGKILLs the bubblewrap process while a 300 s command runs: the kernel tears
    the sandbox's PID namespace down, bwrap never reports the command's exit, and the step ends
    the episode as failed at once (not after the tool timeout)."""
    set_bwrap_mode(monkeypatch, "per-command")  # the command line of its bwrap names the command
    marker = f"swerepair-fault-{os.getpid()}-{time.monotonic_ns()}"
    env = SweRepairEnv(tasks=[toy_task], sandbox="bubblewrap", tool_timeout_s=600)
    env.reset()
    killed: list[int] = []
    killer = threading.Thread(target=_kill_bwrap_running, args=(marker, os.getpid(), 120, killed))
    killer.start()
    started = time.monotonic()
    step = env.step(hermes_call("shell", {"cmd": f'python -c "import time; time.sleep(300)"  # {marker}'}))
    killer.join()
    assert killed, "the long command's bwrap process was never seen"
    assert time.monotonic() - started < 150
    assert_failed(step, "sandbox_error", contains="sandbox: ")
    env.close()


# -- 2. a tool that hangs ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SANDBOX_KINDS)
def test_a_command_past_the_tool_timeout_is_an_observation(toy_task: Task, kind: str) -> None:
    env = SweRepairEnv(tasks=[toy_task], sandbox=kind, tool_timeout_s=1.0)
    env.reset()
    started = time.monotonic()
    obs, _, terminated, truncated, info = env.step(hermes_call("shell", {"cmd": 'python -c "while True: pass"'}))
    assert time.monotonic() - started < 60  # the command never ends by itself
    assert not (terminated or truncated) and "[command timed out after 1" in obs[-1]["content"]
    assert info["tool_stats"]["timeouts"] == 1
    obs, *_ = env.step(SHELL_LS)  # the sandbox still works
    assert "calc.py" in obs[-1]["content"]
    edit = {"file": "calc.py", "search": "a - b", "replace": "a + b"}
    env.step(hermes_call("apply_patch", edit))
    _, reward, terminated, _, info = env.step(STOP)
    assert terminated and not info["failed"] and reward == 1.0
    env.close()


def _hanging_scaffold(release: threading.Event, started: threading.Event) -> Scaffold:
    def hang(sandbox: Any, ctx: Any, args: Any) -> str:
        started.set()
        release.wait()  # a tool blocked on something that never comes (a lock, a socket)
        return "too late"

    tools = [*nano_agent().tools.values(), Tool("hang", "Blocks.", {"type": "object", "properties": {}}, hang)]
    return Scaffold.from_tools("hanging", "Fix the bug in {workdir}.\n{tool_list}", tools)


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
def test_a_blocking_tool_function_is_abandoned_at_the_deadline(toy_task: Task) -> None:
    release, started = threading.Event(), threading.Event()
    env = SweRepairEnv(tasks=[toy_task], scaffold=_hanging_scaffold(release, started), tool_deadline_s=0.5)
    try:
        env.reset()
        t0 = time.monotonic()
        obs, _, terminated, truncated, info = env.step(hermes_call("hang", {}))
        assert started.is_set() and time.monotonic() - t0 < 60  # the tool never returns by itself
        assert not (terminated or truncated)
        assert obs[-1]["content"].startswith("Error: the tool 'hang' did not finish within 0.5s")
        assert info["tool_stats"]["errors"] == 1 and info["tool_stats"]["timeouts"] == 1
        # the episode goes on: other tools work, and it ends scored, not failed
        env.step(hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}))
        _, reward, terminated, _, info = env.step(STOP)
        assert terminated and not info["failed"] and reward == 1.0
    finally:
        release.set()
        env.close()


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
def test_errors_of_a_tool_cross_the_deadline_thread(toy_task: Task) -> None:
    """Tools run on their own thread; what they raise still means what it meant."""

    def broken_sandbox(sandbox: Any, ctx: Any, args: Any) -> str:
        raise SandboxError("the sandbox's machine went away")

    tools = [Tool("shell", "Breaks.", {"type": "object", "properties": {}}, broken_sandbox)]
    env = SweRepairEnv(tasks=[toy_task], scaffold=Scaffold.from_tools("broken", "{tool_list}", tools))
    env.reset()
    assert_failed(env.step(hermes_call("shell", {})), "sandbox_error", contains="went away")
    env.close()


def test_the_tool_deadline_default_and_validation(toy_task: Task) -> None:
    assert SweRepairEnv(tasks=[toy_task], tool_timeout_s=10).tool_deadline_s == 50.0
    assert SweRepairEnv(tasks=[toy_task], tool_deadline_s=3).tool_deadline_s == 3.0
    with pytest.raises(ValueError, match="tool_deadline_s"):
        SweRepairEnv(tasks=[toy_task], tool_deadline_s=0)


# -- 3. the inference server lost mid-rollout ------------------------------------------------------------
def test_a_server_that_is_gone_raises_generation_error_per_prompt() -> None:
    """A real connection to a port nobody listens on (the server was killed): no retry, no hang."""
    backend = ServerBackend([f"http://127.0.0.1:{free_port()}"], timeout_s=10)
    try:
        with pytest.raises(GenerationError) as err:
            backend.generate([[1, 2, 3], [4, 5]])
    finally:
        backend.close()
    assert err.value.results is not None and len(err.value.results) == 2
    assert all(isinstance(r, GenerationError) for r in err.value.results)
    assert "Connection refused" in str(err.value)
    assert backend.stats["generated_tokens"] == 0


class LosingPolicy(ScriptedPolicy):
    """A policy whose server loses the turns of the conversations `lose` picks on the `on_turn`-th
    batch. A stand-in: the real server restart is in tests/trainers/test_faults.py; this checks
    that a rollout fails exactly the episodes whose turn was lost."""

    def __init__(self, script: list[str], lose: Any, on_turn: int, partial: bool = True) -> None:
        super().__init__(script)
        self.lose, self.on_turn, self.partial, self.batches = lose, on_turn, partial, 0

    def act(self, conversations: Any) -> list[AssistantTurn]:
        self.batches += 1
        turns: list[Any] = super().act(conversations)
        if self.batches != self.on_turn:
            return turns
        if not self.partial:
            raise GenerationError("connection refused")
        for k, conv in enumerate(conversations):
            if self.lose(k, conv):
                turns[k] = GenerationError("connection reset by peer")
        raise GenerationError("some turns were lost", results=turns)


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
@pytest.mark.parametrize("partial", [True, False])
def test_episodes_whose_turn_was_lost_fail_and_the_others_go_on(toy_task: Task, partial: bool) -> None:
    script = [SHELL_LS, hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}), STOP]
    policy = LosingPolicy(script, lose=lambda k, conv: k % 2 == 0, on_turn=2, partial=partial)
    episodes = run_episodes(lambda: SweRepairEnv(tasks=[toy_task]), policy, [toy_task.instance_id] * 4, workers=2)
    assert len(episodes) == 4  # nothing lost
    lost = [0, 1, 2, 3] if not partial else [0, 2]
    for k, ep in enumerate(episodes):
        if k in lost:
            assert ep.failed and ep.info["exit_reason"] == "policy_error" and ep.reward == 0.0
            assert ep.info["failure"].startswith("policy: GenerationError")
            assert ep.info["reward_components"] == {} and ep.info["tool_stats"]["turns"] == 1
            assert [m["role"] for m in ep.messages][-2:] == ["assistant", "tool"]  # what it did before
        else:
            assert not ep.failed and ep.info["exit_reason"] == "agent_stopped" and ep.reward == 1.0


def test_abort_ends_the_running_episode_as_failed(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], sandbox="auto")
    env.reset()
    env.step(SHELL_LS)
    root = env.sandbox.episode_dir
    info = assert_failed(env.abort("policy: the server went away"), "policy_error", contains="went away")
    assert info["tool_stats"]["calls"] == {"shell": 1} and not root.exists()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(SHELL_LS)
    with pytest.raises(RuntimeError, match="nothing to abort"):
        env.abort("again")
    env.close()


# -- 4. a verifier that times out ---------------------------------------------------------------------
class OverloadedVerifier:
    """A real sandbox on a machine too busy to run the tests in time: the trusted test runner's
    command first sleeps past its timeout, and the sandbox kills it there for real."""

    def __init__(self, task: Task) -> None:
        self.inner = make_sandbox("auto", task)
        self.workdir = self.inner.workdir
        self.test_runs = 0

    def run(self, cmd: str, timeout: float, **kwargs: Any) -> Any:
        if cmd.startswith("exec ") and " -I -B -c " in cmd:  # the verifier's test command
            self.test_runs += 1
            cmd = f'python -c "import time; time.sleep({timeout + 5})"; {cmd}'
        return self.inner.run(cmd, timeout, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
def test_a_verifier_timeout_fails_the_episode_not_scores_it_zero(toy_task: Task) -> None:
    made: list[OverloadedVerifier] = []

    def factory(task: Task) -> OverloadedVerifier:
        made.append(OverloadedVerifier(task))
        return made[-1]

    env = SweRepairEnv(tasks=[toy_task], sandbox=factory, reward="tests_pass", verifier_timeout_s=1.0)
    env.reset()
    env.step(hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}))
    _, reward, terminated, truncated, info = env.step(STOP)  # the gold fix: it would resolve the task
    assert (terminated, truncated, reward) == (False, True, 0.0)
    assert info["failed"] is True and info["exit_reason"] == "reward_error"
    assert "timed out, and so did the control run" in info["failure"]
    assert info["reward_components"] == {} and info["patch"]  # the patch is kept, to score again
    # the patched run and the control run both ran, in verifier sandboxes of their own
    assert sum(sb.test_runs for sb in made) == 2 and made[0].test_runs == 0
    env.close()


# -- 5. a task whose repository is missing ---------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
def test_a_repository_gone_mid_run_fails_its_episodes_only(tmp_path: Path, toy_task: Task) -> None:
    root = tmp_path / "vanishing"
    sha = make_repo(root, TOY_FILES)
    vanishing = dataclasses.replace(toy_task, instance_id="toy__vanishing-1", base_commit=sha, repo_source=str(root))
    make_env = lambda: SweRepairEnv(tasks=[vanishing, toy_task], max_tool_calls=2)  # noqa: E731
    make_env().close()  # the task set is accepted: the source exists
    shutil.rmtree(root)
    # the env's contract is unchanged: a missing source is a configuration error from reset
    env = make_env()
    with pytest.raises(TaskRepositoryError, match="does not exist"):
        env.reset(options={"task_id": vanishing.instance_id})
    env.close()
    # a rollout fails that task's episodes and plays the others
    ids = [vanishing.instance_id, toy_task.instance_id] * 2
    episodes = run_episodes(make_env, ScriptedPolicy([SHELL_LS, STOP]), ids, workers=2)
    assert [ep.instance_id for ep in episodes] == ids
    for ep in episodes:
        if ep.instance_id == vanishing.instance_id:
            assert ep.failed and ep.info["exit_reason"] == "repository_error" and ep.reward == 0.0
            assert "does not exist" in ep.info["failure"] and ep.messages == [] and ep.tokens == []
        else:
            assert not ep.failed and ep.info["exit_reason"] == "tool_call_budget"


# -- 6. a full disk while the workspace is prepared -------------------------------------------------------
def _enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
@pytest.mark.parametrize("where", ["copytree", "mkdtemp"])
def test_enospc_while_preparing_the_workspace_fails_the_episode(
    toy_task: Task, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """ENOSPC injected where the workspace is made (a mock: the tmpfs tests below are the real thing,
    where this machine lets root mount one). Before the fix, ENOSPC from mkdtemp escaped `reset`."""
    env = SweRepairEnv(tasks=[toy_task], sandbox="auto")
    if where == "copytree":
        monkeypatch.setattr(workspace_module.shutil, "copytree", _enospc)
    else:
        monkeypatch.setattr(workspace_module.tempfile, "mkdtemp", _enospc)
    _, info = env.reset()
    assert info["failed"] is True
    assert_failed(env.step(SHELL_LS), "sandbox_error", contains="No space left on device")
    monkeypatch.undo()
    _, info = env.reset()  # the disk has room again: the next episode is fine
    assert info["failed"] is False
    assert env.step(SHELL_LS)[4]["tool_stats"]["calls"] == {"shell": 1}
    env.close()


@contextlib.contextmanager
def tiny_tmpfs(options: str) -> Iterator[Path]:
    """A tmpfs mounted with `options` (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = Path(tempfile.mkdtemp(prefix="swerepair-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
@pytest.mark.parametrize("full", ["blocks", "inodes"])
def test_a_really_full_disk_fails_the_episode(toy_task: Task, full: str) -> None:
    """Workspaces on a tmpfs with no room left: its blocks filled up (the copy fails) or its inodes
    (the episode directory cannot even be made)."""
    with tiny_tmpfs("size=64k" if full == "blocks" else "size=1m,nr_inodes=1") as disk:
        if full == "blocks":
            with contextlib.suppress(OSError), open(disk / "filler", "wb") as fh:
                while True:
                    fh.write(b"x" * 4096)
                    fh.flush()
        config = SandboxConfig(tmp_dir=str(disk))
        env = SweRepairEnv(tasks=[toy_task], sandbox=lambda task: make_sandbox("auto", task, config))
        _, info = env.reset()
        assert info["failed"] is True
        assert_failed(env.step(SHELL_LS), "sandbox_error", contains="No space left on device")
        env.close()
        assert not [p for p in disk.iterdir() if p.name.startswith("swerepair-ep-")]  # nothing left behind


def _kill_session_when_running(env: SweRepairEnv, marker: str, deadline_s: float, killed: list[int]) -> None:
    """Kill (SIGKILL) the session's bubblewrap once a process whose command line holds `marker` runs."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not killed:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                session = env.sandbox._session
                os.kill(session._proc.pid, signal.SIGKILL)
                killed.append(session._proc.pid)
                return
        time.sleep(0.02)


@needs_bwrap
def test_the_sessions_bwrap_killed_during_a_command_fails_the_episode(
    toy_task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same fault in session mode: the session's bubblewrap (outside the namespace, out of the
    agent's reach) is killed while a command runs; its supervisor dies with it (parent-death
    signal), the namespace goes, and the step fails the episode as infrastructure at once."""
    set_bwrap_mode(monkeypatch, "session")
    marker = f"swerepair-fault-{os.getpid()}-{time.monotonic_ns()}"
    env = SweRepairEnv(tasks=[toy_task], sandbox="bubblewrap", tool_timeout_s=600)
    env.reset()
    assert env.step(SHELL_LS)[4]["tool_stats"]["calls"] == {"shell": 1}  # the session is up
    killed: list[int] = []
    killer = threading.Thread(target=_kill_session_when_running, args=(env, marker, 120, killed))
    killer.start()
    started = time.monotonic()
    # the marker inside the program: bash hands its last command to python by exec
    step = env.step(hermes_call("shell", {"cmd": f'python -c "import time; time.sleep(300); {marker!r}"'}))
    killer.join()
    assert killed, "the long command was never seen running"
    assert time.monotonic() - started < 150
    assert_failed(step, "sandbox_error", contains="bubblewrap was killed")
    env.close()
