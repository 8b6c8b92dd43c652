"""The SFT stage and the stacked GRPO stage: SFT lowers the loss on its episodes while the KL
term holds the policy near the base; chat replay trains assistant turns only; GRPO over the SFT
adapter trains only its own adapter, against the SFT policy as reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from swerepair.trainers.config import ConfigError, load_config  # noqa: E402
from swerepair.trainers.sft import SFTSettings, SFTTrainer, chat_example  # noqa: E402

from helpers import needs_bwrap, tiny_run_config, token_reward  # noqa: E402


@pytest.fixture(scope="module")
def expert_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Expert episodes of two bundled tasks, token-exact for tiny-qwen3's template."""
    from swerepair.agents.inference.chat import ChatRenderer
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.policies.expert import ExpertPolicy, expert_turns
    from swerepair.agents.scaffold import nano_agent
    from swerepair.envs.env import SweRepairEnv
    from swerepair.envs.rollout import run_episodes
    from swerepair.envs.tasks import load_tasks

    tasks = [t for t in load_tasks("bundled") if t.instance_id in ("swerepair__intervals-1", "swerepair__unitconv-2")]
    _, tokenizer = load_model("tiny-qwen3")
    scaffold = nano_agent()
    policy = ExpertPolicy(
        ChatRenderer(tokenizer, scaffold.tool_schemas()), {t.problem_statement: expert_turns(t) for t in tasks}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEREPAIR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        episodes = run_episodes(
            lambda: SweRepairEnv(tasks="bundled", sandbox="auto", reward="tests_pass", scaffold=scaffold),
            policy,
            [t.instance_id for t in tasks],
        )
    assert all(ep.reward == 1.0 for ep in episodes)
    path = tmp_path_factory.mktemp("expert") / "expert.jsonl"
    path.write_text("".join(json.dumps(ep.to_json()) + "\n" for ep in episodes))
    return path


def sft_config(root: Path, name: str, **changes: Any) -> Any:
    base = {"model": "tiny-qwen3", "device": "cpu", "output_dir": str(root / name), "lr": 1e-2, "lora_layers": "all"}
    return load_config(overrides={**base, "progress": False, "tensorboard": False, **changes})


def run_sft(root: Path, name: str, episodes: Path, kl_coef: float, epochs: int = 4) -> tuple[SFTTrainer, dict, list]:
    trainer = SFTTrainer(
        sft_config(root, name), SFTSettings(episodes=(str(episodes),), kl_coef=kl_coef, epochs=epochs, batch_size=2)
    )
    before = trainer.evaluate()
    records = trainer.train()
    return trainer, before, records


@needs_bwrap
def test_sft_lowers_the_loss_on_its_episodes_and_the_kl_term_holds_it_near_the_base(
    tmp_path: Path, expert_file: Path
) -> None:
    free, before, _ = run_sft(tmp_path, "free", expert_file, kl_coef=0.0)
    after_free = free.evaluate()
    held, _, records = run_sft(tmp_path, "held", expert_file, kl_coef=5.0)
    after_held = held.evaluate()
    assert before["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA starts as the identity: student == base
    assert after_free["ce"] < before["ce"] and after_held["ce"] < before["ce"]
    assert 0 < after_held["kl"] < after_free["kl"]  # the KL term bounds the drift from the base
    assert after_held["tokens"] == before["tokens"] > 0
    run = tmp_path / "held"
    assert {"config.yaml", "metrics.jsonl", "train.log", "learning_curve.png", "checkpoints"} <= {
        p.name for p in run.iterdir()
    }
    assert (run / "checkpoints" / f"step-{len(records):06d}" / "model" / "adapter_config.json").is_file()
    assert [r["epoch"] for r in records] == [1.0, 2.0, 3.0, 4.0]  # 2 episodes, 2 per step: a step per epoch


@needs_bwrap
def test_kept_base_states_train_as_recomputed_ones(tmp_path: Path, expert_file: Path) -> None:
    """Later epochs take the base model's states from `BaseStates` instead of a forward: the
    same losses, KL and adapter as a run that recomputes them, and the base ran once per
    example."""
    runs = {}
    for name, budget in (("kept", 1 << 30), ("recomputed", 0)):
        trainer = SFTTrainer(
            sft_config(tmp_path, name, micro_batch_size=2),
            SFTSettings(episodes=(str(expert_file),), epochs=3, batch_size=2, base_cache_bytes=budget),
        )
        calls = []
        original = trainer.pm.reference_policy

        def counting(original=original, calls=calls):
            calls.append(1)
            return original()

        trainer.pm.reference_policy = counting  # type: ignore[method-assign]
        records = trainer.train()
        adapter = {k: v.detach().clone() for k, v in trainer.pm.causal_lm.named_parameters() if v.requires_grad}
        runs[name] = (records, adapter, len(calls), trainer.base_states)
    kept, kept_adapter, kept_calls, states = runs["kept"]
    again, again_adapter, again_calls, none = runs["recomputed"]
    assert none is None and again_calls == 3  # one base forward per step without the cache
    assert kept_calls == 1 and states.hits == 2 and states.used > 0  # only the first epoch ran the base
    for a, b in zip(kept, again, strict=True):
        for key in ("sft/loss", "sft/ce", "sft/kl"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)
    assert kept_adapter.keys() == again_adapter.keys()
    for key, value in kept_adapter.items():
        torch.testing.assert_close(value, again_adapter[key], rtol=1e-4, atol=1e-6)


def test_base_states_stay_within_their_budget() -> None:
    from swerepair.trainers.sft import BaseStates, Example

    examples = [Example((i, 1, 2), (0, 1, 1)) for i in range(3)]
    states = BaseStates(budget_bytes=2 * 2 * 4 * 4)  # two examples of 2 positions x 4 floats
    states.put(examples, torch.ones(6, 4), [2, 2, 2])
    assert states.used == 64 and set(states.states) == set(examples[:2])
    assert states.get(examples[:2]) is not None and states.get(examples) is None
    assert (states.hits, states.misses) == (1, 1)


def test_chat_replay_trains_the_assistant_turns_only() -> None:
    from swerepair.agents.inference.chat import ChatRenderer
    from swerepair.agents.inference.models import load_model

    _, tokenizer = load_model("tiny-qwen3")
    renderer = ChatRenderer(tokenizer)
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Green."},
    ]
    example = chat_example(renderer, messages, 4096)
    assert example is not None and example.source == "replay"
    trained = renderer.decode([t for t, m in zip(example.tokens, example.mask, strict=True) if m])
    assert "Blue." in trained and "Green." in trained
    assert "colour" not in trained and "Another" not in trained and "helpful" not in trained


def test_replay_makes_up_its_share_of_each_epoch(tmp_path: Path, expert_file: Path) -> None:
    replay = tmp_path / "chat.jsonl"
    convs = [[{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}] for i in range(5)]
    replay.write_text("".join(json.dumps({"messages": conv}) + "\n" for conv in convs))
    settings = SFTSettings(episodes=(str(expert_file),), replay=str(replay), replay_ratio=0.5, epochs=1, batch_size=1)
    trainer = SFTTrainer(sft_config(tmp_path, "replay"), settings)
    try:
        plan = trainer.plan(0)
        sources = [e.source for batch in plan for e in batch]
        assert sources.count("episode") == 2 and sources.count("replay") == 2
        assert trainer.config.max_steps == 4 == len(plan)  # the schedule's horizon is the run's steps
    finally:
        trainer.close()


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": [1, 2], "loss_mask": [1]}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1"):
        SFTTrainer(sft_config(tmp_path, "x"), SFTSettings(episodes=(str(bad),)))
    out = subprocess.run(
        [sys.executable, "-m", "swerepair.cli", "sft", "--model", "tiny-qwen3",
         "--episodes", str(tmp_path / "none.jsonl")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "none.jsonl" in out.stderr and "Traceback" not in out.stderr


@needs_bwrap
def test_grpo_over_the_sft_adapter_trains_only_its_own_adapter(tmp_path: Path, expert_file: Path) -> None:
    from swerepair.agents.inference.models import apply_adapter, load_model
    from swerepair.trainers.grpo import GRPOTrainer

    run_sft(tmp_path, "sft", expert_file, kl_coef=0.05, epochs=2)
    config = tiny_run_config(tmp_path, "grpo", init_adapter=str(tmp_path / "sft"), beta=0.04, max_steps=1)
    with GRPOTrainer(config, episode_reward=token_reward) as trainer:
        pm = trainer.policy_model
        frozen = {n: p.detach().clone() for n, p in pm.model.named_parameters() if not p.requires_grad}
        trainable = {n: p.detach().clone() for n, p in pm.model.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in n for n in trainable)
        assert not any("lora_" in n for n in frozen)  # the SFT adapter is merged into the frozen weights
        # the reference policy (the GRPO adapter disabled) is the SFT policy
        sft_model, _ = load_model("tiny-qwen3")
        sft_model = apply_adapter(sft_model, tmp_path / "sft")
        base_model, _ = load_model("tiny-qwen3")
        ids = torch.tensor([[1, 5, 9, 13, 200, 7]])
        with torch.no_grad(), pm.reference_policy():
            reference = pm.causal_lm(input_ids=ids).logits
        assert torch.allclose(reference, sft_model(input_ids=ids).logits, atol=1e-5)
        assert not torch.allclose(reference, base_model(input_ids=ids).logits, atol=1e-5)
        records = trainer.train()
        assert records[0]["train/updated"] == 1.0
        for n, p in pm.model.named_parameters():
            if n in frozen:
                assert torch.equal(p.detach(), frozen[n]), n
        assert any(not torch.equal(p.detach(), trainable[n]) for n, p in pm.model.named_parameters() if n in trainable)


@needs_bwrap
def test_a_failed_start_leaves_its_log_and_a_rerun_is_accepted(tmp_path: Path, expert_file: Path) -> None:
    settings = SFTSettings(episodes=(str(expert_file),))
    with pytest.raises(ConfigError, match="model: unknown model 'nope'"):
        SFTTrainer(sft_config(tmp_path, "nope", model="nope"), settings)
    assert not (tmp_path / "nope").exists()  # refused before anything was written
    bad = tmp_path / "replay.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(ConfigError, match=r"replay\.jsonl:1"):  # found after the model loads
        SFTTrainer(sft_config(tmp_path, "run"), SFTSettings(episodes=(str(expert_file),), replay=str(bad)))
    run = tmp_path / "run"
    assert [p.name for p in run.iterdir()] == ["train.log"]
    assert "the run could not start" in (run / "train.log").read_text()
    SFTTrainer(sft_config(tmp_path, "run"), settings).close()  # the corrected rerun is accepted
    assert (run / "config.yaml").exists()
