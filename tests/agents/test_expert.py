"""The scripted expert: varied, token-exact episodes from gold patches that solve their tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from swerepair.agents.policies.expert import ExpertPolicy, expert_turns
from swerepair.agents.policies.scripted import ScriptedPolicy
from swerepair.envs.env import SweRepairEnv
from swerepair.envs.rollout import run_episodes
from swerepair.envs.sandbox.workspace import base_file_reader

from helpers import needs_bwrap


def test_scripts_vary_with_the_seed_and_never_name_the_tests_patch(bundled: list[Any]) -> None:
    task = bundled[0]
    scripts = {tuple(expert_turns(task, seed)) for seed in range(6)}
    assert len(scripts) > 1  # commands and wording vary
    for script in scripts:
        assert "<tool_call>" in script[0] and "apply_patch" in "".join(script)
        assert "<tool_call>" not in script[-1]  # the last turn stops
        assert "pytest" in "".join(script)  # the tests are run
    assert expert_turns(task, 3) == expert_turns(task, 3)  # deterministic per seed


def record(tasks: list[Any], seed: int = 0, minimal: bool = True) -> list[Any]:
    """Expert episodes of `tasks`; `minimal`: edits with the smallest unique searches (the
    files read from the task's checkout, as ``swerepair expert`` does), else whole hunks."""
    from swerepair.agents.inference.chat import ChatRenderer
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.scaffold import nano_agent

    _, tokenizer = load_model("tiny-qwen3")
    scaffold = nano_agent()
    policy = ExpertPolicy(
        ChatRenderer(tokenizer, scaffold.tool_schemas()),
        {t.problem_statement: expert_turns(t, seed, base_file_reader(t) if minimal else None) for t in tasks},
    )

    def make_env() -> SweRepairEnv:
        return SweRepairEnv(tasks="bundled", sandbox="auto", reward="tests_pass", scaffold=scaffold)

    return run_episodes(make_env, policy, [t.instance_id for t in tasks], seed=seed)


def check_exact(ep: Any) -> None:
    assert ep.reward == 1.0, (ep.instance_id, ep.info.get("exit_reason"), ep.info.get("reward_components"))
    assert ep.info["template_prefix_stable"] and ep.info["exit_reason"] == "agent_stopped"
    assert len(ep.tokens) == len(ep.loss_mask) and len(ep.logprobs) == sum(ep.loss_mask) > 0
    assert ep.info["tool_stats"]["malformed"] == 0 and ep.info["tool_stats"]["errors"] == 0


@needs_bwrap
def test_an_expert_episode_is_token_exact_and_solves_its_task(bundled: list[Any]) -> None:
    (ep,) = record(bundled[:1])
    check_exact(ep)
    (whole_hunks,) = record(bundled[:1], minimal=False)
    check_exact(whole_hunks)

    def edit_searches(e: Any) -> list[str]:
        calls = [c for m in e.messages if m["role"] == "assistant" for c in m.get("tool_calls") or ()]
        args = [json.loads(c["function"]["arguments"]) for c in calls if c["function"]["name"] == "apply_patch"]
        return [a["search"] for a in args]

    assert sum(map(len, edit_searches(ep))) < sum(map(len, edit_searches(whole_hunks)))


@pytest.mark.slow
@needs_bwrap
def test_expert_episodes_solve_every_bundled_task_and_replay(bundled: list[Any]) -> None:
    episodes = record(bundled, seed=1)
    assert len(episodes) == len(bundled) == 20
    for ep in episodes:
        check_exact(ep)
    # the recorded turns, replayed as text in a fresh env, solve the task again
    for ep in episodes[:5]:
        turns = [m["content"] for m in ep.messages if m["role"] == "assistant"]
        task = next(b for b in bundled if b.instance_id == ep.instance_id)
        raw = expert_turns(task, 1, base_file_reader(task))
        assert len(turns) == len(raw)
        env = SweRepairEnv(tasks="bundled", sandbox="auto", reward="tests_pass")
        (again,) = run_episodes(lambda env=env: env, ScriptedPolicy(raw), [ep.instance_id])
        assert again.reward == 1.0


def test_the_expert_command_writes_kept_episodes(tmp_path: Path) -> None:
    out = tmp_path / "expert.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "swerepair.cli", "expert", "--model", "tiny-qwen3",
         "--task-id", "swerepair__intervals-1", "--episodes", "2", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["reward"] == 1.0 and r["tokens"] for r in rows)
    bad = subprocess.run(
        [sys.executable, "-m", "swerepair.cli", "expert", "--model", "no-such-model", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_solve_keeps_only_resolved_episodes_when_distilling(tmp_path: Path) -> None:
    """``solve --keep-resolved`` (distillation from any policy): the tiny random model resolves
    nothing, so nothing is kept; without the flag its episode is written."""
    command = [sys.executable, "-m", "swerepair.cli", "solve", "--model", "tiny-qwen3", "--task-id",
               "swerepair__intervals-1", "--max-tool-calls", "1", "--max-new-tokens", "8"]  # fmt: skip
    kept, everything = tmp_path / "kept.jsonl", tmp_path / "all.jsonl"
    assert subprocess.run([*command, "--keep-resolved", "--out", str(kept)], capture_output=True).returncode == 0
    assert subprocess.run([*command, "--out", str(everything)], capture_output=True).returncode == 0
    assert kept.read_text() == "" and len(everything.read_text().splitlines()) == 1
