"""Attacks on the isolating sandboxes (bubblewrap; Docker where an engine answers, marked
``docker``) through `env.step` tool calls only, as a policy would make them. Each asserts the
attack was blocked, contained or harmless; the episode never fails (an attack is an observation
to the model, not an infrastructure fault). The suite runs as root and, through
`make security-user`, as an unprivileged user (bubblewrap only: the Docker engine is root's)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from swerepair.envs import SweRepairEnv
from swerepair.envs.sandbox import SandboxConfig

from attack_kit import MARKER, PWNED, apply_patch, host_snapshot, py, shell
from docker_kit import base_image, needs_docker
from helpers import BWRAP_MODES, needs_bwrap, set_bwrap_mode

TASK = "swerepair__intervals-1"

#: The sandboxes every attack runs against; bubblewrap in both of its modes (`bwrap_mode`).
KINDS = [
    *(pytest.param(("bubblewrap", mode), marks=needs_bwrap, id=f"bubblewrap-{mode}") for mode in BWRAP_MODES),
    pytest.param(("docker", None), marks=needs_docker, id="docker"),
]


@pytest.fixture(params=KINDS)
def kind(request, monkeypatch: pytest.MonkeyPatch) -> str:
    sandbox, mode = request.param
    if mode is not None:
        set_bwrap_mode(monkeypatch, mode)
    return sandbox


def make_env(kind: str, config: SandboxConfig | None = None, **kwargs) -> SweRepairEnv:
    """The env of an attack on `kind`: Docker's containers come from the test base image."""
    config = config or SandboxConfig()
    if kind == "docker":
        from dataclasses import replace

        config = replace(config, docker_image=base_image())
    return SweRepairEnv(tasks="bundled", sandbox=kind, sandbox_config=config, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def host_is_clean_afterwards():
    before = host_snapshot()
    yield
    time.sleep(0.5)
    after = host_snapshot()
    assert after["leftover_processes"] == [], after
    assert after["pwned"] == before["pwned"] == [], after


@pytest.fixture
def env(kind: str):
    e = make_env(kind, max_tool_calls=50, tool_timeout_s=10, max_context_tokens=10**7)
    e.reset(options={"task_id": TASK})
    yield e
    e.close()


# -- identity and privileges -------------------------------------------------------------------


def test_no_capabilities_no_root_no_new_privileges(env) -> None:
    out = py(
        env,
        "import json, os\n"
        "s = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "open('owner-probe', 'w').close()\n"
        "print(json.dumps({k: s[k].strip() for k in ('CapEff', 'CapPrm', 'CapBnd', 'CapAmb', 'NoNewPrivs',"
        " 'Seccomp')} | {'uid': os.getuid()}))",
    )
    got = json.loads(out.splitlines()[-1])
    assert {got[k] for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")} == {"0000000000000000"}
    assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "2" and got["uid"] != 0
    # the kernel's own record of who the agent is on the host: the owner of a file it made
    sandbox = env.unwrapped.sandbox
    if hasattr(sandbox, "host_repo"):
        assert os.stat(sandbox.host_repo / "owner-probe").st_uid != 0, "the agent is host root"
    else:  # Docker: the engine's record (the container shares the host's uids)
        import io
        import tarfile

        stream, _ = sandbox.container.get_archive(f"{sandbox.workdir}/owner-probe")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            assert tar.next().uid != 0, "the agent is root"


@pytest.mark.parametrize(
    "target,flags",
    [
        ("/usr", "MS_REMOUNT|MS_BIND"),
        (os.path.realpath(os.sys.prefix), "MS_REMOUNT|MS_BIND"),
        ("/opt/swerepair/bin", "MS_REMOUNT|MS_BIND"),
    ],
    ids=["usr", "interpreter-prefix", "restricted-bin"],
)
def test_read_only_binds_cannot_be_remounted(env, kind: str, target: str, flags: str) -> None:
    if kind == "docker" and target == os.path.realpath(os.sys.prefix):
        target = "/"  # the image's interpreter lives in its read-only root filesystem
    out = py(
        env,
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "MS_REMOUNT, MS_BIND = 32, 4096\n"
        f"r = libc.mount(None, {target!r}.encode(), None, {flags}, None)\n"
        "print('mount', r, os.strerror(ctypes.get_errno()))\n"
        f"open({target!r} + '/swerepair-pwned', 'w')",
    )
    assert "mount -1 Operation not permitted" in out
    assert "Read-only file system" in out or "Permission denied" in out
    assert not os.path.exists(os.path.join(target, "swerepair-pwned"))


def test_git_metadata_cannot_be_unmounted_or_written(env) -> None:
    out = py(
        env,
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print('umount', libc.umount2(b'/workspace/.git', 2), os.strerror(ctypes.get_errno()))\n"
        "for p in ('.git/hooks/post-index-change', '.git/config'):\n"
        "    try:\n        open(p, 'a').write('[core]\\n\\tfsmonitor = touch /tmp/x\\n'); print('WROTE', p)\n"
        "    except OSError as e:\n        print('refused', p, e.strerror)",
    )
    assert "umount -1 Operation not permitted" in out and "WROTE" not in out


@pytest.mark.parametrize(
    "path",
    ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sysrq-trigger", "/proc/sys/vm/drop_caches"],
)
def test_kernel_settings_are_read_only(env, path: str) -> None:
    out = py(env, f"open({path!r}, 'w').write('|/tmp/pwn')")
    assert "Error" in out and ("Read-only" in out or "Permission denied" in out or "No such file" in out)


@pytest.mark.parametrize(
    "name,code",
    [
        ("unshare user namespace", "libc.unshare(0x10000000)"),
        ("unshare mount namespace", "libc.unshare(0x00020000)"),
        ("setns", "libc.setns(0, 0)"),
        ("ptrace attach to pid 1", "libc.ptrace(16, 1, 0, 0)"),
        ("keyctl", "libc.syscall(250, 0, 0, 0, 0)"),
        ("bpf", "libc.syscall(321, 0, 0, 0)"),
        ("chroot", "libc.chroot(b'/tmp')"),
        ("setuid 0", "libc.setuid(0)"),
        ("mknod a block device", "libc.mknod(b'/tmp/sda', 0o60600, 0x800)"),
        ("kexec_load", "libc.syscall(246, 0, 0, 0, 0)"),
        ("perf_event_open", "libc.syscall(298, 0, 0, -1, -1, 0)"),
        ("io_uring_setup", "libc.syscall(425, 1, 0)"),
    ],
)
def test_dangerous_system_calls_fail(env, name: str, code: str) -> None:
    out = py(env, f"import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nprint('result', {code})")
    assert "result -1" in out, f"{name}: {out}"


def test_unshare_program_fails(env) -> None:
    out = py(env, "import os; os.execv('/usr/bin/unshare', ['unshare', '-U', 'true'])")
    assert "Operation not permitted" in out


def test_host_secrets_are_not_visible(env, kind: str) -> None:
    if kind == "docker":  # the image's own /etc: its secrets unreadable, nothing of the host's
        out = py(
            env,
            "import os\nfor p in ('/etc/shadow', '/etc/gshadow', '/root', '/etc/sudoers'):\n"
            "    print(p, os.access(p, os.R_OK))\n"
            "print('sys-writable', os.access('/sys/kernel', os.W_OK))",
        )
        assert "True" not in out, out
        assert "Error" in py(env, "open('/etc/shadow').read()")
        return
    out = py(
        env,
        "import os\nfor p in ('/etc/shadow', '/etc/gshadow', '/etc/ssh', '/root/.ssh', '/root/.bash_history', '/sys',"
        " '/etc/sudoers'):\n    print(p, os.path.exists(p))\nprint(sorted(os.listdir('/etc')))",
    )
    assert "True" not in out.split("[")[0]
    assert "shadow" not in out.split("[", 1)[1]


def test_no_host_paths_in_pid_1_cmdline(env) -> None:
    out = py(env, "print(open('/proc/1/cmdline').read().replace(chr(0), ' '))")
    assert "swerepair-ep-" not in out and "/opt/swerepair/bin" not in out.split(" -- ")[0]
    assert ".cache" not in out and "--bind" not in out


def test_package_and_gold_patches_are_hidden(env) -> None:
    import swerepair

    pkg = os.path.dirname(swerepair.__file__)
    out = py(env, f"import os; print(os.listdir({pkg!r}) if os.path.isdir({pkg!r}) else 'absent')")
    assert "envs" not in out and "bundled" not in out
    out = shell(env, "grep -rl FAIL_TO_PASS / --include=*.jsonl -s")
    assert ".jsonl" not in out


# -- filesystem --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PWNED)
def test_host_paths_cannot_be_written(env, path: str) -> None:
    py(env, f"open({path!r}, 'w').write('x')")
    assert not os.path.exists(path)


def test_tmp_is_private_per_command(env) -> None:
    py(env, "open('/tmp/leak', 'w').write('secret')")
    assert "False" in py(env, "import os; print(os.path.exists('/tmp/leak'))")


def test_symlink_to_a_host_file_is_refused_by_the_host_tools(env) -> None:
    py(env, "import os; os.symlink('/etc/passwd', 'pw.txt'); os.symlink('/etc', 'etcdir')")
    out = apply_patch(env, "pw.txt", "root", "pwned")
    assert "outside the workspace" in out
    assert "outside the workspace" in apply_patch(env, "etcdir/swerepair-pwned", "", "x")
    assert not os.path.exists("/etc/swerepair-pwned")
    with open("/etc/passwd") as f:
        assert "pwned" not in f.read()


def test_a_fifo_does_not_hang_the_host(env) -> None:
    py(env, "import os; os.mkfifo('pipe.py')")
    start = time.monotonic()
    out = apply_patch(env, "pipe.py", "a", "b")
    assert time.monotonic() - start < 5 and "FIFO" in out


def test_a_socket_file_is_refused(env) -> None:
    py(env, "import socket; s = socket.socket(socket.AF_UNIX); s.bind('sock.py')")
    assert "socket" in apply_patch(env, "sock.py", "a", "b")


def test_hard_links_are_not_written_through(env, kind: str) -> None:
    out = py(
        env,
        "import os\ntry:\n    os.link('/usr/bin/env', 'env2')\nexcept OSError as e:\n    print('link:', e.strerror)",
    )
    assert "link:" in out
    py(env, "import os; os.link('README.md', 'alias.md')")
    if kind == "docker":  # the engine replaces the directory entry: the other name keeps its text
        before = shell(env, "cat README.md")
        apply_patch(env, "alias.md", open_first_line(env, "alias.md"), "x")
        assert shell(env, "cat README.md") == before and "x" in shell(env, "head -1 alias.md")
        return
    assert "hard links" in apply_patch(env, "alias.md", "", "x") or "hard links" in apply_patch(
        env, "alias.md", open_first_line(env, "README.md"), "x"
    )


def open_first_line(env, path: str) -> str:
    return shell(env, f"head -1 {path}").splitlines()[0]


def test_git_attributes_cannot_run_programs_during_the_diff(env) -> None:
    apply_patch(env, ".gitattributes", "", "* diff=evil filter=evil\n")
    py(env, "import os; os.mkfifo('x.fifo')")
    apply_patch(env, "README.md", open_first_line(env, "README.md"), "changed")
    *_, info = env.step("done")
    assert not info["failed"] and "changed" in info["patch"] and "x.fifo" not in info["patch"]


# -- network -------------------------------------------------------------------------------------


def test_no_network_not_even_the_hosts_loopback(env) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    hits: list[object] = []

    def accept() -> None:
        end = time.monotonic() + 8
        while time.monotonic() < end:
            try:
                hits.append(server.accept())
            except (TimeoutError, OSError):
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    out = py(
        env,
        f"import socket\nfor addr in (('127.0.0.1', {port}), ('localhost', {port})):\n"
        "    try:\n        socket.create_connection(addr, timeout=1); print('CONNECTED', addr)\n"
        "    except OSError as e:\n        print('refused', addr, e)\n"
        "import socket; print('interfaces', [name for _, name in socket.if_nameindex()])",
    )
    t.join()
    server.close()
    assert "CONNECTED" not in out and hits == []
    assert "interfaces ['lo']" in out


# -- processes -----------------------------------------------------------------------------------


def test_host_processes_are_invisible_and_unreachable(env) -> None:
    out = py(
        env,
        f"import os, signal\npids = [int(p) for p in os.listdir('/proc') if p.isdigit()]\nprint('pids', len(pids))\n"
        f"try:\n    os.kill({os.getpid()}, signal.SIGKILL); print('KILLED')\n"
        "except OSError as e:\n    print('kill:', e.strerror)",
    )
    assert "KILLED" not in out
    assert int(out.split("pids ")[1].split()[0]) < 10


def test_daemons_do_not_outlive_their_command(env) -> None:
    shell(env, f'python -c \'import os, subprocess; os.setsid(); subprocess.Popen(["sleep", "{MARKER}"])\'')
    shell(env, f'python -c \'import os; os.fork() or os.execvp("sleep", ["sleep", "{MARKER}"])\'')
    time.sleep(0.3)
    assert host_snapshot()["leftover_processes"] == []


def test_fork_bomb_is_contained(env) -> None:
    start = time.monotonic()
    out = py(env, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    assert time.monotonic() - start < 30 and ("timed out" in out or "exit code" in out)
    assert "ok" in shell(env, "echo ok")  # the next command runs normally


def test_memory_bomb_is_contained(kind: str) -> None:
    """Many processes each under the per-process limit: the tree's cgroup stops them together
    (where the machine gives the sandbox a cgroup; else each process's address-space limit;
    Docker: the container's cgroup)."""
    from swerepair.envs.sandbox import ResourceLimits

    limits = ResourceLimits(memory_bytes=128 << 20, address_space_bytes=512 << 20)
    e = make_env(kind, SandboxConfig(limits=limits), tool_timeout_s=30)
    e.reset(options={"task_id": TASK})
    code = "import os\nfor _ in range(3):\n    os.fork()\nx = []\nwhile True:\n    x.append(b'x' * (32 << 20))"
    out = py(e, code)
    assert "timed out" not in out and ("MemoryError" in out or "exit code" in out), out
    cgroup = getattr(e.unwrapped.sandbox, "cgroup", None)
    if cgroup is not None:  # 8 x 512 MiB allowed per process: only the cgroup's 128 MiB stops them
        assert cgroup.memory_events().get("oom_kill", 0) > 0, cgroup.memory_events()
    e.close()


def test_cpu_spin_is_killed_at_its_timeout(env) -> None:
    start = time.monotonic()
    out = py(env, "while True: pass")
    assert "timed out" in out and time.monotonic() - start < 20


def test_disk_bomb_is_killed_at_the_budget(kind: str) -> None:
    from swerepair.envs.sandbox import ResourceLimits

    config = SandboxConfig(limits=ResourceLimits(disk_bytes=64 << 20, file_size_bytes=16 << 20))
    e = make_env(kind, config, tool_timeout_s=20)
    e.reset(options={"task_id": TASK})
    out = py(e, "i = 0\nwhile True:\n    open(f'blob{i}', 'wb').write(b'x' * (8 << 20)); i += 1")
    assert "disk budget" in out
    sandbox = e.unwrapped.sandbox
    if hasattr(sandbox, "host_repo"):
        from swerepair.envs.sandbox.hostfs import tree_bytes

        used = tree_bytes(sandbox.host_repo)
    else:  # Docker samples every 0.1 s: the overshoot is what that (plus one du) lets through
        used = int(sandbox.run("du -sk .", 30).output.split()[0]) * 1024
    assert used < (64 << 20) + (256 << 20)  # overshoot: one sample
    e.close()


def test_tmp_bomb_hits_the_tmpfs_size(env) -> None:
    out = py(env, "f = open('/tmp/big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))")
    assert "No space left" in out or "File too large" in out


def test_output_bomb_is_capped(env) -> None:
    out = py(env, "while True:\n    print('x' * 1000)")
    assert len(out) <= 8000 and ("timed out" in out or "only the first part" in out)
