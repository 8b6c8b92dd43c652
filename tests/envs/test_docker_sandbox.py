"""The Docker sandbox against a real engine: its isolation, limits, file rules, diff, clean-up,
orphan reaping, and whole episodes through `gymnasium.make(..., sandbox="docker")`.

Images come from `docker_kit.base_image()` (tests/docker/build_images.sh): Debian bookworm with
python3, pytest and git; the tasks' checkouts are copied in at start."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import pytest

from swerepair.agents.policies.scripted import gold_turns, hermes_call
from swerepair.core import SandboxError, Task
from swerepair.envs.sandbox import ResourceLimits, SandboxConfig, make_sandbox

from docker_kit import base_image, needs_docker

pytestmark = needs_docker

PROBE = (
    "import json, os\n"
    "s = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
    "print(json.dumps({k: s[k].strip() for k in ('CapInh', 'CapEff', 'CapPrm', 'CapBnd', 'CapAmb', 'NoNewPrivs',"
    " 'Seccomp')} | {'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups()}))"
)


@pytest.fixture(scope="module")
def image() -> str:
    return base_image()


def _docker(task: Task, image: str, **limits: int) -> object:
    config = SandboxConfig(limits=ResourceLimits(**limits), docker_image=image)
    return make_sandbox("docker", task, config)


@pytest.fixture
def sb(toy_task: Task, image: str):
    sandbox = _docker(toy_task, image)
    yield sandbox
    sandbox.close()


def _py(sb, code: str, timeout: float = 30, **kw):
    return sb.run(f"python3 -c {shlex.quote(code)}", timeout, **kw)


def _processes(sb) -> list[str]:
    """Command lines of the container's processes, seen from a fresh command."""
    out = _py(
        sb,
        "import os\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n        try:\n"
        "            print(open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ').replace(chr(10), ' '))\n"
        "        except OSError:\n            pass",
    ).output
    return out.splitlines()


# -- the workspace -----------------------------------------------------------------------------


def test_checkout_copied_in_at_the_base_commit(sb, toy_task: Task) -> None:
    assert sb.workdir == "/workspace"
    res = sb.run("git rev-parse HEAD && git status --short && cat calc.py", 30)
    assert res.ok, res
    assert res.output.splitlines()[0] == toy_task.base_commit
    assert "return a - b" in res.output
    assert sb.diff() == ""
    sb.write_file("calc.py", sb.read_file("calc.py").replace("a - b", "a + b"))
    assert _without_index(sb.diff()) == toy_task.patch


def test_runs_pytest_with_the_images_python_and_stdin(sb) -> None:
    res = sb.run("python -m pytest -q tests 2>&1 | tail -1", 60)
    assert "1 passed" in res.output, res
    assert sb.run("cat", 10, stdin="from stdin\n").output == "from stdin\n"
    res = sb.run("echo out; echo err >&2; exit 3", 10)
    assert res.exit_code == 3 and res.output == "out\nerr\n" and not res.ok


# -- isolation ---------------------------------------------------------------------------------


def test_no_capabilities_no_root_no_new_privileges(sb) -> None:
    for restricted in (False, True):
        res = sb.run(f"python -c {shlex.quote(PROBE)}", 30, restricted=restricted)
        got = json.loads(res.output.splitlines()[-1])
        assert {got[k] for k in ("CapInh", "CapEff", "CapPrm", "CapBnd", "CapAmb")} == {"0000000000000000"}, got
        assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "2", got
        assert got["uid"] == got["gid"] == 65534 and got["groups"] in ([], [65534]), got


def test_only_the_loopback_interface(sb) -> None:
    res = _py(
        sb,
        "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('CONNECTED')\n"
        "except OSError as e:\n    print('refused', e)",
    )
    assert "['lo']" in res.output and "CONNECTED" not in res.output, res


def test_root_filesystem_is_read_only(sb) -> None:
    res = sb.run("for p in /x /usr/x /etc/x /opt/swerepair/bin/x /root/x; do : > $p; done; grep ' / ' /proc/mounts", 10)
    assert res.output.count("Read-only file system") + res.output.count("Permission denied") == 5, res
    assert " / overlay ro," in res.output or " ro," in res.output.splitlines()[-1], res
    assert sb.run(": > /tmp/ok && : > inside && echo fine", 10).output.strip() == "fine"


def test_git_metadata_cannot_be_written_or_moved(sb) -> None:
    res = sb.run(
        "touch .git/x; echo '[core]' >> .git/config; mv .git gone; rm -rf .git; chmod 777 .git; ls -ld . .git",
        10,
    )
    assert "Permission denied" in res.output or "Operation not permitted" in res.output
    assert sb.run("git rev-parse HEAD && test -d .git && test ! -e gone && test ! -e .git/x", 10).ok
    with pytest.raises(ValueError, match="git"):
        sb.write_file(".git/config", "[core]\n\tfsmonitor = touch /tmp/pwn\n")
    with pytest.raises(ValueError, match="git"):
        sb.read_file(".git/config")


def test_tmp_is_emptied_after_each_command(sb) -> None:
    sb.run("echo secret > /tmp/leak; mkdir /dev/shm/d", 10)
    assert sb.run("ls -A /tmp /dev/shm", 10).output.split() == ["/dev/shm:", "/tmp:"]


def test_restricted_shell(sb) -> None:
    res = sb.run("echo $PATH; ls calc.py; cd /", 10, restricted=True)
    assert res.output.startswith("/opt/swerepair/bin\n") and "calc.py" in res.output and "restricted" in res.output
    assert "not allowed" in sb.run("git commit -m x", 10, restricted=True).output
    assert "not allowed" in sb.run("sed -i s/a/b/ calc.py", 10, restricted=True).output
    assert "restricted" in sb.run("/bin/ls", 10, restricted=True).output
    assert "pytest" in sb.run("pytest --version", 30, restricted=True).output


# -- limits ------------------------------------------------------------------------------------


def test_timeout_kills_the_whole_tree(sb) -> None:
    start = time.monotonic()
    res = sb.run("(sleep 7771 &); setsid sleep 7772 & sleep 7773", 1.5)
    assert res.timed_out and res.exit_code == -9 and time.monotonic() - start < 8, res
    assert not [c for c in _processes(sb) if "777" in c]


def test_leftover_processes_are_killed_when_the_command_ends(sb) -> None:
    res = sb.run("nohup setsid sleep 8881 >/dev/null 2>&1 & (sleep 8882 &); echo started", 10)
    assert res.ok and "started" in res.output
    assert not [c for c in _processes(sb) if "888" in c]


def test_fork_bomb_is_contained(toy_task: Task, image: str) -> None:
    with _docker(toy_task, image, max_processes=64) as box:
        start = time.monotonic()
        res = _py(box, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", 5)
        assert res.timed_out and time.monotonic() - start < 30, res
        after = box.run("echo ok", 10)
        assert after.ok and after.output == "ok\n", after
        assert len(_processes(box)) < 10


def test_memory_limit_applies_to_the_whole_container(toy_task: Task, image: str) -> None:
    with _docker(toy_task, image, memory_bytes=96 << 20, address_space_bytes=1 << 30) as box:
        code = "import os\nfor _ in range(2):\n    os.fork()\nx = []\nwhile True:\n    x.append(b'x' * (16 << 20))"
        res = _py(box, code, 30)
        assert not res.timed_out and res.exit_code != 0, res
        assert box.run("echo alive", 10).ok


def test_cpu_seconds_limit(toy_task: Task, image: str) -> None:
    with _docker(toy_task, image, cpu_seconds=1) as box:
        res = _py(box, "while True: pass", 20)
        assert not res.timed_out and res.exit_code != 0 and res.duration_s < 15, res


def test_output_is_capped(toy_task: Task, image: str) -> None:
    with _docker(toy_task, image, max_output_bytes=10_000) as box:
        res = box.run("yes | head -c 1000000; echo; echo done", 30)
        assert res.truncated and res.output_bytes == 1_000_006 and len(res.output) == 10_000, res.output_bytes
        small = box.run("echo hi", 10, max_output_bytes=2)
        assert small.output == "hi" and small.truncated and small.output_bytes == 3


def test_disk_budget_kills_the_command(toy_task: Task, image: str) -> None:
    with _docker(toy_task, image, disk_bytes=32 << 20, file_size_bytes=8 << 20) as box:
        res = _py(box, "i = 0\nwhile True:\n    open(f'blob{i}', 'wb').write(b'x' * (4 << 20)); i += 1", 30)
        assert res.killed_reason and "disk budget" in res.output and not res.ok, res
        big = _py(box, "open('big', 'wb').write(b'x' * (16 << 20))", 30)
        assert "File too large" in big.output or big.exit_code != 0, big


def test_tmp_has_its_size_budget(toy_task: Task, image: str) -> None:
    with _docker(toy_task, image, tmp_bytes=8 << 20) as box:
        res = box.run("head -c 20000000 /dev/zero > /tmp/big", 30)
        assert "No space left" in res.output, res


# -- files -------------------------------------------------------------------------------------


def test_read_file_rules(sb) -> None:
    sb.run(
        "mkfifo pipe.py; ln -s /etc/passwd pw.txt; ln -s README.md readme-link; ln -s .git/config gitcfg; "
        "ln -s /etc etcdir; mkdir -p sub; ln -s ../calc.py sub/up.py; head -c 17000000 /dev/zero > huge.bin",
        20,
    )
    start = time.monotonic()
    with pytest.raises(ValueError, match="FIFO"):
        sb.read_file("pipe.py")
    assert time.monotonic() - start < 5
    with pytest.raises(ValueError, match="outside the workspace"):
        sb.read_file("pw.txt")
    with pytest.raises(ValueError, match="outside the workspace"):
        sb.read_file("etcdir/passwd")
    with pytest.raises(ValueError, match="outside the workspace"):
        sb.read_file("../etc/passwd")
    with pytest.raises(ValueError, match="outside the workspace"):
        sb.read_file("/etc/passwd")
    with pytest.raises(ValueError, match=r"\.git"):
        sb.read_file("gitcfg")
    with pytest.raises(ValueError, match="limit"):
        sb.read_file("huge.bin")
    with pytest.raises(FileNotFoundError):
        sb.read_file("missing.py")
    with pytest.raises(IsADirectoryError):
        sb.read_file("tests")
    assert sb.read_file("readme-link") == sb.read_file("README.md") == "calc\n"
    assert sb.read_file("sub/up.py") == sb.read_file("/workspace/calc.py")


def test_write_file_rules(sb) -> None:
    sb.run(
        "ln -s /etc etcdir; ln -s /tmp/target link.py; mkfifo pipe.py; ln README.md alias.md; "
        "printf '#!/bin/sh\\necho run\\n' > tool.sh; chmod 755 tool.sh",
        10,
    )
    with pytest.raises(ValueError, match="outside the workspace"):
        sb.write_file("etcdir/swerepair-pwned", "x")
    with pytest.raises(ValueError, match="outside the workspace"):
        sb.write_file("link.py", "x")
    with pytest.raises(ValueError, match="FIFO"):
        sb.write_file("pipe.py", "x")
    with pytest.raises(ValueError, match="limit"):
        sb.write_file("big.txt", "x" * (17 << 20))
    # a write replaces the directory entry: never through a hard link
    sb.write_file("alias.md", "changed\n")
    assert sb.read_file("README.md") == "calc\n" and sb.read_file("alias.md") == "changed\n"
    # a new file and its new parents belong to the agent; an existing file keeps its mode
    sb.write_file("pkg/sub/new.py", "x = 1\n")
    sb.write_file("tool.sh", "#!/bin/sh\necho patched\n")
    res = sb.run("stat -c '%u %a %n' pkg pkg/sub pkg/sub/new.py tool.sh; ./tool.sh", 10)
    assert res.output.split("\n")[:4] == [
        "65534 755 pkg",
        "65534 755 pkg/sub",
        "65534 644 pkg/sub/new.py",
        "65534 755 tool.sh",
    ], res.output
    assert "patched" in res.output


def test_the_diff_is_taken_as_root_whatever_the_agent_left(sb) -> None:
    sb.write_file(".gitattributes", "* diff=evil filter=evil\n")
    sb.run(
        "mkfifo x.fifo; echo secret > unreadable.txt; chmod 000 unreadable.txt; "
        "printf 'calc\\nchanged\\n' > README.md; mkdir -p d/__pycache__; echo x > d/__pycache__/m.pyc",
        10,
    )
    patch = sb.diff()
    assert "+changed" in patch and "x.fifo" not in patch and "__pycache__" not in patch
    assert "unreadable.txt" in patch and "+secret" in patch


# -- lifecycle ---------------------------------------------------------------------------------


def test_labels_and_close(toy_task: Task, image: str) -> None:
    import docker.errors

    from swerepair.envs.sandbox.docker import client as dc

    box = _docker(toy_task, image)
    container = box.container
    container.reload()
    labels = container.labels
    assert labels[dc.LABEL] == "1" and labels[dc.LABEL_PID] == str(os.getpid()) and labels[dc.LABEL_ROLE] == "agent"
    config = container.attrs["HostConfig"]
    assert config["NetworkMode"] == "none" and config["ReadonlyRootfs"] and config["CapDrop"] == ["ALL"]
    assert any("no-new-privileges" in o for o in config["SecurityOpt"])
    volumes = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    box.close()
    box.close()
    with pytest.raises(docker.errors.NotFound):
        container.reload()
    client = dc.docker_client()
    assert not [v for v in volumes if v in {x.name for x in client.volumes.list()}]
    with pytest.raises(SandboxError):
        box.run("true", 5)


def test_an_engine_failure_is_a_sandbox_error(toy_task: Task, image: str) -> None:
    import docker

    from swerepair.envs.sandbox.docker import DockerSandbox

    dead = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    with pytest.raises(SandboxError):  # directly: a pool made with a dead client would be shared
        DockerSandbox(image, base_commit=toy_task.base_commit, client=dead)
    box = _docker(toy_task, image)
    box.container.kill()  # the engine loses the container mid-episode
    with pytest.raises(SandboxError):
        box.run("true", 5)
    box.close()


_OWNER = """
import os, sys, time
from swerepair.core import Task
from swerepair.envs.sandbox import SandboxConfig, make_sandbox
task = Task(**{**__import__("json").loads(sys.argv[1])})
sb = make_sandbox("docker", task, SandboxConfig(docker_image=sys.argv[2]))
print(sb.container.id, flush=True)
time.sleep(600)
"""

_NEXT = """
import sys
from swerepair.core import Task
from swerepair.envs.sandbox import SandboxConfig, make_sandbox
task = Task(**{**__import__("json").loads(sys.argv[1])})
with make_sandbox("docker", task, SandboxConfig(docker_image=sys.argv[2])) as sb:
    print("ok", flush=True)
"""


def test_orphans_of_a_killed_process_are_removed_by_the_next(toy_task: Task, image: str) -> None:
    import docker.errors

    from swerepair.envs.sandbox.docker import docker_client

    row = {k: v for k, v in toy_task.__dict__.items() if k != "extra"}
    row["FAIL_TO_PASS"], row["PASS_TO_PASS"] = list(row["FAIL_TO_PASS"]), list(row["PASS_TO_PASS"])
    args = [json.dumps(row), image]
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, *args], stdout=subprocess.PIPE, text=True)
    try:
        cid = owner.stdout.readline().strip()
        assert cid, "the owner process did not start its sandbox"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    client = docker_client()
    assert client.containers.get(cid).status == "running"  # nobody cleaned up after SIGKILL
    out = subprocess.run([sys.executable, "-c", _NEXT, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(cid)


def test_runsc_runtime_where_the_engine_has_it(toy_task: Task, image: str) -> None:
    """``runtime="runsc"``: the container under gVisor, where the engine has it registered (see
    docs/docker.md; .ci/run does not register it, so this is skipped there)."""
    from swerepair.envs.sandbox.docker import docker_client

    if "runsc" not in (docker_client().info().get("Runtimes") or {}):
        pytest.skip("the engine has no runsc runtime registered (see docs/docker.md)")
    config = SandboxConfig(docker_image=image, docker_runtime="runsc")
    with make_sandbox("docker", toy_task, config) as box:
        assert "gVisor" in box.run("dmesg", 30).output
        probe = "import json, os\ns = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        probe += "print(json.dumps({k: s.get(k, '').strip() for k in ('CapEff', 'CapBnd')} | {'uid': os.getuid()}))"
        got = json.loads(_py(box, probe).output.splitlines()[-1])
        assert got == {"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "uid": 65534}, got
        assert "['lo']" in _py(box, "import socket; print([n for _, n in socket.if_nameindex()])").output
        res = box.run("setsid sleep 999 & sleep 999", 2)
        assert res.timed_out and not [c for c in _processes(box) if "999" in c]
        box.write_file("calc.py", box.read_file("calc.py").replace("a - b", "a + b"))
        assert _without_index(box.diff()) == toy_task.patch


# -- episodes ------------------------------------------------------------------------------------


def _episode(env, task_id: str, turns: list[str]):
    env.reset(options={"task_id": task_id})
    for turn in turns:
        _, reward, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            return reward, info
    raise AssertionError("the episode did not end")


@pytest.mark.parametrize("task_id", ["swerepair__intervals-1", "swerepair__unitconv-2"])
def test_bundled_episodes_with_tests_pass(task_id: str, bundled: list[Task], image: str) -> None:
    task = next(t for t in bundled if t.instance_id == task_id)

    def make(max_tool_calls: int):
        return gym.make(
            "SweRepair-v0",
            tasks="bundled",
            sandbox="docker",
            sandbox_config=SandboxConfig(docker_image=image),
            reward="tests_pass",
            max_tool_calls=max_tool_calls,
        )

    env = make(20)
    try:
        reward, info = _episode(env, task_id, gold_turns(task.patch))
        assert not info["failed"], info
        assert reward == 1.0 and info["patch"].startswith("diff --git"), info
    finally:
        env.close()
    env = make(2)  # the budget ends the episode with nothing changed: the empty patch
    try:
        look = hermes_call("shell", {"cmd": "git status --short && ls"})
        empty_reward, empty = _episode(env, task_id, [look, look])
        assert not empty["failed"] and empty["patch"] == "" and empty_reward == 0.0, empty
    finally:
        env.close()


def test_bundled_gold_patch_scores_one_with_the_default_reward(bundled: list[Task], image: str) -> None:
    task = next(t for t in bundled if t.instance_id == "swerepair__confkit-3")
    env = gym.make("SweRepair-v0", sandbox="docker", sandbox_config=SandboxConfig(docker_image=image))
    try:
        reward, info = _episode(env, task.instance_id, gold_turns(task.patch))
        assert reward == 1.0 and not info["failed"], info
    finally:
        env.close()


def test_unreachable_engine_fails_the_episode(bundled: list[Task], image: str, monkeypatch) -> None:
    from swerepair.envs.sandbox.docker import client as dc

    monkeypatch.setattr(dc, "_clients", {})
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    env = gym.make("SweRepair-v0", sandbox="docker", sandbox_config=SandboxConfig(docker_image=image))
    _, info = env.reset(options={"task_id": "swerepair__confkit-1"})
    assert info["failed"]
    *_, info = env.step(hermes_call("shell", {"cmd": "ls"}))
    assert info["failed"] and info["exit_reason"] == "sandbox_error"
    env.close()


def test_image_with_the_repository_at_its_workdir(toy_task: Task, image: str, tmp_path) -> None:
    """A SWE-bench-layout image: the repository inside (owned by root, at another commit,
    with an untracked file left by the image's set-up), WORKDIR /testbed."""
    import io
    import tarfile

    from swerepair.envs.sandbox.docker import DockerSandbox, docker_client
    from swerepair.envs.sandbox.workspace import prepare_checkout

    client = docker_client()
    checkout = prepare_checkout(toy_task)
    tag = f"swerepair-test-testbed:{toy_task.base_commit[:12]}"
    setup = textwrap.dedent(
        """
        set -e
        mkdir -p /testbed && cd /testbed && tar -xf /tmp/repo.tar
        git -c user.name=t -c user.email=t@t commit -q --allow-empty -m later
        echo built > build-artifact.txt
        """
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(checkout, arcname=".")
    builder = client.containers.create(image, ["/bin/sh", "-c", setup], network_mode="none")
    try:
        builder.put_archive("/tmp", _tar_of("repo.tar", buf.getvalue()))
        builder.start()
        assert builder.wait()["StatusCode"] == 0, builder.logs()
        builder.commit(repository=tag.split(":")[0], tag=tag.split(":")[1], changes=["WORKDIR /testbed"])
    finally:
        builder.remove(force=True)
    try:
        with DockerSandbox(tag, base_commit=toy_task.base_commit) as box:
            assert box.workdir == "/testbed"
            res = box.run("git rev-parse HEAD; stat -c '%U' calc.py .git", 10)
            assert res.output.split() == [toy_task.base_commit, "nobody", "root"], res
            assert box.diff() == ""  # the image's untracked file is part of the start state
            box.write_file("calc.py", box.read_file("calc.py").replace("a - b", "a + b"))
            assert _without_index(box.diff()) == toy_task.patch
    finally:
        client.images.remove(tag, force=True)


def _without_index(patch: str) -> str:
    return "".join(line for line in patch.splitlines(keepends=True) if not line.startswith("index "))


def _tar_of(name: str, data: bytes) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
