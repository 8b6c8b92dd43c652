"""The env's budget names: the tool-call budget is `max_tool_calls` (an env step is one assistant
turn, which may hold several calls); the old names are rejected with the new ones named; the
wall-clock warning has a fraction of its own."""

from __future__ import annotations

import gymnasium as gym
import pytest

from swerepair.agents.policies.scripted import hermes_call
from swerepair.core import Task
from swerepair.envs import Budgets, SweRepairEnv
from swerepair.envs.env import RENAMED_BUDGETS

SHELL_LS = hermes_call("shell", {"cmd": "ls"})


@pytest.mark.parametrize(("old", "new"), [("max_steps", "max_tool_calls"), ("warn_steps", "warn_tool_calls")])
def test_old_budget_names_are_rejected_with_the_new_ones(toy_task: Task, old: str, new: str) -> None:
    assert RENAMED_BUDGETS[old][0] == new
    for make in (
        lambda: Budgets(**{old: 3}),
        lambda: SweRepairEnv(tasks=[toy_task], **{old: 3}),
        lambda: gym.make("SweRepair-v0", **{old: 3}),
    ):
        with pytest.raises(TypeError, match=f"{old} was renamed {new} \\(") as info:
            make()
        assert "\n" not in str(info.value)


def test_an_unknown_budget_is_still_a_plain_type_error(toy_task: Task) -> None:
    with pytest.raises(TypeError, match="unknown argument"):
        SweRepairEnv(tasks=[toy_task], max_tool_call=3)


def test_defaults_keep_todays_behaviour() -> None:
    b = Budgets()
    assert (b.max_tool_calls, b.warn_tool_calls) == (30, 3)
    assert b.warn_context_fraction == b.warn_wall_fraction == 0.85


@pytest.mark.parametrize("how", ["keyword", "budgets", "gym.make"])
def test_max_tool_calls_truncates_as_max_steps_did(toy_task: Task, how: str) -> None:
    """Tool calls plus turns without any call: one empty turn (nudged) and two calls end it at 3."""
    if how == "keyword":
        env = SweRepairEnv(tasks=[toy_task], max_tool_calls=3)
    elif how == "budgets":
        env = SweRepairEnv(tasks=[toy_task], budgets=Budgets(max_tool_calls=3))
    else:
        env = gym.make("SweRepair-v0", tasks=[toy_task], max_tool_calls=3).unwrapped
    env.reset()
    *_, truncated, info = env.step("Thinking first.")
    assert not truncated and info["tool_stats"]["tool_calls"] == 1
    obs, _, terminated, truncated, info = env.step(SHELL_LS)
    assert not truncated and "budget warning: 1 tool call left" in obs[-1]["content"]
    obs, _, terminated, truncated, info = env.step(SHELL_LS + SHELL_LS)
    assert truncated and not terminated and info["exit_reason"] == "tool_call_budget"
    assert info["tool_stats"]["tool_calls"] == 3 and info["tool_stats"]["turns"] == 3
    assert obs[-1]["content"] == "Not executed: the tool-call budget is exhausted."
    env.close()


def test_wall_clock_and_context_warnings_have_separate_fractions(toy_task: Task) -> None:
    wall = SweRepairEnv(tasks=[toy_task], max_wall_s=60, warn_wall_fraction=1e-4)
    wall.reset()
    content = wall.step(SHELL_LS)[0][-1]["content"]
    assert "of wall-clock time left" in content and "tokens used" not in content
    wall.close()

    context = SweRepairEnv(tasks=[toy_task], max_wall_s=60, warn_context_fraction=1e-4)
    context.reset()
    content = context.step(SHELL_LS)[0][-1]["content"]
    assert "tokens used" in content and "wall-clock" not in content
    context.close()
