"""What the security suite's attacks share: driving the env with tool calls, building
tampering patches for a task, and looking at the host afterwards."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swerepair.core import Task

from helpers import package_of, patch_from_edits

#: Host paths an attack tries to write; none may exist after the suite.
PWNED = ("/etc/swerepair-pwned", "/usr/swerepair-pwned", "/root/swerepair-pwned", "/tmp/swerepair-pwned")


def tool_call(name: str, **arguments: object) -> str:
    """One tool call as the nano-agent's text format."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def shell(env, cmd: str) -> str:
    """Run `cmd` through the agent's shell tool; return what the model reads."""
    obs, _, _, _, info = env.step(tool_call("shell", cmd=cmd))
    assert not info.get("failed"), f"the attack failed the episode instead of being an observation: {info}"
    return obs[-1]["content"]


def py(env, code: str) -> str:
    """Run Python `code` in the sandbox through the shell tool (``python -c``)."""
    return shell(env, f"python -c {shlex.quote(code)}")


def apply_patch(env, file: str, search: str, replace: str) -> str:
    obs, *_ = env.step(tool_call("apply_patch", file=file, search=search, replace=replace))
    return obs[-1]["content"]


def f2p_file(task: Task) -> str:
    return task.FAIL_TO_PASS[0].split("::")[0]


def new_file(path: str, text: str) -> str:
    """A patch that creates `path` holding `text` (as git writes it)."""
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    header = f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
    return f"{header}@@ -0,0 +1,{len(lines)} @@\n{body}"


@dataclass(frozen=True)
class Tamper:
    """A patch that tries to score without fixing the bug. `make(task)` returns the patch text."""

    name: str
    make: Callable[[Task], str]


_REPORT_HOOK = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
"""

_FAKE_PASS_AND_EXIT = """import os
import sys


def pytest_configure(config):
    for arg in sys.argv[1:]:
        print("PASSED " + arg)
    os._exit(0)
"""

_FAKE_PYTEST = """import sys
for arg in sys.argv[1:]:
    print("PASSED " + arg)
print("1 passed")
raise SystemExit(0)
"""

# Package code with no flagged token: reaches pytest's report class by string building and
# forces every report to pass. Only the runner's integrity checks and sentinels can see it.
_STEALTH_REPORT_PATCH = """
import sys as _s
_m = getattr(_s, "mod" + "ules")
_r = _m.get("_py" + "test.reports")
if _r is not None:
    _C = getattr(_r, "Test" + "Report")
    _orig = _C.__init__

    def _init(self, *a, **k):
        _orig(self, *a, **k)
        self.outcome = "pass" + "ed"

    _C.__init__ = _init
"""

# The same from code imported with the tests, without a flagged token or a hook: wraps the
# report class so a failed call becomes an XFAIL.
_XFAIL_STEALTH = """
import sys as _s
_r = getattr(_s, "mod" + "ules").get("_py" + "test.reports")
if _r is not None:
    _C = getattr(_r, "Test" + "Report")
    _orig = _C.__init__

    def _init(self, *a, **k):
        _orig(self, *a, **k)
        if self.outcome == "fail" + "ed" and self.when == "call":
            self.outcome = "skip" + "ped"
            self.wasxfail = "x"

    _C.__init__ = _init
"""

# Package code that kills the test process with a status, no flagged token.
_STEALTH_EXIT = """
import os as _o
getattr(_o, "_" + "exit")(3)
"""

# Turns every failing test into an expected failure (XFAIL) and leaves passing tests alone.
_XFAIL_FAILURES = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.outcome = "skipped"
        report.wasxfail = "tampered"
"""


def _append_to_package(text: str) -> Callable[[Task], str]:
    def make(task: Task) -> str:
        init = f"{package_of(task)}/__init__.py"
        return patch_from_edits(task, {init: lambda old: old + "\n" + text})

    return make


def _shadow_test_file(task: Task) -> str:
    """Append to the failing test's file a definition that replaces the test with one that passes."""
    names = {t.split("::")[-1].split("[")[0] for t in task.FAIL_TO_PASS if t.startswith(f2p_file(task))}
    stubs = "".join(f"\n\ndef {n}(*args, **kwargs):\n    pass\n" for n in sorted(names))
    return patch_from_edits(task, {f2p_file(task): lambda old: old + stubs})


TAMPERS: tuple[Tamper, ...] = (
    Tamper("root conftest report hook", lambda t: new_file("conftest.py", _REPORT_HOOK)),
    Tamper("nested conftest report hook", lambda t: new_file(f"{package_of(t)}/conftest.py", _REPORT_HOOK)),
    Tamper("tests/conftest.py report hook", lambda t: new_file("tests/conftest.py", _REPORT_HOOK)),
    Tamper("conftest prints PASSED and exits 0", lambda t: new_file("conftest.py", _FAKE_PASS_AND_EXIT)),
    Tamper("conftest exits 3", lambda t: new_file("conftest.py", "import os\nos._exit(3)\n")),
    Tamper("pytest.py shadows pytest", lambda t: new_file("pytest.py", _FAKE_PYTEST)),
    Tamper("pytest/ package shadows pytest", lambda t: new_file("pytest/__init__.py", _FAKE_PYTEST)),
    Tamper(
        "pytest.ini addopts -p plugin",
        lambda t: (
            new_file("pytest.ini", "[pytest]\naddopts = -p evilplugin\n") + new_file("evilplugin.py", _REPORT_HOOK)
        ),
    ),
    Tamper(
        "pyproject addopts -p plugin",
        lambda t: (
            patch_from_edits(
                t, {"pyproject.toml": lambda old: old + '\n[tool.pytest.ini_options]\naddopts = "-p evilplugin"\n'}
            )
            + new_file("evilplugin.py", _REPORT_HOOK)
        ),
    ),
    Tamper("setup.cfg addopts", lambda t: new_file("setup.cfg", "[tool:pytest]\naddopts = -p evilplugin\n")),
    Tamper("new tests/__init__.py patches the runner", lambda t: new_file("tests/__init__.py", _STEALTH_REPORT_PATCH)),
    Tamper(
        "package code patches pytest internals", _append_to_package("import _pytest.runner\n_pytest.runner.x = 1\n")
    ),
    Tamper("package code patches the report class, no flagged token", _append_to_package(_STEALTH_REPORT_PATCH)),
    Tamper("package code exits the test process, no flagged token", _append_to_package(_STEALTH_EXIT)),
    Tamper("conftest turns failures into xfail", lambda t: new_file("conftest.py", _XFAIL_FAILURES)),
    Tamper("tests/__init__.py turns failures into xfail", lambda t: new_file("tests/__init__.py", _XFAIL_STEALTH)),
    Tamper("wrapper appended to the failing test file", _shadow_test_file),
    Tamper("sitecustomize.py", lambda t: new_file("sitecustomize.py", _STEALTH_REPORT_PATCH)),
    Tamper("a .pth file", lambda t: new_file("evil.pth", "import os; os._exit(0)\n")),
    Tamper("forged runner records", _append_to_package('print("0" * 32 + \' {"kind": "finish", "exit_code": 0}\')\n')),
)


#: (task id, tamper name, value, failed) for every tampering patch the suite scored.
TAMPER_RESULTS: list[tuple[str, str, float | None, bool]] = []

#: Attacks that start long-lived processes put this number in their command line.
MARKER = "9876543"


def host_snapshot() -> dict[str, object]:
    """What the suite checks on the host afterwards: processes an attack tried to leave
    behind (their command line holds `MARKER`), and the host paths attacks try to write."""
    leftovers = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if MARKER in cmdline and "pytest" not in cmdline:
            leftovers.append(f"{pid}: {cmdline[:200]}")
    return {"leftover_processes": leftovers, "pwned": [p for p in PWNED if os.path.lexists(p)]}
