"""The gVisor sandbox (``sandbox="gvisor"``): commands run under gVisor's own kernel."""

from __future__ import annotations

import os
import time

import pytest

from swerepair.core import Task
from swerepair.envs.sandbox import make_sandbox, runsc_available
from swerepair.rewards import TestsPass

needs_runsc = pytest.mark.skipif(
    not runsc_available() and not os.environ.get("CI"), reason="gVisor needs runsc and root"
)
pytestmark = [needs_runsc]


@pytest.fixture
def sandbox(bundled: list[Task]):
    sb = make_sandbox("gvisor", bundled[0])
    yield sb
    sb.close()


def test_commands_run_under_gvisors_kernel_as_an_unprivileged_user(sandbox) -> None:
    res = sandbox.run("id -u; grep CapEff /proc/self/status; dmesg | head -1; git rev-parse HEAD", 60)
    assert res.ok, res.output
    lines = res.output.splitlines()
    assert lines[0] != "0" and "0000000000000000" in lines[1]
    assert "gVisor" in res.output  # the Sentry's own boot log, not the host's kernel


def test_edits_persist_and_the_diff_sees_them(sandbox) -> None:
    sandbox.write_file("NEW.txt", "hello\n")
    assert sandbox.run("python -c \"open('made.txt', 'w').write('x')\"", 60).ok
    patch = sandbox.diff()
    assert "+++ b/NEW.txt" in patch and "+++ b/made.txt" in patch


def test_isolation_holds(sandbox) -> None:
    res = sandbox.run(
        'python -c "import socket; print([n for _, n in socket.if_nameindex()])"; '
        "cat /etc/shadow; echo x > /usr/pwned; ls /proc | grep -c '^[0-9]'",
        60,
    )
    assert "No such file" in res.output and ("Read-only" in res.output or "Permission denied" in res.output)
    assert not os.path.exists("/usr/pwned")
    assert "'eth" not in res.output


def test_timeouts_kill_the_container(sandbox) -> None:
    start = time.monotonic()
    res = sandbox.run("sleep 60 & sleep 60", 2)
    assert res.timed_out and time.monotonic() - start < 20


def test_tests_pass_runs_under_gvisor(bundled: list[Task]) -> None:
    task = bundled[0]
    reward = TestsPass(lambda t: make_sandbox("gvisor", t), timeout=180)
    assert reward.evaluate(task.patch, task).value == 1.0
    assert reward.evaluate("", task).value == 0.0
