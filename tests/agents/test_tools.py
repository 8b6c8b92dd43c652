"""The nano-agent's tools against a real sandbox: apply_patch edge cases, shell output cutting."""

from __future__ import annotations

import re

import pytest

from swerepair.agents import APPLY_PATCH, SHELL, Tool, ToolContext, ToolError, check_arguments, cut_output
from swerepair.agents.scaffold.tools import MAX_COMMAND_BYTES
from swerepair.core import Task
from swerepair.envs.sandbox import make_sandbox

from helpers import SANDBOX_KINDS

CTX = ToolContext(timeout_s=10, max_output_chars=500)


@pytest.fixture(params=SANDBOX_KINDS)
def sandbox(request: pytest.FixtureRequest, toy_task: Task):
    sb = make_sandbox(request.param, toy_task)
    yield sb
    sb.close()


def patch(sb, file: str, search: str, replace: str) -> str:
    args = {"file": file, "search": search, "replace": replace}
    check_arguments(APPLY_PATCH, args)
    return APPLY_PATCH.fn(sb, CTX, args)


def test_replaces_exactly_one_occurrence(sandbox) -> None:
    out = patch(sandbox, "calc.py", "return a - b", "return a + b")
    assert out == "Replaced 1 occurrence in calc.py (at line 2)."
    assert "return a + b" in sandbox.read_file("calc.py")
    assert "+    return a + b" in sandbox.diff()


def test_no_match(sandbox) -> None:
    with pytest.raises(ToolError, match=r"not found in calc\.py"):
        patch(sandbox, "calc.py", "return a * b", "x")
    with pytest.raises(ToolError, match="matches once if leading/trailing whitespace is dropped"):
        patch(sandbox, "calc.py", "  return a - b  \n\n\n\n", "x")


def test_several_matches(sandbox) -> None:
    with pytest.raises(ToolError, match="occurs 2 times"):
        patch(sandbox, "calc.py", "DUP = 1", "DUP = 2")
    assert sandbox.read_file("calc.py").count("DUP = 1") == 2, "a refused edit must change nothing"


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "tests/../../x.py", ".git/config"])
def test_paths_outside_the_workspace(sandbox, path: str) -> None:
    with pytest.raises(ToolError, match=r"outside the workspace|off limits"):
        patch(sandbox, path, "", "evil")


def test_symlink_pointing_out_of_the_workspace(sandbox, tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("secret = 1\n")
    sandbox.run(f"ln -s {victim} link.txt && ln -s {tmp_path} linkdir", 10)
    with pytest.raises(ToolError, match="outside the workspace"):
        patch(sandbox, "link.txt", "secret = 1", "secret = 2")
    with pytest.raises(ToolError, match="outside the workspace"):
        patch(sandbox, "linkdir/victim.txt", "secret = 1", "secret = 2")
    assert victim.read_text() == "secret = 1\n"


def test_create_missing_and_directory(sandbox) -> None:
    assert patch(sandbox, "pkg/new.py", "", "X = 1\n") == "Created pkg/new.py."
    assert sandbox.read_file("pkg/new.py") == "X = 1\n"
    with pytest.raises(ToolError, match="no such file"):
        patch(sandbox, "nope.py", "a", "b")
    with pytest.raises(ToolError, match="is a directory"):
        patch(sandbox, "tests", "a", "b")
    with pytest.raises(ToolError, match="'search' is empty"):
        patch(sandbox, "calc.py", "", "b")


def test_shell_output_notes_and_cutting(sandbox) -> None:
    out = SHELL.fn(sandbox, CTX, {"cmd": "seq 1 100000"})
    assert "seq" in out and "not found" in out, "seq is not on the restricted PATH"
    out = SHELL.fn(sandbox, CTX, {"cmd": "python -c 'print(\"x\" * 5000)'"})
    assert out == "x" * 5000, "the tool returns everything; the env cuts (see test_env)"
    out = SHELL.fn(sandbox, CTX, {"cmd": "grep -c nothing-here calc.py"})
    assert out.endswith("[exit code: 1]")
    out = SHELL.fn(sandbox, ToolContext(timeout_s=1), {"cmd": "python -c 'import time; time.sleep(5)'"})
    assert "[command timed out after 1s and was killed]" in out
    assert SHELL.fn(sandbox, CTX, {"cmd": "true"}) == "[no output]"
    with pytest.raises(ToolError):
        SHELL.fn(sandbox, CTX, {"cmd": "   "})


def test_cut_output_keeps_head_and_tail() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    cut = cut_output(text, 300)
    assert cut.startswith("line 0\n") and cut.endswith("line 999\n")
    assert len(cut) == 300
    marker = re.search(r"\n\[\.\.\. (\d+) characters cut \.\.\.\]\n", cut)
    assert marker is not None
    assert int(marker.group(1)) == len(text) - (len(cut) - len(marker.group(0))), "the count must be exact"
    assert cut_output(cut, 300) == cut, "cutting twice must change nothing"
    assert cut_output("short", 300) == "short"


def test_check_arguments_types() -> None:
    tool = Tool(
        "t",
        "d",
        {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}, "required": ["n"]},
        fn=lambda sb, ctx, a: "",
    )
    check_arguments(tool, {"n": 1, "s": "x"})
    for bad, message in [
        ({}, "missing"),
        ({"n": "1"}, "must be of type integer"),
        ({"n": True}, "must be of type integer"),
        ({"n": 1, "z": 0}, "unknown argument"),
    ]:
        with pytest.raises(ToolError, match=message):
            check_arguments(tool, bad)


def test_a_command_over_the_limit_is_the_models_error_not_the_sandboxs(sandbox) -> None:
    # one argument over 128 KiB cannot even be exec'd; the tool answers before the sandbox is asked
    huge = "echo " + "x" * (200 * 1024)
    with pytest.raises(ToolError, match=f"the limit is {MAX_COMMAND_BYTES} bytes"):
        SHELL.fn(sandbox, CTX, {"cmd": huge})
    just_under = "true " + "x" * (MAX_COMMAND_BYTES - 10)
    assert SHELL.fn(sandbox, CTX, {"cmd": just_under}) == "[no output]"


@pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")
def test_a_huge_command_through_the_env_is_an_observation(toy_task: Task) -> None:
    from swerepair.envs import SweRepairEnv

    env = SweRepairEnv(tasks=[toy_task], sandbox="local", max_tool_calls=3, max_context_tokens=10**6)
    try:
        env.reset(seed=0)
        call = '<tool_call>{"name": "shell", "arguments": {"cmd": "echo ' + "y" * (300 * 1024) + '"}}</tool_call>'
        obs, _reward, terminated, truncated, info = env.step(call)
        assert not info.get("failed"), info.get("exit_reason")
        assert "the limit is" in obs[-1]["content"]
        assert not terminated and not truncated
    finally:
        env.close()
