"""The TRL backend: train on SweRepair-v0 with ``trl.GRPOTrainer``, through its ``rollout_func``.

Why ``rollout_func`` and not ``environment_factory``: TRL's environment path renders each tool
result with the chat template and re-tokenizes the conversation in its own tool loop, with its own
tool-call parser; our episodes are built token by token from what the model generated and what
the env answered (`swerepair.agents.policies.episode`), and the sandbox, budgets, scaffold and reward live
in the env. With ``rollout_func`` TRL receives exactly those token ids:

- ``prompt_ids``: the episode's tokens before the first generated token (system prompt with the
  tools, the issue, the generation prompt);
- ``completion_ids``: everything after, up to and including the last generated token: every
  assistant turn and, between turns, the tool results and templates;
- ``env_mask``: 1 on generated tokens, 0 on tool output and template text: TRL multiplies it into
  its loss mask, so tool output never enters the loss;
- ``logprobs``: the sampling logprob of each generated token (0 on env tokens, which are masked).

Rewards: one reward function reads the env's reward (plus the shaping term, or the
``episode_reward`` replacing it) that the rollout forwarded; a failed episode returns ``None``,
which TRL 1.16 leaves out of its group baseline and gives advantage 0 (it is not scored 0).

Settings come from the same `TrainConfig`. What GRPOTrainer cannot do is rejected by name
(`unsupported_settings`): the ``rloo`` estimator, the entropy bonus, ZeRO through our switch (use
``accelerate launch`` with a DeepSpeed config instead), a custom log-prob chunk size. Differences
that remain: TRL's loss types stand in for our aggregations (``token_mean`` -> ``dapo``,
``seq_mean_token_mean`` -> ``grpo``, ``seq_mean_token_sum`` -> ``dr_grpo`` with
``max_completion_length = token_sum_norm``), zero-variance groups stay in the batch with
advantage 0, and TRL's z-score uses the sample std and eps 1e-4.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swerepair.core import Episode
from swerepair.trainers.config import ConfigError, TrainConfig
from swerepair.trainers.episodes import env_factory, resolve_episode_reward, select_tasks, shaped_reward, step_seed
from swerepair.trainers.startup import bind_episode_reward

__all__ = ["SweRepairRollout", "build_trl_trainer", "episode_to_trl", "grpo_config", "unsupported_settings"]

log = logging.getLogger(__name__)

TRL_MIN_VERSION = "1.16"

#: TrainConfig fields that GRPOTrainer has no counterpart for, with what to do instead. They are
#: rejected when set to anything but the value in the second column (the default).
UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "zero_stage": (0, "launch with `accelerate launch --config_file <deepspeed config>` instead"),
    "deepspeed_config": (None, "launch with `accelerate launch --config_file <deepspeed config>` instead"),
    "entropy_coef": (0.0, "GRPOTrainer has no entropy bonus"),
    "logprob_chunk_size": (1024, "GRPOTrainer chunks its LM head itself"),
    "min_lr_ratio": (0.0, "transformers' cosine schedule decays to 0"),
    "servers": ([], "the trl backend generates in-process; inference servers are the swerepair backend's"),
}


def unsupported_settings(config: TrainConfig) -> list[str]:
    """Messages naming each setting of `config` that the TRL backend cannot honour (empty: fine)."""
    problems = []
    for name, (default, hint) in UNSUPPORTED.items():
        value = getattr(config, name)
        if value != default:
            problems.append(f"{name}={value!r}: {hint}")
    if config.advantage == "rloo":
        problems.append("advantage='rloo': GRPOTrainer has no leave-one-out baseline (use grpo or dr_grpo)")
    return problems


def grpo_config(config: TrainConfig, **extra: Any) -> Any:
    """The ``trl.GRPOConfig`` equivalent to `config` (raises `ConfigError` naming unsupported settings)."""
    from trl import GRPOConfig

    problems = unsupported_settings(config)
    if problems:
        raise ConfigError("the trl backend cannot honour: " + "; ".join(problems))
    if config.episodes_per_step % config.micro_batch_size:
        raise ConfigError(
            f"the trl backend needs micro_batch_size ({config.micro_batch_size}) to divide the episodes per step "
            f"({config.episodes_per_step})"
        )
    loss_type = {"token_mean": "dapo", "seq_mean_token_mean": "grpo", "seq_mean_token_sum": "dr_grpo"}
    bf16 = config.dtype == "bfloat16"
    kwargs: dict[str, Any] = {
        "output_dir": config.output_dir,
        "seed": config.seed,
        "learning_rate": config.lr,
        "weight_decay": config.weight_decay,
        "adam_beta1": config.adam_beta1,
        "adam_beta2": config.adam_beta2,
        "warmup_steps": config.warmup_steps,
        "lr_scheduler_type": "cosine" if config.lr_schedule == "cosine" else "constant_with_warmup",
        "max_grad_norm": config.max_grad_norm if config.max_grad_norm > 0 else 1e9,
        "max_steps": config.max_steps,
        "num_generations": config.group_size,
        "per_device_train_batch_size": config.micro_batch_size,
        "gradient_accumulation_steps": config.episodes_per_step // config.micro_batch_size,
        "num_iterations": config.ppo_epochs,
        "beta": config.beta,
        "epsilon": config.eps_low,
        "epsilon_high": config.eps_high,
        "loss_type": loss_type[config.aggregation],
        "importance_sampling_level": config.importance,
        "scale_rewards": "group" if config.advantage == "grpo" else "none",
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_completion_length": int(config.token_sum_norm)
        if config.aggregation == "seq_mean_token_sum"
        else config.max_context_tokens,
        "mask_truncated_completions": False,
        "gradient_checkpointing": config.gradient_checkpointing,
        "bf16": bf16,
        "use_cpu": config.device == "cpu",
        "logging_steps": 1,
        "save_steps": config.save_every if config.save_every else config.max_steps,
        "save_total_limit": config.keep_checkpoints or None,
        "report_to": ["tensorboard"] if config.tensorboard else [],
        "disable_tqdm": not config.progress,
        "use_vllm": False,
        "shuffle_dataset": True,
    }
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(GRPOConfig)}:  # transformers 5's name
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    kwargs.update(extra)
    return GRPOConfig(**kwargs)


def episode_to_trl(episode: Episode) -> tuple[list[int], list[int], list[float], list[int]]:
    """``(prompt_ids, completion_ids, logprobs, env_mask)`` of a token-exact episode.

    The prompt is everything before the first generated token; the completion runs to the last
    generated token (template text after it carries no loss and is left out, so the completion
    ends on the model's stop token when it stopped). ``logprobs`` has one entry per completion
    token: the sampling logprob on generated tokens, 0.0 on env tokens (masked by ``env_mask``).
    """
    mask = episode.loss_mask
    generated = [i for i, m in enumerate(mask) if m]
    if not generated:
        raise ValueError(f"episode {episode.instance_id} has no generated tokens")
    first, last = generated[0], generated[-1]
    prompt = list(episode.tokens[:first])
    completion = list(episode.tokens[first : last + 1])
    env_mask = [int(m) for m in mask[first : last + 1]]
    logprobs: list[float] = []
    it = iter(episode.logprobs)
    for m in env_mask:
        logprobs.append(float(next(it)) if m else 0.0)
    return prompt, completion, logprobs, env_mask


def _prompt_key(messages: Sequence[dict[str, Any]]) -> str:
    return json.dumps([(m.get("role"), m.get("content")) for m in messages], ensure_ascii=False)


class SweRepairRollout:
    """A ``rollout_func`` for ``trl.GRPOTrainer`` that plays SweRepair-v0 episodes.

    Args:
        config: the run's settings (episode budgets, sampling, shaping, env threads).
        tasks: the tasks of the dataset (`dataset()` builds it).
        tokenizer: the policy's tokenizer.
        episode_reward: replaces the env's reward with ``fn(episode, task)``, as in `GRPOTrainer`.
    """

    def __init__(self, config: TrainConfig, tasks: Sequence[Any], tokenizer: Any, episode_reward: Any = None) -> None:
        from swerepair.agents.inference.chat import ChatRenderer
        from swerepair.agents.scaffold import resolve_scaffold

        self.config = config
        self.tasks = {t.instance_id: t for t in tasks}
        self.tokenizer = tokenizer
        self.episode_reward = episode_reward
        scaffold = resolve_scaffold(config.scaffold)
        self.renderer = ChatRenderer(tokenizer, scaffold.tool_schemas())
        self.make_env = env_factory(config, tasks, self.renderer, scaffold)
        self._by_prompt: dict[str, str] = {}
        self.calls = 0
        #: the episodes of the latest call, in the order TRL received them
        self.last_episodes: list[Episode] = []

    def dataset(self) -> Any:
        """A ``datasets.Dataset`` with one row per task: its first observation as ``prompt``."""
        from datasets import Dataset

        rows = []
        for task_id in self.tasks:
            env = self.make_env()
            try:
                obs, _ = env.reset(options={"task_id": task_id})
            finally:
                env.close()
            key = _prompt_key(obs)
            if key in self._by_prompt:
                raise ValueError(f"tasks {self._by_prompt[key]} and {task_id} have the same prompt")
            self._by_prompt[key] = task_id
            rows.append({"prompt": obs, "task_id": task_id})
        return Dataset.from_list(rows)

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt with the trainer's current weights; return what TRL trains on."""
        from swerepair.agents.inference.hf_backend import HFBackend
        from swerepair.agents.policies.model import ModelPolicy
        from swerepair.envs.rollout import run_episodes

        try:
            task_ids = [self._by_prompt[_prompt_key(p)] for p in prompts]
        except KeyError:
            raise ValueError("a prompt that SweRepairRollout.dataset() did not make reached the rollout") from None
        model = trainer.accelerator.unwrap_model(trainer.model)
        lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.calls += 1
        backend = HFBackend(
            lm,
            self.tokenizer,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            max_new_tokens=self.config.max_new_tokens,
            seed=step_seed(self.config.seed, self.calls, "sampling"),
        )
        backend.policy_version = int(trainer.state.global_step)
        was_training = model.training
        model.eval()
        try:
            episodes = run_episodes(
                self.make_env,
                ModelPolicy(backend, self.renderer),
                task_ids,
                seed=step_seed(self.config.seed, self.calls, "env"),
                workers=self.config.env_workers,
            )
        finally:
            model.train(was_training)
        out: dict[str, list[Any]] = {
            k: [] for k in ("prompt_ids", "completion_ids", "logprobs", "env_mask", "swerepair_reward")
        }
        out["swerepair_info"] = []
        for ep in episodes:
            if ep.failed and not any(ep.loss_mask):
                # failed before its first turn came back (a lost server, a missing repository):
                # a one-token placeholder that TRL masks out, as it does every failed episode
                stop = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
                prompt, completion, logprobs, env_mask = list(ep.tokens) or [stop], [stop], [0.0], [0]
            else:
                prompt, completion, logprobs, env_mask = episode_to_trl(ep)
            reward: float | None = None if ep.failed else self._reward(ep)
            if ep.failed:
                env_mask = [0] * len(env_mask)  # nothing of a failed episode is trained on
            out["prompt_ids"].append(prompt)
            out["completion_ids"].append(completion)
            out["logprobs"].append(logprobs)
            out["env_mask"].append(env_mask)
            out["swerepair_reward"].append(reward)
            info = {k: ep.info.get(k) for k in ("exit_reason", "failed", "tool_stats", "reward_components")}
            out["swerepair_info"].append(info | {"task_id": ep.instance_id})
        self.last_episodes = episodes
        return out

    def _reward(self, ep: Episode) -> float:
        return shaped_reward(ep, self.tasks[ep.instance_id], self.config, self.episode_reward)[0]


def swerepair_reward(prompts: Any = None, completions: Any = None, swerepair_reward: Any = None, **_: Any) -> list[Any]:
    """TRL reward function: the reward each rollout forwarded (``None`` for a failed episode)."""
    return list(swerepair_reward or [])


def build_trl_trainer(config: TrainConfig, *, episode_reward: Any = None, **grpo_overrides: Any) -> Any:
    """A ``trl.GRPOTrainer`` set up from `config` to train on SweRepair-v0 (see the module docstring).

    The model is loaded as `build_policy_model` would (same name, device, dtype); LoRA settings
    become a peft ``LoraConfig`` that TRL applies. `grpo_overrides` go to ``GRPOConfig``.

    TRL seeds the process-global generators (python's, numpy's, torch's) when it sets itself up,
    and trains on from the states it left there. Here they are the trainer's own (`RNGStates`,
    kept as ``trainer.swerepair_rng``): they are in the global generators while the trainer is
    built and while its ``train`` runs, and the global states are as they were before and after.
    """
    import transformers
    import trl
    from packaging.version import Version

    if Version(trl.__version__) < Version(TRL_MIN_VERSION):
        raise ConfigError(f"the trl backend needs trl >= {TRL_MIN_VERSION}, found {trl.__version__}")
    from swerepair.agents.inference.models import load_model
    from swerepair.trainers.model import RNGStates, lora_config, resolve_device, resolve_dtype

    if grpo_overrides.get("use_vllm"):
        raise ConfigError(
            "use_vllm: the trl backend generates in-process with the hf backend from its rollout_func; TRL's vLLM "
            "client is not wired into it (see docs/trl.md, 'On GPUs')"
        )
    config, episode_reward, _ = resolve_episode_reward(config, episode_reward)  # a registered one, by name
    config = bind_episode_reward(config, episode_reward)  # recorded in config.yaml; refused if named but not given
    args = grpo_config(config, **grpo_overrides)
    tasks = select_tasks(config)
    device = resolve_device(config)
    rng = RNGStates(config.seed, cuda=device.type == "cuda")
    with rng.active():
        model, tokenizer = load_model(config.model, device=str(device), dtype=resolve_dtype(config, device))
        transformers.set_seed(config.seed)
        peft_config = lora_config(config, int(model.config.num_hidden_layers)) if config.finetune == "lora" else None
        rollout = SweRepairRollout(config, tasks, tokenizer, episode_reward=episode_reward)
        dataset = rollout.dataset()
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        config.to_yaml(Path(config.output_dir) / "config.yaml")
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=[swerepair_reward],
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            rollout_func=rollout,
        )
    trainer.swerepair_rollout = rollout
    trainer.swerepair_rng = rng
    train = trainer.train

    @functools.wraps(train)
    def train_with_own_rng(*args: Any, **kwargs: Any) -> Any:
        with rng.active():
            return train(*args, **kwargs)

    trainer.train = train_with_own_rng
    return trainer
