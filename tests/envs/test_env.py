"""SweRepair-v0 through the Gymnasium API: checker, scripted episodes, budgets, errors, vectors."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import swerepair
from swerepair.agents.policies.scripted import gold_turns, hermes_call
from swerepair.core import SandboxError, Task
from swerepair.envs import SweRepairEnv
from swerepair.envs.sandbox import make_sandbox

SHELL_LS = hermes_call("shell", {"cmd": "ls"})


@pytest.fixture
def toy_env(toy_task: Task):
    env = SweRepairEnv(tasks=[toy_task])
    yield env
    env.close()


@pytest.mark.parametrize("env_id", sorted(swerepair.ENV_IDS))
def test_check_env_passes_without_warnings(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


def test_make_with_module_prefix_needs_no_import() -> None:
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('swerepair:SweRepair-v0', sandbox='auto')\n"
        "obs, info = env.reset(seed=1)\n"
        "print(info['task_id']); env.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("swerepair__")


def test_reset_returns_system_and_issue(bundled: list[Task]) -> None:
    env = gym.make("SweRepair-v0")
    obs, info = env.reset(options={"task_id": "swerepair__confkit-2"})
    assert [m["role"] for m in obs] == ["system", "user"]
    assert obs[1]["content"] == next(t for t in bundled if t.instance_id == "swerepair__confkit-2").problem_statement
    assert "shell" in obs[0]["content"] and "apply_patch" in obs[0]["content"]
    assert [t["function"]["name"] for t in info["tools"]] == ["shell", "apply_patch"]
    assert info["task_id"] == "swerepair__confkit-2" and info["failed"] is False
    json.dumps(obs), json.dumps(info)
    # Seeded resets pick the same task; different seeds cover more than one task.
    picks = {env.reset(seed=s)[1]["task_id"] for s in range(12)}
    assert env.reset(seed=3)[1]["task_id"] == env.reset(seed=3)[1]["task_id"]
    assert len(picks) > 1
    env.close()


@pytest.mark.parametrize(
    "task_id", [f"swerepair__{p}-{n}" for p in ("confkit", "durations", "intervals", "unitconv") for n in range(1, 6)]
)
def test_gold_patch_through_apply_patch_scores_one(task_id: str, bundled: list[Task]) -> None:
    task = next(t for t in bundled if t.instance_id == task_id)
    env = gym.make("SweRepair-v0")
    obs, info = env.reset(options={"task_id": task_id})
    turns = gold_turns(task.patch)
    for i, turn in enumerate(turns):
        obs, reward, terminated, truncated, info = env.step(turn)
        if i < len(turns) - 1:
            assert not (terminated or truncated), obs[-1]
            assert reward == 0.0
            assert not obs[-1]["content"].startswith("Error"), obs[-1]["content"]
    assert terminated and not truncated
    assert reward == 1.0
    assert info["exit_reason"] == "agent_stopped" and info["failed"] is False
    assert info["reward_components"]["functional_similarity"] == 1.0
    assert info["reward_components"]["file_targeting"] == 1.0
    assert info["tool_stats"]["calls"]["apply_patch"] == len(turns) - 2
    assert info["patch"].startswith("diff --git")
    env.close()


def test_tool_call_budget_truncates_with_warnings(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], max_tool_calls=4, warn_tool_calls=2)
    env.reset()
    contents = []
    for _ in range(4):
        obs, reward, terminated, truncated, info = env.step(SHELL_LS)
        contents.append(obs[-1]["content"])
        if truncated:
            break
    assert truncated and not terminated
    assert info["exit_reason"] == "tool_call_budget"
    assert "budget warning: 2 tool calls left" in contents[1]
    assert "budget warning: 1 tool call left" in contents[2]
    assert info["tool_stats"]["tool_calls"] == 4
    assert info["patch"] == "" and reward == 0.0


def test_calls_beyond_the_budget_are_not_run(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], max_tool_calls=2)
    env.reset()
    obs, _, _, truncated, info = env.step(SHELL_LS * 3)
    assert truncated and info["exit_reason"] == "tool_call_budget"
    assert [m["content"] for m in obs if m["role"] == "tool"][-1] == "Not executed: the tool-call budget is exhausted."
    assert info["tool_stats"]["calls"] == {"shell": 2}


def test_context_budget(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], max_context_tokens=700)
    env.reset()
    truncated, steps = False, 0
    while not truncated:
        _, _, terminated, truncated, info = env.step(hermes_call("shell", {"cmd": "cat calc.py tests/test_calc.py"}))
        steps += 1
        assert not terminated and steps < 20
    assert info["exit_reason"] == "context_budget"
    assert info["context_tokens"] >= 700


def test_token_counter_is_pluggable(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], token_counter=lambda msgs: 10_000 * len(msgs), max_context_tokens=35_000)
    env.reset()
    _, _, _, truncated, info = env.step(SHELL_LS)
    assert truncated and info["exit_reason"] == "context_budget"


def test_wall_clock_budget(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], max_wall_s=0.0)
    env.reset()
    _, _, _, truncated, info = env.step(SHELL_LS)
    assert truncated and info["exit_reason"] == "time_budget"


def test_tool_errors_are_observations(toy_env: SweRepairEnv) -> None:
    toy_env.reset()
    cases = {
        '<tool_call>{"name": "shell", "arguments": {"cmd": "ls"</tool_call>': "Error: could not parse your tool call",
        '<tool_call>{"arguments": {}}</tool_call>': (
            "Error: could not parse your tool call: a tool call needs a string 'name'"
        ),
        hermes_call("rm_rf", {"path": "/"}): "Error: unknown tool 'rm_rf'",
        hermes_call("shell", {}): "Error: shell: missing argument(s) cmd",
        hermes_call("shell", {"cmd": 3}): "Error: shell: argument 'cmd' must be of type string",
        hermes_call("shell", {"cmd": "ls", "extra": 1}): "Error: shell: unknown argument(s) extra",
        '<tool_call>{"name": "shell", "arguments": {"cmd": "ls"}}': "unclosed <tool_call>",
    }
    for action, expected in cases.items():
        obs, _reward, terminated, truncated, info = toy_env.step(action)
        assert not terminated and not truncated
        assert obs[-1]["role"] == "tool" and expected in obs[-1]["content"], (action, obs[-1])
    stats = info["tool_stats"]
    assert stats["malformed"] == 3 and stats["errors"] == 4
    # The malformed text stays in the assistant's content.
    assert '"cmd": "ls"' in obs[-2]["content"]


def test_openai_message_actions(toy_env: SweRepairEnv) -> None:
    toy_env.reset()
    action = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "a1", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "cat calc.py"}'}},
            {
                "id": "a2",
                "type": "function",
                "function": {
                    "name": "apply_patch",
                    "arguments": {"file": "calc.py", "search": "return a - b", "replace": "return a + b"},
                },
            },
            {"id": "a3", "type": "function", "function": {"name": "shell", "arguments": "{not json"}},
        ],
    }
    obs, *_ = toy_env.step(action)
    tools = [m for m in obs if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tools[:2]] == ["a2", "a1"][::-1]
    assert "return a - b" in tools[0]["content"]
    assert tools[1]["content"].startswith("Replaced 1 occurrence in calc.py")
    assert "not valid JSON" in tools[2]["content"]
    assert obs[-4]["tool_calls"][0]["function"]["arguments"] == '{"cmd": "cat calc.py"}'
    obs, reward, terminated, *_ = toy_env.step({"role": "assistant", "content": "done"})
    assert terminated and reward == 1.0


def test_stopping_on_a_clean_tree_gets_a_nudge(toy_env: SweRepairEnv) -> None:
    toy_env.reset()
    obs, _reward, terminated, truncated, info = toy_env.step("I think everything is fine.")
    assert not terminated and not truncated
    assert obs[-1]["role"] == "user" and "not changed any file" in obs[-1]["content"]
    assert info["tool_stats"]["tool_calls"] == 1


def test_bad_action_type_is_a_clear_error(toy_env: SweRepairEnv) -> None:
    toy_env.reset()
    with pytest.raises(TypeError, match="one assistant turn"):
        toy_env.step(42)


def test_step_after_the_end_raises(toy_env: SweRepairEnv) -> None:
    toy_env.reset()
    toy_env.step(hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}))
    *_, terminated, _, _ = toy_env.step("done")
    assert terminated
    with pytest.raises(RuntimeError, match="reset"):
        toy_env.step("more")


def test_reward_by_name_or_callable(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], reward="patch_similarity")
    env.reset()
    env.step(hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}))
    _, reward, _, _, info = env.step("done")
    assert reward == pytest.approx(0.6)  # no test changes: R_testing = 0
    seen = []
    env = SweRepairEnv(tasks=[toy_task], reward=lambda patch, task: seen.append(task.instance_id) or 0.25)
    env.reset()
    env.step(hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}))
    _, reward, _, _, info = env.step("done")
    assert reward == 0.25 and seen == ["toy__calc-1"] and info["reward_components"]["<lambda>"] == 0.25
    with pytest.raises(ValueError, match="unknown reward"):
        SweRepairEnv(tasks=[toy_task], reward="nope")


def test_a_custom_reward_wins_over_a_builtin_of_the_same_name(toy_task: Task) -> None:
    def functional_similarity(patch: str, task: Task) -> float:
        return 0.125

    env = SweRepairEnv(tasks=[toy_task], reward=functional_similarity)
    env.reset()
    env.step(hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}))
    _, reward, *_, info = env.step("done")
    assert reward == 0.125 and info["reward_components"]["functional_similarity"] == 0.125


def test_a_raising_reward_fails_the_episode(toy_task: Task) -> None:
    def broken(patch: str, task: Task) -> float:
        raise TimeoutError("verifier hung")

    env = SweRepairEnv(tasks=[toy_task], reward=broken)
    env.reset()
    env.step(hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}))
    _, reward, terminated, truncated, info = env.step("done")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["failed"] and info["exit_reason"] == "reward_error" and "verifier hung" in info["failure"]


def test_configuration_errors_raise_early(toy_task: Task) -> None:
    from swerepair.envs.sandbox import TaskRepositoryError

    orphan = Task(**{**toy_task.__dict__, "repo_source": None})
    with pytest.raises(TaskRepositoryError, match="no repository source"):
        SweRepairEnv(tasks=[orphan])
    assert SweRepairEnv(tasks=[orphan], repos={"toy/calc": toy_task.repo_source}).tasks[0].repo_source
    wrong = Task(**{**toy_task.__dict__, "base_commit": "1" * 40, "repo": "toy/other"})
    env = SweRepairEnv(tasks=[wrong])
    with pytest.raises(TaskRepositoryError, match="not in"):
        env.reset()


def test_the_env_cuts_long_output_of_any_tool(toy_task: Task) -> None:
    from swerepair.agents import Scaffold, Tool

    chatty = Tool("chatty", "prints a lot", {"type": "object", "properties": {}}, fn=lambda sb, ctx, a: "x" * 100_000)
    scaffold = Scaffold.from_tools("chatty", "Tools: {tool_list}", [chatty])
    env = SweRepairEnv(tasks=[toy_task], scaffold=scaffold, max_output_chars=1000)
    env.reset()
    obs, *_ = env.step(hermes_call("chatty", {}))
    assert len(obs[-1]["content"]) < 1100 and "characters cut" in obs[-1]["content"]


def test_a_broken_sandbox_fails_the_episode_instead_of_raising(toy_task: Task) -> None:
    def no_sandbox(task: Task):
        raise SandboxError("disk full")

    env = SweRepairEnv(tasks=[toy_task], sandbox=no_sandbox)
    _, info = env.reset()
    assert info["failed"] is True
    _, reward, terminated, truncated, info = env.step(SHELL_LS)
    assert truncated and not terminated and reward == 0.0
    assert info["failed"] is True and info["exit_reason"] == "sandbox_error" and "disk full" in info["failure"]
    assert info["reward_components"] == {}

    class Crashing:
        def __init__(self, task: Task) -> None:
            self.inner = make_sandbox("auto", task)
            self.workdir = self.inner.workdir

        def run(self, cmd, timeout, *, restricted=False, stdin=None):
            raise SandboxError("bwrap died")

        def __getattr__(self, name):
            return getattr(self.inner, name)

    env = SweRepairEnv(tasks=[toy_task], sandbox=Crashing)
    env.reset()
    _, reward, terminated, truncated, info = env.step(SHELL_LS)
    assert truncated and info["failed"] and info["exit_reason"] == "sandbox_error"


def test_close_removes_the_workspace(toy_env: SweRepairEnv) -> None:
    toy_env.reset()
    root = toy_env.sandbox.episode_dir
    toy_env.step(SHELL_LS)
    assert root.exists()
    toy_env.reset()
    assert not root.exists(), "reset must release the previous episode"
    root = toy_env.sandbox.episode_dir
    toy_env.close()
    toy_env.close()
    assert not root.exists()


def test_render_ansi(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], render_mode="ansi")
    env.reset()
    env.step(SHELL_LS)
    text = env.render()
    assert "[system]" in text and "-> shell(" in text and "calc.py" in text


def test_async_vector_env_steps_four_envs() -> None:
    envs = gym.vector.AsyncVectorEnv([lambda: gym.make("SweRepair-v0") for _ in range(4)], shared_memory=False)
    try:
        obs, infos = envs.reset(seed=[0, 1, 2, 3])
        assert len(obs) == 4 and all(o[1]["role"] == "user" for o in obs)
        actions = (hermes_call("shell", {"cmd": "git log --oneline"}),) * 4
        obs, _rewards, terminated, truncated, infos = envs.step(actions)
        assert list(terminated) == [False] * 4 and list(truncated) == [False] * 4
        assert all(o[-1]["role"] == "tool" and "import sources" in o[-1]["content"] for o in obs)
        assert len(set(infos["task_id"])) >= 2
    finally:
        envs.close()


def test_long_shell_output_is_cut_once_with_an_exact_count(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], max_output_chars=2000)
    env.reset()
    obs, *_ = env.step(hermes_call("shell", {"cmd": "python -c 'print(\"y\" * 100000)'"}))
    content = obs[-1]["content"]
    assert len(content) <= 2000 and content.count("characters cut") == 1
    kept = content.count("y")
    assert f"[... {100_000 - kept} characters cut ...]" in content


def test_wall_clock_warning(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], max_wall_s=60, warn_wall_fraction=1e-4)
    env.reset()
    obs, _, _, truncated, _ = env.step(SHELL_LS)
    assert not truncated and "of wall-clock time left" in obs[-1]["content"]
