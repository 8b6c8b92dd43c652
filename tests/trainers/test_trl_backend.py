"""The TRL backend: trl.GRPOTrainer trains on SweRepair-v0 episodes through our rollout_func.

The assertions on masking read what TRL itself received in its loss (`GRPOTrainer._compute_loss`
inputs), not our own bookkeeping.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")
pytest.importorskip("peft")

from swerepair.core import Episode  # noqa: E402
from swerepair.envs.env import SweRepairEnv  # noqa: E402
from swerepair.trainers.config import ConfigError, load_config  # noqa: E402
from swerepair.trainers.trl_backend import (  # noqa: E402
    build_trl_trainer,
    episode_to_trl,
    grpo_config,
    unsupported_settings,
)

from helpers import token_reward  # noqa: E402

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
TASKS = ["swerepair__intervals-5", "swerepair__durations-1"]


def config(tmp_path: Path, **changes: Any) -> Any:
    base = dict(
        model="tiny-qwen3",
        device="cpu",
        output_dir=str(tmp_path / "run"),
        task_ids=TASKS,
        group_size=2,
        tasks_per_step=2,
        max_tool_calls=2,
        max_new_tokens=12,
        lr=1e-2,
        micro_batch_size=2,
        env_workers=2,
        lora_layers="all",
        progress=False,
        tensorboard=False,
        max_steps=2,
    )
    return load_config(overrides=base | changes)


def spy_on_loss(trainer: Any) -> list[dict[str, Any]]:
    """Record the inputs of every `_compute_loss` call: what TRL trains on."""
    seen: list[dict[str, Any]] = []
    original = trainer._compute_loss

    def spy(model: Any, inputs: dict[str, Any]) -> Any:
        seen.append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in inputs.items()})
        return original(model, inputs)

    trainer._compute_loss = spy
    return seen


def received_rows(seen: list[dict[str, Any]]) -> list[tuple[list[int], list[int], float]]:
    """(completion ids, TRL's tool mask, advantage) of every row TRL trained on, padding removed."""
    rows = []
    for batch in seen:
        for ids, cmask, tmask, adv in zip(
            batch["completion_ids"], batch["completion_mask"], batch["tool_mask"], batch["advantages"], strict=True
        ):
            n = int(cmask.sum())
            rows.append((ids[:n].tolist(), tmask[:n].tolist(), float(adv)))
    return rows


def test_two_trl_steps_train_lora_and_mask_tool_output(tmp_path: Path) -> None:
    trainer = build_trl_trainer(config(tmp_path), episode_reward=token_reward)
    assert isinstance(trainer, trl.GRPOTrainer)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert before and all("lora_" in n for n in before)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    seen = spy_on_loss(trainer)
    episodes: list[Episode] = []
    rollout = trainer.rollout_func

    def keep(prompts: list[Any], tr: Any) -> dict[str, Any]:
        out = rollout(prompts, tr)
        episodes.extend(rollout.last_episodes)
        return out

    trainer.rollout_func = keep
    trainer.train()

    assert trainer.state.global_step == 2
    after = dict(trainer.model.named_parameters())
    assert all(not torch.equal(before[n], after[n]) for n in before), "every LoRA weight moved"
    assert all(torch.equal(frozen[n], after[n]) for n in frozen), "the base weights are untouched"

    rows = received_rows(seen)
    assert len(rows) == len(episodes) == 2 * 2 * 2  # 2 steps x (2 tasks x group of 2)
    tokenizer = trainer.processing_class
    env_tokens_seen = 0
    for ids, tool_mask, _ in rows:
        match = [ep for ep in episodes if episode_to_trl(ep)[1] == ids]
        assert match, "TRL trained on exactly the tokens of one of our episodes"
        ep = match[0]
        first = ep.loss_mask.index(1)
        # TRL's mask is 1 exactly on the tokens the model generated, 0 on everything the env wrote
        assert tool_mask == ep.loss_mask[first : first + len(ids)]
        env_part = [t for t, m in zip(ids, tool_mask, strict=True) if m == 0]
        env_tokens_seen += len(env_part)
        if ep.info["tool_stats"]["turns"] > 1:
            # the env's answer between the turns is in the completion, masked out
            answer = [m for m in ep.messages if m["role"] in ("user", "tool")][-1]["content"]
            assert answer[:40] in tokenizer.decode(env_part)
    assert env_tokens_seen > 0
    # the tokens are exact: the prompt TRL got is the episode's own prompt, unchanged
    for ep in episodes:
        prompt, completion, logprobs, env_mask = episode_to_trl(ep)
        assert prompt + completion == ep.tokens[: len(prompt) + len(completion)]
        assert [lp for lp, m in zip(logprobs, env_mask, strict=True) if m] == ep.logprobs  # the sampling logprobs


def test_failed_episodes_carry_no_loss_and_no_advantage(tmp_path: Path) -> None:
    trainer = build_trl_trainer(config(tmp_path, max_steps=1), episode_reward=token_reward)
    rollout = trainer.rollout_func

    def broken_for_intervals(patch: str, task: Any) -> float:
        if task.instance_id == "swerepair__intervals-5":
            raise RuntimeError("verifier crashed")
        return 0.0

    rollout.make_env = functools.partial(SweRepairEnv, **{**rollout.make_env.keywords, "reward": broken_for_intervals})
    seen = spy_on_loss(trainer)
    trainer.train()
    failed = [ep for ep in rollout.last_episodes if ep.failed]
    assert len(failed) == 2 and all(ep.instance_id == "swerepair__intervals-5" for ep in failed)
    failed_ids = [episode_to_trl(ep)[1] for ep in failed]
    rows = received_rows(seen)
    for ids, tool_mask, advantage in rows:
        if ids in failed_ids:
            assert not any(tool_mask) and advantage == 0.0
    assert sum(1 for ids, _, _ in rows if ids in failed_ids) == 2


def test_unsupported_settings_are_rejected_by_name(tmp_path: Path) -> None:
    cfg = config(tmp_path, advantage="rloo", entropy_coef=0.1, zero_stage=2)
    problems = " ".join(unsupported_settings(cfg))
    for name in ("rloo", "entropy_coef", "zero_stage"):
        assert name in problems
    with pytest.raises(ConfigError, match="entropy_coef"):
        grpo_config(cfg)
    assert unsupported_settings(config(tmp_path)) == []
    with pytest.raises(ConfigError, match="micro_batch_size"):
        grpo_config(config(tmp_path, micro_batch_size=3))


def test_settings_map_onto_grpo_config(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, group_size=4, tasks_per_step=2, micro_batch_size=2, eps_low=0.1, eps_high=0.3, beta=0.05, lr=3e-6
    )
    args = grpo_config(cfg)
    assert args.num_generations == 4
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 8  # one update per 8 episodes
    assert (args.epsilon, args.epsilon_high, args.beta, args.learning_rate) == (0.1, 0.3, 0.05, 3e-6)
    assert args.loss_type == "dapo" and args.scale_rewards == "group" and args.importance_sampling_level == "token"
    gspo = grpo_config(config(tmp_path, importance="sequence", aggregation="seq_mean_token_mean", advantage="dr_grpo"))
    assert gspo.importance_sampling_level == "sequence" and gspo.loss_type == "grpo" and gspo.scale_rewards == "none"
    dr = grpo_config(config(tmp_path, aggregation="seq_mean_token_sum", token_sum_norm=96))
    assert dr.loss_type == "dr_grpo" and dr.max_completion_length == 96


def test_episode_to_trl_splits_at_the_first_generated_token() -> None:
    ep = Episode(
        "t",
        [],
        tokens=[1, 2, 3, 10, 11, 4, 5, 12, 13, 6],
        loss_mask=[0, 0, 0, 1, 1, 0, 0, 1, 1, 0],
        logprobs=[-0.1, -0.2, -0.3, -0.4],
    )
    prompt, completion, logprobs, env_mask = episode_to_trl(ep)
    assert prompt == [1, 2, 3]
    assert completion == [10, 11, 4, 5, 12, 13]  # ends on the last generated token
    assert env_mask == [1, 1, 0, 0, 1, 1]
    assert logprobs == [-0.1, -0.2, 0.0, 0.0, -0.3, -0.4]
    with pytest.raises(ValueError, match="no generated tokens"):
        episode_to_trl(Episode("t", [], [1, 2], [0, 0], []))


def test_cli_trains_with_the_trl_backend_and_rejects_what_it_lacks(tmp_path: Path, capsys: Any) -> None:
    from swerepair.cli import main

    out = tmp_path / "cli"
    argv = ["train", "--backend", "trl", "--model", "tiny-qwen3", "--output-dir", str(out), "--max-steps", "1"]
    argv += ["--group-size", "2", "--tasks-per-step", "1", "--micro-batch-size", "2", "--max-tool-calls", "1"]
    argv += ["--max-new-tokens", "8", "--no-progress", "--no-tensorboard", "--device", "cpu"]
    assert main(argv) == 0
    assert (out / "config.yaml").exists() and (out / "checkpoint-1").is_dir()
    assert (out / "final" / "adapter_config.json").exists()
    assert main(["train", "--backend", "trl", "--advantage", "rloo", "--output-dir", str(tmp_path / "x")]) == 2
    assert "advantage='rloo'" in capsys.readouterr().err
