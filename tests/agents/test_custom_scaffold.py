"""A user-defined scaffold plugs into SweRepair-v0 without touching any swerepair module.

The scaffold below is written as a user would write it in their own code: four tools
(`bash`, `view_file`, `str_replace`, `write_file`), its own system prompt and the default
Hermes parser. The tests drive it through ``gymnasium.make("SweRepair-v0", scaffold=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import pytest

import swerepair  # noqa: F401  (registers SweRepair-v0)
from swerepair.agents import HermesParser, Scaffold, Tool, ToolContext, ToolError, cut_output, format_exec_result
from swerepair.agents.policies.scripted import hermes_call, patch_to_edits
from swerepair.core import Sandbox

pytestmark = pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")

TASK_ID = "swerepair__intervals-5"
TARGET = "intervals/intervalset.py"


# -- the user's scaffold ---------------------------------------------------------------------
def _read(sandbox: Sandbox, tool: str, path: str) -> str:
    try:
        return sandbox.read_file(path)
    except ValueError as exc:  # outside the workspace, or inside .git
        raise ToolError(f"{tool}: {exc}") from None
    except FileNotFoundError:
        raise ToolError(f"{tool}: {path}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"{tool}: {path} is a directory") from None


def _write(sandbox: Sandbox, tool: str, path: str, text: str) -> None:
    try:
        sandbox.write_file(path, text)
    except ValueError as exc:
        raise ToolError(f"{tool}: {exc}") from None
    except OSError as exc:
        raise ToolError(f"{tool}: cannot write {path}: {exc.strerror or exc}") from None


def bash(sandbox: Sandbox, ctx: ToolContext, args: Mapping[str, Any]) -> str:
    return format_exec_result(sandbox.run(args["command"], ctx.timeout_s, restricted=False), ctx)


def view_file(sandbox: Sandbox, ctx: ToolContext, args: Mapping[str, Any]) -> str:
    lines = _read(sandbox, "view_file", args["path"]).splitlines()
    start = args.get("start_line", 1)
    end = args.get("end_line", len(lines))
    if start < 1 or end < start:
        raise ToolError(f"view_file: bad line range {start}-{end}")
    numbered = "\n".join(f"{n:6d}\t{lines[n - 1]}" for n in range(start, min(end, len(lines)) + 1))
    return cut_output(numbered, ctx.max_output_chars) or "[empty file]"


def str_replace(sandbox: Sandbox, ctx: ToolContext, args: Mapping[str, Any]) -> str:
    path, old, new = args["path"], args["old_str"], args["new_str"]
    text = _read(sandbox, "str_replace", path)
    count = text.count(old) if old else 0
    if count != 1:
        raise ToolError(f"str_replace: old_str occurs {count} times in {path}; it must occur exactly once")
    _write(sandbox, "str_replace", path, text.replace(old, new, 1))
    return f"Edited {path}."


def write_file(sandbox: Sandbox, ctx: ToolContext, args: Mapping[str, Any]) -> str:
    _write(sandbox, "write_file", args["path"], args["content"])
    return f"Wrote {len(args['content'])} characters to {args['path']}."


def _params(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


TOOLS = [
    Tool(
        "bash",
        "Run a bash command in the repository root.",
        _params(["command"], command={"type": "string"}),
        bash,
    ),
    Tool(
        "view_file",
        "Show a file with line numbers, optionally only lines start_line..end_line.",
        _params(["path"], path={"type": "string"}, start_line={"type": "integer"}, end_line={"type": "integer"}),
        view_file,
    ),
    Tool(
        "str_replace",
        "Replace old_str, which must occur exactly once in the file, with new_str.",
        _params(
            ["path", "old_str", "new_str"],
            path={"type": "string"},
            old_str={"type": "string"},
            new_str={"type": "string"},
        ),
        str_replace,
    ),
    Tool(
        "write_file",
        "Create or overwrite a file.",
        _params(["path", "content"], path={"type": "string"}, content={"type": "string"}),
        write_file,
    ),
]

SYSTEM_PROMPT = """\
You fix bugs in the Python repository at {workdir}. Use the tools ({tool_names}); when the
fix is in place, answer without a tool call.

{tool_list}"""

FOUR_TOOLS = Scaffold.from_tools("four-tools", SYSTEM_PROMPT, TOOLS, parser=HermesParser())


# -- tests -----------------------------------------------------------------------------------
@pytest.fixture
def env():
    env = gym.make("SweRepair-v0", scaffold=FOUR_TOOLS, sandbox="auto")
    yield env
    env.close()


def _reset(env: gym.Env) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    obs, info = env.reset(seed=0, options={"task_id": TASK_ID})
    assert not info["failed"], "the workspace could not be created"
    return obs, info


def _last_tool_message(obs: list[dict[str, Any]]) -> dict[str, Any]:
    assert obs[-1]["role"] == "tool", obs[-1]
    return obs[-1]


def test_reset_offers_exactly_the_four_tools_and_the_own_prompt(env):
    obs, info = _reset(env)
    assert info["tools"] == [t.schema() for t in TOOLS]
    assert [s["function"]["name"] for s in info["tools"]] == ["bash", "view_file", "str_replace", "write_file"]
    assert info["scaffold"] == "four-tools"
    assert info["task_id"] == TASK_ID
    system = obs[0]
    assert system["role"] == "system"
    workdir = env.unwrapped.sandbox.workdir
    assert system["content"].startswith(f"You fix bugs in the Python repository at {workdir}.")
    assert "(bash, view_file, str_replace, write_file)" in system["content"]
    assert "- str_replace: Replace old_str" in system["content"]
    assert "apply_patch" not in system["content"] and "shell" not in system["content"]
    assert obs[1] == {"role": "user", "content": env.unwrapped.task.problem_statement}


def test_gold_patch_through_str_replace_scores_one(env):
    _reset(env)
    task = env.unwrapped.task
    edits = patch_to_edits(task.patch)
    assert edits and all(e["file"] == TARGET for e in edits)

    obs, reward, terminated, truncated, info = env.step(
        "Let me read the code.\n" + hermes_call("view_file", {"path": TARGET})
    )
    seen = _last_tool_message(obs)
    assert seen["name"] == "view_file"
    assert "   156\t        first, last = self._intervals[0], self._intervals[-1]" in seen["content"]
    assert (reward, terminated, truncated) == (0.0, False, False)

    for edit in edits:
        args = {"path": edit["file"], "old_str": edit["search"], "new_str": edit["replace"]}
        obs, reward, terminated, truncated, info = env.step(hermes_call("str_replace", args))
        assert _last_tool_message(obs)["content"] == f"Edited {TARGET}."
        assert (reward, terminated, truncated) == (0.0, False, False)

    obs, reward, terminated, truncated, info = env.step(
        hermes_call("bash", {"command": "python -c 'from intervals import IntervalSet; print(~IntervalSet())'"})
    )
    assert _last_tool_message(obs)["content"] == "(-inf, +inf)"

    obs, reward, terminated, truncated, info = env.step("The complement of the empty set is now everything.")
    assert terminated is True and truncated is False
    assert reward == 1.0
    assert info["exit_reason"] == "agent_stopped"
    assert info["failed"] is False
    assert info["reward_components"]["functional_similarity"] == 1.0
    assert "+        if not self._intervals:" in info["patch"]
    assert info["tool_stats"]["calls"] == {"view_file": 1, "str_replace": len(edits), "bash": 1}
    assert info["tool_stats"]["errors"] == 0
    assert obs[-1] == {"role": "assistant", "content": "The complement of the empty set is now everything."}


def test_unknown_tool_is_an_error_observation_and_the_episode_goes_on(env):
    _reset(env)
    obs, reward, terminated, truncated, info = env.step(
        hermes_call("apply_patch", {"file": TARGET, "search": "a", "replace": "b"})
    )
    msg = _last_tool_message(obs)
    assert msg["name"] == "apply_patch"
    assert msg["content"].startswith("Error: unknown tool")
    assert "bash, view_file, str_replace, write_file" in msg["content"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool_stats"]["errors"] == 1
    assert env.unwrapped.sandbox.diff() == ""

    obs, reward, terminated, truncated, info = env.step(
        hermes_call("view_file", {"path": TARGET, "start_line": 1, "end_line": 3})
    )
    msg = _last_tool_message(obs)
    assert msg["name"] == "view_file" and msg["content"].startswith("     1\t")
    assert len(msg["content"].splitlines()) == 3
    assert not terminated and not truncated


def test_non_unique_old_str_is_an_error_and_leaves_the_file_alone(env):
    _reset(env)
    before = env.unwrapped.sandbox.read_file(TARGET)
    assert before.count("        return self\n") > 1
    obs, reward, terminated, truncated, info = env.step(
        hermes_call("str_replace", {"path": TARGET, "old_str": "        return self\n", "new_str": "        pass\n"})
    )
    msg = _last_tool_message(obs)
    assert msg["name"] == "str_replace"
    assert msg["content"].startswith("Error: str_replace: old_str occurs")
    assert "exactly once" in msg["content"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool_stats"]["errors"] == 1
    assert env.unwrapped.sandbox.read_file(TARGET) == before
    assert env.unwrapped.sandbox.diff() == ""
