"""The env's per-step bookkeeping made cheap without a change of behaviour: the observation's copy
(`copy_messages`), the running token estimate (`TokenTally`) and the reused deadline thread
(`ToolRunner`)."""

from __future__ import annotations

import copy
import gc
import threading
import time
from typing import Any

import pytest

from swerepair.agents.policies.scripted import hermes_call
from swerepair.core import Task
from swerepair.envs import SweRepairEnv, estimate_tokens
from swerepair.envs.stepping import TokenTally, ToolOverran, ToolRunner, copy_messages

SHELL_LS = hermes_call("shell", {"cmd": "ls"})
FIX = hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"})


def _mutable_ids(obj: Any, out: set[int] | None = None) -> set[int]:
    """ids of every dict and list inside `obj` (itself included)."""
    out = set() if out is None else out
    if isinstance(obj, dict):
        out.add(id(obj))
        for v in obj.values():
            _mutable_ids(v, out)
    elif isinstance(obj, list):
        out.add(id(obj))
        for v in obj:
            _mutable_ids(v, out)
    return out


def _vandalise(obj: Any) -> None:
    """Mutate every dict and list inside `obj`, depth first, then the container itself."""
    if isinstance(obj, dict):
        for v in obj.values():
            _vandalise(v)
        for k in list(obj):
            obj[k] = "vandalised"
        obj["extra"] = ["x"]
    elif isinstance(obj, list):
        for v in obj:
            _vandalise(v)
        obj.append({"role": "user", "content": "injected"})


def _every_kind_of_message(env: SweRepairEnv) -> list[list[dict[str, Any]]]:
    """Observations of an episode with every message kind the env writes: system, issue,
    assistant with text calls and with OpenAI calls, tool results, a malformed call, an unknown
    tool, a refused call past the budget, a nudge, budget warnings."""
    obs, _ = env.reset()
    seen = [obs]
    actions: list[Any] = [
        "Let me look." + SHELL_LS,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell", "arguments": {"cmd": "ls"}}}],
        },
        "<tool_call>{not json</tool_call>",
        hermes_call("no_such_tool", {}),
        "I think everything is fine.",  # a nudge
        SHELL_LS * 3,  # the last call is past the budget: refused
    ]
    for action in actions:
        obs, *_ = env.step(action)
        seen.append(obs)
    return seen


@pytest.fixture
def env(toy_task: Task):
    e = SweRepairEnv(tasks=[toy_task], max_tool_calls=7, warn_tool_calls=6, warn_context_fraction=0.01)
    yield e
    e.close()


def test_every_message_kind_is_produced_and_copied_exactly(env: SweRepairEnv) -> None:
    seen = _every_kind_of_message(env)
    final = seen[-1]
    roles = [m["role"] for m in final]
    assert roles[:2] == ["system", "user"] and "tool" in roles and "assistant" in roles
    assert any(m.get("tool_calls") for m in final)
    assert any(m["role"] == "user" and "not changed any file" in m["content"] for m in final)
    assert any("budget warning" in (m.get("content") or "") for m in final)
    assert any(m.get("name") == "invalid_tool_call" for m in final)
    assert any("budget is exhausted" in (m.get("content") or "") for m in final)
    ep_messages = env.unwrapped._ep.messages
    for messages in (*seen, ep_messages):
        copied = copy_messages(messages)
        assert copied == copy.deepcopy(messages)
        assert not (_mutable_ids(copied) & _mutable_ids(messages))


def test_a_mutated_observation_never_reaches_the_env(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task], warn_tool_calls=100)  # every tool result carries a warning
    obs, _ = env.reset()
    _vandalise(obs)
    obs, *_ = env.step({"role": "assistant", "content": "", "tool_calls": [hermes_call_openai()]})
    before = copy.deepcopy(env.unwrapped._ep.messages)
    assert obs == before
    _vandalise(obs)  # nested values too: tool_calls, their function dicts
    assert env.unwrapped._ep.messages == before
    obs, *_ = env.step(SHELL_LS)
    assert obs[: len(before)] == before and env.unwrapped._ep.messages == obs
    assert "vandalised" not in repr(obs) and "injected" not in repr(obs)
    _vandalise(obs)
    env.step(FIX)
    _, reward, terminated, _, info = env.step("done")
    assert terminated and reward == 1.0 and not info["failed"]
    env.close()


def hermes_call_openai() -> dict[str, Any]:
    return {"id": "x", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "ls"}'}}


def test_copy_messages_on_unexpected_values_equals_deepcopy() -> None:
    class Box:
        def __init__(self, v: Any) -> None:
            self.v = v

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Box) and other.v == self.v

    shared = ["shared"]
    messages: list[Any] = [
        {"role": "user", "content": "plain"},
        {"role": "tool", "content": None, "n": 3, "f": 1.5, "b": True},
        {"role": "x", "tuple": (1, [2]), "set": {1, 2}, "box": Box([1]), "nested": {"a": [{"b": shared}]}},
        {1: "a non-str key", "role": "odd"},
        {"role": "a", "inner": {2: "non-str key below"}},
        ["not", "a", "dict"],
        "a str message",
        None,
    ]
    copied = copy_messages(messages)
    assert copied == copy.deepcopy(messages)
    assert not (_mutable_ids(copied) & _mutable_ids(messages))
    assert copied[2]["tuple"][1] is not messages[2]["tuple"][1]  # deepcopy below a tuple
    assert copied[2]["box"] is not messages[2]["box"] and copied[2]["box"].v is not messages[2]["box"].v


def test_the_running_token_count_equals_a_full_recount(toy_task: Task) -> None:
    """Warnings edit the last message in place; context truncation; the final info."""
    env = SweRepairEnv(tasks=[toy_task], max_context_tokens=1500, warn_context_fraction=0.1, warn_tool_calls=100)
    env.reset()
    ep = env.unwrapped._ep
    truncated, steps = False, 0
    while not truncated:
        action = [SHELL_LS, hermes_call("shell", {"cmd": "cat calc.py"}), "hm", SHELL_LS * 2][steps % 4]
        obs, _, terminated, truncated, info = env.step(action)
        steps += 1
        assert not terminated and steps < 100
        if not truncated:
            assert env._count_tokens(ep) == estimate_tokens(ep.messages) == estimate_tokens(obs)
            assert "budget warning" in obs[-1]["content"] and "context" in obs[-1]["content"]
    assert info["exit_reason"] == "context_budget"
    assert info["context_tokens"] == estimate_tokens(obs) >= 1500
    env.close()


def test_token_tally_unit() -> None:
    tally = TokenTally()
    messages: list[dict[str, Any]] = []
    for k in range(50):
        messages.append({"role": "tool", "content": "x" * k})
        if k % 7 == 0:
            messages.append({"role": "assistant", "content": None, "tool_calls": [hermes_call_openai()]})
        assert tally.count(messages) == estimate_tokens(messages)
        messages[-1]["content"] = (messages[-1]["content"] or "") + " [warning]"
        tally.edited(len(messages) - 1, messages[-1])
        assert tally.count(messages) == estimate_tokens(messages)
    tally.edited(-1, messages[-1])
    tally.edited(10_000, {"content": "ignored"})
    assert tally.count(messages) == estimate_tokens(messages)
    del messages[5:]  # a shorter conversation is counted afresh
    assert tally.count(messages) == estimate_tokens(messages)


def test_a_custom_token_counter_still_sees_the_whole_conversation(toy_task: Task) -> None:
    lengths: list[int] = []

    def counter(msgs: list[dict[str, Any]]) -> int:
        lengths.append(len(msgs))
        return estimate_tokens(msgs)

    env = SweRepairEnv(tasks=[toy_task], token_counter=counter)
    env.reset()
    env.step(SHELL_LS)
    env.step(SHELL_LS)
    assert lengths == [4, 4, 6, 6]
    env.close()


# -- the reused deadline thread ----------------------------------------------------------------------
def test_tool_runner_reuses_one_thread_and_passes_results_and_errors() -> None:
    runner = ToolRunner()
    idents = {runner.call(lambda: threading.get_ident(), (), 5.0) for _ in range(20)}
    assert len(idents) == 1 and threading.get_ident() not in idents
    assert runner.call(lambda a, b: a + b, (2, 3), 5.0) == 5
    assert runner.call(lambda: threading.current_thread().name, (), 5.0, "shell") == "swerepair-tool-shell"

    def boom() -> None:
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        runner.call(boom, (), 5.0)
    assert runner.call(lambda: threading.get_ident(), (), 5.0) in idents  # an error does not cost the thread
    runner.close()


def test_tool_runner_abandons_an_overrunning_call_and_starts_afresh() -> None:
    runner = ToolRunner()
    release = threading.Event()
    first = runner.call(lambda: threading.get_ident(), (), 5.0)
    t0 = time.monotonic()
    with pytest.raises(ToolOverran):
        runner.call(release.wait, (), 0.2)
    assert 0.15 < time.monotonic() - t0 < 5
    # the next call runs at once on a new thread, and never reads the late result
    assert runner.call(lambda: "fresh", (), 5.0) == "fresh"
    second = runner.call(lambda: threading.get_ident(), (), 5.0)
    assert second != first
    release.set()  # the abandoned call returns; its thread ends instead of taking work
    deadline = time.monotonic() + 10
    while any(t.ident == first for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.ident == first for t in threading.enumerate())
    assert runner.call(lambda: "still", (), 5.0) == "still"
    runner.close()


def test_tool_runner_threads_end_on_close_and_when_collected() -> None:
    def worker_of(runner: ToolRunner) -> threading.Thread:
        ident = runner.call(lambda: threading.get_ident(), (), 5.0)
        return next(t for t in threading.enumerate() if t.ident == ident)

    closed = ToolRunner()
    t1 = worker_of(closed)
    closed.close()
    t1.join(10)
    assert not t1.is_alive()
    dropped = ToolRunner()
    t2 = worker_of(dropped)
    del dropped
    gc.collect()
    t2.join(10)
    assert not t2.is_alive()


def test_tool_runner_calls_from_two_threads_at_once_do_not_mix() -> None:
    runner = ToolRunner()
    inside, release = threading.Event(), threading.Event()

    def slow() -> str:
        inside.set()
        release.wait(10)
        return "slow"

    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(runner.call(slow, (), 10.0)))
    t.start()
    assert inside.wait(10)
    assert runner.call(lambda: "quick", (), 5.0) == "quick"  # not queued behind `slow`, not its result
    release.set()
    t.join(10)
    assert out == ["slow"]
    assert runner.call(lambda: "after", (), 5.0) == "after"
    runner.close()


def test_the_env_ends_its_tool_thread_on_close(toy_task: Task) -> None:
    env = SweRepairEnv(tasks=[toy_task])
    env.reset()
    env.step(SHELL_LS)
    thread = env._tools._worker[0]
    assert thread.is_alive()
    env.step(SHELL_LS)
    assert env._tools._worker[0] is thread  # one thread for every call
    env.close()
    thread.join(10)
    assert not thread.is_alive()
