"""Sandbox behaviour: isolation (bubblewrap), timeouts, process cleanup, limits, files, diff."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

import swerepair
from swerepair.core import SandboxError, Task
from swerepair.envs.sandbox import ResourceLimits, SandboxConfig, TaskRepositoryError, make_sandbox

from helpers import BWRAP_MODES, SANDBOX_KINDS, needs_bwrap, set_bwrap_mode


@pytest.fixture(autouse=True, params=BWRAP_MODES)
def bwrap_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with bubblewrap's session and with a bubblewrap per command."""
    set_bwrap_mode(monkeypatch, request.param)
    return request.param


@pytest.fixture(params=SANDBOX_KINDS)
def sandbox(request: pytest.FixtureRequest, toy_task: Task):
    sb = make_sandbox(request.param, toy_task)
    yield sb
    sb.close()


def test_runs_in_workspace_at_base_commit(sandbox, toy_task: Task) -> None:
    res = sandbox.run("git rev-parse HEAD && cat calc.py", 30)
    assert res.ok, res.output
    assert res.output.startswith(toy_task.base_commit)
    assert "return a - b" in res.output


def test_history_holds_only_the_base_commit(sandbox) -> None:
    res = sandbox.run("git log --all --oneline | wc -l && git for-each-ref", 30)
    lines = res.output.split("\n")
    assert lines[0].strip() == "1"
    assert "refs/heads/main" in res.output and "refs/src" not in res.output


def test_timeout_kills_the_whole_process_tree(sandbox) -> None:
    start = time.monotonic()
    res = sandbox.run("(sleep 3; echo late > late.txt) & sleep 30", 1.0)
    assert res.timed_out and not res.ok
    assert time.monotonic() - start < 5
    time.sleep(3.5)
    assert not (sandbox.host_repo / "late.txt").exists(), "a child of the timed-out command survived"


def test_background_jobs_do_not_outlive_the_command(sandbox) -> None:
    res = sandbox.run("(sleep 2; echo late > late.txt) & echo started", 10)
    assert res.ok and "started" in res.output
    time.sleep(2.5)
    assert not (sandbox.host_repo / "late.txt").exists(), "a background job survived its command"


def test_huge_output_is_capped_but_counted(toy_task: Task) -> None:
    config = SandboxConfig(limits=ResourceLimits(max_output_bytes=100_000))
    with make_sandbox("auto", toy_task, config) as sb:
        res = sb.run("yes | head -c 20000000", 30)
    assert res.ok
    assert res.truncated
    assert len(res.output) == 100_000
    assert res.output_bytes == 20_000_000


def test_file_size_limit(toy_task: Task) -> None:
    config = SandboxConfig(limits=ResourceLimits(file_size_bytes=1 << 20))
    with make_sandbox("auto", toy_task, config) as sb:
        res = sb.run("python -c \"open('big.bin', 'wb').write(b'x' * (4 << 20))\"", 30)
        assert not res.ok
        assert os.path.getsize(sb.host_repo / "big.bin") <= 1 << 20


def test_restricted_shell_refuses_edits_and_escapes(sandbox) -> None:
    refused = {
        "echo x > f.txt": "restricted",
        "cd /": "restricted",
        "/bin/ls": "restricted",
        "git commit -m x": "not allowed",
        "git checkout -b x": "not allowed",
        "git grep -O'touch p.txt' add": "not allowed",
        "git grep --open-files-in-pager=touch add": "not allowed",
        "sed -i s/a/b/ calc.py": "in-place editing is not allowed",
        "sed -ni s/a/b/p calc.py": "in-place editing is not allowed",
        "rm calc.py": "not found",
    }
    for cmd, message in refused.items():
        res = sandbox.run(cmd, 10, restricted=True)
        assert not res.ok, cmd
        assert message in res.output, (cmd, res.output)
    assert not (sandbox.host_repo / "f.txt").exists()
    assert "PATH: readonly variable" in sandbox.run("PATH=/usr/bin:/bin; rm calc.py", 10, restricted=True).output
    assert sandbox.read_file("calc.py").count("return a - b") == 1
    ok = sandbox.run("ls && git status --short && grep -n add calc.py && python -c 'print(6*7)'", 30, restricted=True)
    assert ok.ok and "42" in ok.output


def test_paths_outside_the_workspace_are_refused(sandbox) -> None:
    sandbox.run("ln -s /etc/passwd link && ln -s .. up", 10)
    for bad in ["../x", "/etc/passwd", "link", "up/x", ".git/config", "a/../../b"]:
        with pytest.raises(ValueError):
            sandbox.host_path(bad)
    assert sandbox.host_path(f"{sandbox.workdir}/calc.py") == Path(os.path.realpath(sandbox.host_repo / "calc.py"))


def test_diff_includes_new_files_and_leaves_the_index_alone(sandbox) -> None:
    sandbox.write_file("calc.py", sandbox.read_file("calc.py").replace("a - b", "a + b"))
    sandbox.write_file("pkg/new.py", "X = 1\n")
    before = sandbox.run("git status --porcelain", 10).output
    patch = sandbox.diff()
    assert "+    return a + b" in patch and "+++ b/pkg/new.py" in patch
    assert sandbox.run("git status --porcelain", 10).output == before
    assert "?? pkg/" in before


def test_close_removes_the_workspace(toy_task: Task) -> None:
    sb = make_sandbox("auto", toy_task)
    root = sb.episode_dir
    assert root.exists()
    sb.close()
    sb.close()  # twice is fine
    assert not root.exists()
    with pytest.raises(SandboxError):
        sb.run("true", 5)


def test_a_wrong_repository_is_a_configuration_error(toy_task: Task, tmp_path: Path) -> None:
    broken = Task(**{**toy_task.__dict__, "repo_source": str(tmp_path / "nope"), "repo": "x/nope"})
    with pytest.raises(TaskRepositoryError, match="does not exist"):
        make_sandbox("auto", broken)
    wrong_commit = Task(**{**toy_task.__dict__, "base_commit": "0" * 40, "repo": "x/wrong"})
    with pytest.raises(TaskRepositoryError, match="not in"):
        make_sandbox("auto", wrong_commit)


def test_checkout_tells_nothing_about_its_source(sandbox, toy_task: Task) -> None:
    listing = sandbox.run("ls -A .git", 10).output.split()
    assert "FETCH_HEAD" not in listing and "logs" not in listing and "ORIG_HEAD" not in listing
    res = sandbox.run("git reflog; git for-each-ref; cat .git/config .git/packed-refs", 10)
    assert toy_task.repo_source not in res.output


def test_a_patch_larger_than_the_capture_limit_is_kept(toy_task: Task) -> None:
    config = SandboxConfig(limits=ResourceLimits(max_output_bytes=10_000))
    with make_sandbox("auto", toy_task, config) as sb:
        sb.write_file("big.txt", "line of text\n" * 50_000)
        patch = sb.diff()
    assert patch.count("+line of text") == 50_000


def test_test_run_litter_stays_out_of_the_patch(sandbox) -> None:
    res = sandbox.run("python -m pytest -q tests && python -c 'import calc'", 60, restricted=True)
    assert "1 passed" in res.output
    sandbox.run("mkdir -p .pytest_cache pkg/__pycache__ && touch .pytest_cache/x pkg/__pycache__/m.pyc", 10)
    assert sandbox.diff() == ""


# -- bubblewrap isolation ------------------------------------------------------------------


@needs_bwrap
def test_no_network_not_even_loopback(toy_task: Task) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        # The same probe reaches the port from the host...
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with make_sandbox("bubblewrap", toy_task) as sb:
            connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')"
            probe = f'python -c "{connect}"'
            res = sb.run(probe, 20)
            assert not res.ok and "CONNECTED" not in res.output
            assert "Connection refused" in res.output or "unreachable" in res.output
    finally:
        server.close()


@needs_bwrap
def test_writes_outside_the_workspace_fail(toy_task: Task, tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    with make_sandbox("bubblewrap", toy_task) as sb:
        for path in ["/usr/evil", "/etc/evil", str(target), "/evil"]:
            res = sb.run(f"touch {path}", 10)
            assert not res.ok, path
        assert not sb.run("touch .git/evil", 10).ok, ".git must be read-only"
        assert sb.run("touch /tmp/fine && touch fine.txt", 10).ok
    assert not target.exists()
    assert not Path("/usr/evil").exists()


@needs_bwrap
def test_gold_data_and_cache_are_invisible(toy_task: Task) -> None:
    pkg = os.path.dirname(os.path.realpath(swerepair.__file__))
    data = os.path.join(pkg, "envs", "bundled", "data", "tasks.jsonl")
    assert os.path.exists(data)
    with make_sandbox("bubblewrap", toy_task) as sb:
        assert not sb.run(f"cat {data}", 10).ok
        assert not sb.run(f"ls {os.environ['SWEREPAIR_CACHE']}", 10).ok
        assert not sb.run(f"ls {toy_task.repo_source}", 10).ok
        assert sb.run("python -m pytest --version", 30).ok


@needs_bwrap
def test_package_is_hidden_even_under_a_system_directory(toy_task: Task, monkeypatch: pytest.MonkeyPatch) -> None:
    from swerepair.envs.sandbox import view

    system_pkg = "/usr/lib/python3/dist-packages" if os.path.isdir("/usr/lib/python3/dist-packages") else "/usr/lib"
    assert os.listdir(system_pkg)
    monkeypatch.setattr(view, "_package_dir", lambda: system_pkg)
    with make_sandbox("bubblewrap", toy_task) as sb:
        res = sb.run(f"ls -A {system_pkg} | wc -l", 10)
    assert res.output.strip() == "0"


@needs_bwrap
def test_processes_are_invisible(toy_task: Task) -> None:
    with make_sandbox("bubblewrap", toy_task) as sb:
        res = sb.run("ls /proc | grep -c '^[0-9]'", 10)
    assert int(res.output.strip()) <= 4, res.output


@needs_bwrap
def test_a_bwrap_setup_failure_is_a_sandbox_error_not_a_command_failure(toy_task: Task) -> None:
    with make_sandbox("bubblewrap", toy_task) as sb:
        assert sb.run("exit 1", 10).exit_code == 1  # the command's own failure is a result
        sb._mounts = ["--ro-bind", "/nonexistent-source", "/x", *sb._mounts]
        with pytest.raises(SandboxError, match="could not set up"):
            sb.run("true", 10)


@needs_bwrap
def test_an_interpreter_outside_any_prefix_never_exposes_the_root(toy_task: Task) -> None:
    with make_sandbox("bubblewrap", toy_task, SandboxConfig(python="/nonexistent/python3")) as sb:
        assert "--ro-bind / /" not in " ".join(sb._mounts)
        assert not sb.run("ls /root/.cache", 10).ok
