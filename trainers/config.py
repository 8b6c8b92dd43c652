"""`TrainConfig`: every setting of a training run, documented once, loadable from YAML.

A run's settings are resolved in this order, each overriding the one before:

1. the dataclass defaults below, and the model's own (`MODEL_DEFAULTS`: the tiny random model
   gets laptop-sized episodes and groups) where nothing below sets them;
2. a preset (``--preset cpu-demo``, `PRESETS`);
3. a YAML file (``--config run.yaml``), whose keys are field names;
4. command-line overrides (``--lr 5e-6 --group-size 4``; dashes or underscores).

Unknown keys are errors that name the key (and the file), with the closest field suggested.
Renamed keys (`RENAMED_KEYS`: ``max_turns`` is now ``max_tool_calls``) are errors that name the
new key, in a preset, a YAML file, an override or a `TrainConfig(...)` keyword; only a saved run's
own ``config.yaml`` (read by ``--resume``, `load_config` with ``saved_run=True``) may still use an
old name, which is read as the new one with a logged warning, so that older runs can resume.
The docstring under each field is the only place it is documented: ``swerepair train --help``
prints them.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import json
import logging
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "MODEL_DEFAULTS",
    "PRESETS",
    "RENAMED_KEYS",
    "ConfigError",
    "TrainConfig",
    "field_docs",
    "load_config",
    "parse_overrides",
]

log = logging.getLogger(__name__)

#: Settings that were renamed: old key -> (new key, what it is). An old key is rejected with a
#: message that names the new one (except in a saved run's config.yaml, see the module docstring).
RENAMED_KEYS: Mapping[str, tuple[str, str]] = types.MappingProxyType(
    {"max_turns": ("max_tool_calls", "the tool-call budget per episode: tool calls plus turns without any call")}
)


class ConfigError(ValueError):
    """A configuration that cannot be used: an unknown key, a value of the wrong type, or a
    combination of settings that cannot work together."""


@dataclass
class TrainConfig:
    """The settings of one GRPO training run (see the module docstring)."""

    # -- model ---------------------------------------------------------------------------------
    backend: Literal["swerepair", "trl"] = "swerepair"
    """Trainer: swerepair's GRPOTrainer, or trl's GRPOTrainer fed by swerepair rollouts (docs/trl.md)."""
    model: str = "tiny-qwen3"
    """Policy model: a built-in name (tiny-qwen3, smollm2-135m) or a local model directory."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the model runs; auto picks cuda when available."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Weight and compute dtype; auto is bfloat16 on a GPU that supports it, else float32."""
    finetune: Literal["lora", "full"] = "lora"
    """Train a LoRA adapter (the reference policy is the adapter disabled) or every weight."""
    lora_rank: int = 8
    """LoRA rank r."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator: updates are scaled by alpha / r."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch's input."""
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Names of the linear layers that get adapters."""
    lora_layers: str = "last_third"
    """Which decoder layers get adapters: all, last_third, last_half, or indices like 8,9,10."""
    init_adapter: str | None = None
    """A LoRA adapter merged into the model before training (the SFT stage's run directory, a
    checkpoint, or an adapter directory): GRPO then trains a second adapter over it, and the
    reference policy of ``beta`` is the model with that adapter (the SFT policy)."""
    gradient_checkpointing: bool = True
    """Recompute decoder activations in the backward pass instead of storing them."""

    # -- tasks and episodes ----------------------------------------------------------------------
    tasks: str = "bundled"
    """Task set: bundled, bundled-synth (the synthesized tasks), or a .jsonl/.json/.parquet file."""
    repos: str | None = None
    """Directory of repository bundles or checkouts for a non-bundled task set."""
    task_ids: list[str] = field(default_factory=list)
    """Train on these tasks only (empty: all tasks of the set)."""
    sandbox: Literal["auto", "bubblewrap", "gvisor", "docker", "local"] = "auto"
    """Sandbox of the agent's shell; auto is bubblewrap where it works; gvisor for hostile policies; docker: a
    container per episode from the task's image (docs/docker.md)."""
    docker_pool_size: int = 2
    """Docker sandbox: containers started ahead of the resets that need them (the trainer tells the
    pool this step's and the next step's tasks); 0: every reset starts its container then."""
    docker_per_host_limit: int = 16
    """Docker sandbox: containers of the pool at most at once on the Docker host, warm and in use."""
    docker_hosts: list[str] = field(default_factory=list)
    """Docker sandbox: several Docker hosts (DOCKER_HOST forms), each as host or host=N (N: its cap of
    sandboxes at once; default docker_per_host_limit); each sandbox goes to the least-loaded live host
    (docs/docker.md). Empty: $SWEREPAIR_DOCKER_HOSTS, else $DOCKER_HOST."""
    docker_image_budget_gb: float | None = None
    """Docker sandbox: disk budget of the task images, in GB; beyond it the least recently used are
    removed (never one in use or expected next); none: no budget."""
    reward: str = "functional_similarity"
    """Reward of the final patch: a name from swerepair.rewards (tests_pass runs the tests), an entry
    point of the group swerepair.rewards, or module:function. In Python, a function is accepted too
    and stored by its name."""
    episode_reward: str | None = None
    """A reward of the whole episode replacing the env's reward: an entry point of the group
    swerepair.episode_rewards or module:function, which config files and --resume carry. A function
    given to the trainer in code is recorded here; one without such a name (as module.name) must be
    given again (GRPOTrainer.from_run_dir(dir, episode_reward=fn)): --resume refuses it rather than
    drop it."""
    scaffold: str = "nano"
    """The agent's scaffold (prompt, tools, parser): nano (the nano-agent), an entry point of the
    group swerepair.scaffolds, or module:attr (a Scaffold or a function that builds one)."""
    shaping: Literal["none", "localization"] = "none"
    """Shaping reward added to the patch reward (see swerepair.trainers.shaping): none or localization."""
    shaping_weight: float = 0.2
    """Weight of the shaping reward: reward = patch reward + shaping_weight * shaping."""
    max_tool_calls: int = 30
    """Tool-call budget of one episode: tool calls (well-formed or not) plus turns without any call
    (the env's max_tool_calls)."""
    max_context_tokens: int = 8192
    """Context budget of one episode, counted by the policy's tokenizer."""
    max_new_tokens: int = 512
    """Most tokens generated in one turn."""
    kv_cache_gib: float = 2.0
    """Memory (GiB) of the in-process backend's KV prefix cache, which keeps each episode's keys
    and values between its turns and encodes a group's shared prompt once; 0 turns it off."""
    tool_timeout_s: float = 30.0
    """Time limit of one tool call."""
    verifier_timeout_s: float = 300.0
    """Time limit of one test run by a test-executing reward."""
    temperature: float = 1.0
    """Sampling temperature of rollouts (the loss uses the same one)."""
    top_p: float = 1.0
    """Nucleus size of rollout sampling."""
    env_workers: int = 8
    """Episodes whose tool calls and rewards run concurrently (threads) within a step."""
    servers: list[str] = field(default_factory=list)
    """Inference servers (swerepair serve URLs) that generate the rollouts; the trainer pushes its
    weights to them after each update. Empty: generate in-process."""
    server_engine: Literal["swerepair", "vllm"] = "swerepair"
    """What the servers run: swerepair (swerepair serve) or vllm (vllm serve with the worker
    extension swerepair.agents.inference.vllm_extension.WeightSyncExtension and VLLM_SERVER_DEV_MODE=1)."""
    weight_sync_backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Process-group backend of weight pushes to the servers; auto is nccl on CUDA, else gloo."""
    async_rollouts: bool = False
    """Generate the next step's episodes on the servers while this step trains (needs servers)."""
    max_staleness: int = 1
    """Asynchronous mode: episodes generated by weights more than this many updates old are dropped."""
    weight_bucket_mb: int = 256
    """Bucket size of weight pushes, in MiB (one control message per bucket)."""
    weight_push: Literal["merged", "adapter"] = "merged"
    """What a push carries: merged (every weight, LoRA merged in) or adapter (the LoRA factors
    alone, after one push of the base weights; the server composes them; swerepair servers only)."""

    # -- GRPO ------------------------------------------------------------------------------------
    group_size: int = 8
    """Episodes per task in one step (G): their rewards are compared with each other."""
    tasks_per_step: int = 4
    """Tasks per step; episodes per update = tasks_per_step * group_size."""
    advantage: Literal["grpo", "dr_grpo", "rloo"] = "grpo"
    """Advantage estimator: group z-score, mean-centred, or leave-one-out."""
    drop_zero_variance: bool = True
    """Leave groups whose rewards are all equal out of the update (they carry no advantage)."""
    eps_low: float = 0.2
    """Lower clip of the importance ratio: 1 - eps_low."""
    eps_high: float = 0.28
    """Upper clip of the importance ratio: 1 + eps_high (clip-higher when above eps_low)."""
    beta: float = 0.0
    """KL penalty coefficient (k3 estimator, to the reference policy); 0 turns it off."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient; 0 turns it off."""
    aggregation: Literal["token_mean", "seq_mean_token_sum", "seq_mean_token_mean"] = "token_mean"
    """How per-token losses are averaged (see swerepair.trainers.loss)."""
    importance: Literal["token", "sequence"] = "token"
    """Importance ratio per token (GRPO) or per sequence (GSPO)."""
    token_sum_norm: float = 1.0
    """Divisor of each sequence's token sum under seq_mean_token_sum."""
    ppo_epochs: int = 1
    """Optimizer passes over each step's episodes (1: on-policy)."""
    micro_batch_size: int = 1
    """Episodes per forward/backward pass; gradients accumulate over a step's micro-batches."""
    logprob_chunk_size: int = 1024
    """Positions per chunk of the fused LM-head log-prob computation."""

    # -- optimizer -------------------------------------------------------------------------------
    lr: float = 1e-5
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.999
    """AdamW beta2."""
    warmup_steps: int = 0
    """Steps of linear warmup from 0 to lr."""
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    """After warmup: cosine decay to min_lr_ratio * lr at max_steps, or constant."""
    min_lr_ratio: float = 0.0
    """Final learning rate of the cosine schedule, as a fraction of lr."""
    max_grad_norm: float = 1.0
    """Gradient norm clipping threshold; 0 disables clipping."""
    max_steps: int = 10
    """Optimizer steps (each on one batch of fresh episodes)."""
    zero_stage: Literal[0, 2, 3] = 0
    """DeepSpeed ZeRO stage: 0 runs without DeepSpeed, 2 or 3 shard optimizer state (and weights)."""
    deepspeed_config: str | None = None
    """A DeepSpeed JSON file merged over the generated config (for offload and other options)."""

    # -- run -------------------------------------------------------------------------------------
    output_dir: str = "runs/train"
    """Run directory: config, metrics, TensorBoard logs, checkpoints, learning curve."""
    overwrite: bool = False
    """Start over in an output_dir that already holds a run (its metrics, episodes and checkpoints are deleted)."""
    seed: int = 0
    """Seed of weights init (LoRA), task order and sampling."""
    save_every: int = 0
    """Checkpoint every N steps (0: only at the end)."""
    keep_checkpoints: int = 2
    """Most recent checkpoints kept on disk (0: keep all)."""
    tensorboard: bool = True
    """Also write metrics as TensorBoard scalars."""
    save_episodes: bool = True
    """Write each step's episodes (tokens, masks, messages, rewards) as JSONL in the run directory."""
    progress: bool = True
    """Show a progress bar on the console."""

    def __new__(cls, *args: Any, **kwargs: Any) -> TrainConfig:
        old = [k for k in kwargs if k in RENAMED_KEYS]
        if old:
            raise TypeError(f"TrainConfig: {_renamed_text(old[0])}")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        self._name_callables()
        self.validate()

    def _name_callables(self) -> None:
        """Store a reward, episode reward or scaffold given as a Python object by its name, which a
        config file carries; one without a name (a lambda, a closure) is a `ConfigError`."""
        from swerepair.core import plugin_name

        if callable(self.reward):
            from swerepair.rewards import registered_reward_name

            name = registered_reward_name(self.reward)
            if name is None:
                raise ConfigError(_unnamed("reward", self.reward, "swerepair.rewards"))
            self.reward = name
        if callable(self.episode_reward):
            name = plugin_name(self.episode_reward, "swerepair.episode_rewards")
            if name is None:
                raise ConfigError(_unnamed("episode_reward", self.episode_reward, "swerepair.episode_rewards"))
            self.episode_reward = name
        if callable(self.scaffold):
            from swerepair.agents.scaffold import SCAFFOLDS

            name = plugin_name(self.scaffold, "swerepair.scaffolds", SCAFFOLDS)
            if name is None:
                raise ConfigError(_unnamed("scaffold", self.scaffold, "swerepair.scaffolds"))
            self.scaffold = name

    @property
    def episodes_per_step(self) -> int:
        """Episodes generated (and, less failures, trained on) per optimizer step."""
        return self.tasks_per_step * self.group_size

    def validate(self) -> None:
        """Raise `ConfigError` on a value outside its range or settings that conflict."""
        if self.docker_pool_size < 0 or self.docker_per_host_limit < 1:
            raise ConfigError("docker_pool_size must be >= 0 and docker_per_host_limit >= 1")
        if self.docker_hosts:
            from swerepair.envs.sandbox.docker.hosts import parse_hosts

            try:
                parse_hosts(self.docker_hosts, self.docker_per_host_limit)
            except ValueError as exc:
                raise ConfigError(f"docker_hosts: {exc}") from None
        if self.docker_image_budget_gb is not None and self.docker_image_budget_gb < 0:
            raise ConfigError(f"docker_image_budget_gb must be >= 0, got {self.docker_image_budget_gb}")
        for name in _hints():
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{name} must be finite, got {value!r}")
        for name, hint in _hints().items():
            value = getattr(self, name)
            if typing.get_origin(hint) is Literal and value not in typing.get_args(hint):
                allowed = ", ".join(map(str, typing.get_args(hint)))
                raise ConfigError(f"{name}: {value!r} is not one of {allowed}")
        positive = ["lora_rank", "max_tool_calls", "max_new_tokens", "group_size", "tasks_per_step", "ppo_epochs"]
        positive += ["micro_batch_size", "logprob_chunk_size", "max_steps", "env_workers", "max_context_tokens"]
        positive += ["weight_bucket_mb"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ["lr", "temperature", "tool_timeout_s", "verifier_timeout_s", "token_sum_norm", "lora_alpha"]:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        nonnegative = ["beta", "entropy_coef", "eps_low", "eps_high", "weight_decay", "max_grad_norm", "warmup_steps"]
        nonnegative += ["kv_cache_gib"]
        for name in [*nonnegative, "shaping_weight"]:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.eps_low >= 1:
            raise ConfigError(f"eps_low must be below 1, got {self.eps_low!r}")
        if self.weight_push == "adapter" and (self.finetune != "lora" or self.server_engine != "swerepair"):
            raise ConfigError("weight_push adapter needs finetune lora and server_engine swerepair")
        if self.init_adapter and self.weight_push == "adapter":
            raise ConfigError("init_adapter needs weight_push merged: a server holds the base model without it")
        if self.async_rollouts and not self.servers:
            raise ConfigError("async_rollouts needs servers: in-process generation would share the model being trained")
        if self.async_rollouts and self.max_staleness < 1:
            raise ConfigError("async_rollouts needs max_staleness >= 1: a step's episodes start one update behind")
        if self.max_staleness < 0:
            raise ConfigError(f"max_staleness must not be negative, got {self.max_staleness!r}")
        if self.group_size < 2:
            raise ConfigError("group_size must be at least 2: advantages compare episodes within a group")
        if self.finetune == "lora" and not self.lora_target_modules:
            raise ConfigError("lora_target_modules is empty")
        _parse_layers(self.lora_layers, 1_000_000)  # syntax only; the range is checked against the model

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (what `to_yaml` writes)."""
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path) -> None:
        """Write the settings as YAML, with each field's docstring as a comment above it."""
        docs = field_docs()
        lines = ["# swerepair train settings (swerepair train --config THIS_FILE)"]
        for name, value in self.to_dict().items():
            lines.append(f"# {docs.get(name, '')}")
            lines.append(f"{name}: {json.dumps(value)}")  # JSON values are YAML
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied (validated)."""
        return dataclasses.replace(self, **changes)


def _unnamed(key: str, obj: Any, group: str) -> str:
    return (
        f"{key}: {obj!r} has no name a config file can carry; define it at module level (it is then "
        f"stored as module:name) or register it as an entry point of the group {group}"
    )


def _parse_layers(spec: str, num_layers: int) -> list[int] | None:
    """Layer indices named by `spec` (see `TrainConfig.lora_layers`); None means all layers."""
    spec = spec.strip()
    if spec == "all":
        return None
    if spec == "last_third":
        return list(range(num_layers - max(1, num_layers // 3), num_layers))
    if spec == "last_half":
        return list(range(num_layers - max(1, num_layers // 2), num_layers))
    try:
        layers = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"lora_layers: {spec!r} is not all, last_third, last_half or a list like 8,9,10") from None
    if not layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise ConfigError(f"lora_layers: {spec!r} names layers outside 0..{num_layers - 1}")
    return layers


def lora_layer_indices(spec: str, num_layers: int) -> list[int] | None:
    """The decoder layers a LoRA adapter covers for a model of `num_layers` layers (None: all)."""
    return _parse_layers(spec, num_layers)


#: Named starting points; a config file and command-line overrides go on top.
PRESETS: Mapping[str, Mapping[str, Any]] = types.MappingProxyType(
    {
        # SmolLM2-135M-Instruct with a LoRA on its last third, on two bundled tasks, on 2 CPU cores:
        # six short episodes per step so that the whole run takes minutes. The model never edits
        # anything at this size, so the localization shaping reward gives its groups a signal.
        "cpu-demo": {
            "model": "smollm2-135m",
            "device": "cpu",
            "dtype": "float32",
            "task_ids": ["swerepair__durations-1", "swerepair__intervals-5"],
            "shaping": "localization",
            "shaping_weight": 0.5,
            "group_size": 6,
            "tasks_per_step": 1,
            "max_tool_calls": 2,
            "max_new_tokens": 64,
            "max_context_tokens": 4096,
            "max_steps": 6,
            "lr": 2e-4,
            "warmup_steps": 1,
            "micro_batch_size": 2,
            "env_workers": 4,
        },
        # Qwen-class model on GPUs with CodeRepairRL-style settings: 8 episodes per task, 32 per
        # update, lr 5e-6, a small KL to the base model, clip-higher, 30 tool calls, 8k tokens.
        "thesis": {
            "model": "Qwen/Qwen3-8B",
            "device": "cuda",
            "dtype": "bfloat16",
            "reward": "functional_similarity",
            "group_size": 8,
            "tasks_per_step": 4,
            "max_tool_calls": 30,
            "max_context_tokens": 8192,
            "max_new_tokens": 1024,
            "lr": 5e-6,
            "beta": 0.04,
            "eps_low": 0.2,
            "eps_high": 0.28,
            "aggregation": "token_mean",
            "warmup_steps": 10,
            "max_steps": 500,
            "lora_rank": 32,
            "lora_alpha": 64.0,
            "lora_layers": "all",
            "save_every": 25,
            "micro_batch_size": 1,
            "env_workers": 32,
        },
        # The LoRA recipe alone: last third of the layers, rank 8, alpha 16.
        "lora-last-third": {"finetune": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lora_layers": "last_third"},
    }
)


#: Defaults that depend on the model, used where the preset, the config file and the command line
#: leave a setting unset. The tiny random model is for a first run on a laptop: one task per
#: step, groups of 4, short turns and episodes, so that a step takes seconds and little memory
#: (the dataclass defaults are sized for a real model on GPUs).
MODEL_DEFAULTS: Mapping[str, Mapping[str, Any]] = types.MappingProxyType(
    {
        "tiny-qwen3": {
            "group_size": 4,
            "tasks_per_step": 1,
            "max_tool_calls": 4,
            "max_new_tokens": 64,
            "max_context_tokens": 4096,
            "env_workers": 4,
        },
    }
)


@cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


@cache
def field_docs() -> dict[str, str]:
    """Field name -> its docstring (the string literal right under it in `TrainConfig`)."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def _renamed_text(key: str, flag: bool = False) -> str:
    """``max_turns was renamed max_tool_calls (...)`` (as ``--max-turns ...`` when `flag`)."""
    new, what = RENAMED_KEYS[key]
    if flag:
        key, new = "--" + key.replace("_", "-"), "--" + new.replace("_", "-")
    return f"{key} was renamed {new} ({what})"


def _unknown(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, _field_names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}unknown setting {key!r}{hint}")


def _coerce(name: str, value: Any, where: str = "") -> Any:
    """`value` (from YAML or a command line string) as the type of field `name`."""
    hint = _hints()[name]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if origin is Literal:
            kinds = {type(a) for a in args}
            if int in kinds and (isinstance(value, str) or (isinstance(value, float) and value.is_integer())):
                value = int(value)
            if value not in args:
                raise ValueError(f"not one of {', '.join(map(str, args))}")
            return value
        if origin is list:
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, list):
                raise ValueError("expected a list")
            return [str(v) for v in value]
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}{name}: {value!r}: {exc}") from None
    raise ConfigError(f"{where}{name}: unsupported field type {hint!r}")


_noted: set[tuple[str, str]] = set()


def _apply(base: dict[str, Any], changes: Mapping[str, Any], where: str, *, saved_run: bool = False) -> None:
    for key, value in changes.items():
        name = str(key).replace("-", "_")
        if name in RENAMED_KEYS:
            if not saved_run:
                raise ConfigError(f"{where}{_renamed_text(name)}")
            new = RENAMED_KEYS[name][0]
            if new in changes:
                raise ConfigError(f"{where}both {name} and {new} are given: {_renamed_text(name)}")
            if (where, name) not in _noted:  # once: --resume reads the file twice
                _noted.add((where, name))
                log.warning("%s%s; read as %s", where, _renamed_text(name), new)
            name = new
        if name not in _hints():
            raise _unknown(str(key), where)
        base[name] = _coerce(name, value, where)


def parse_overrides(argv: Sequence[str]) -> dict[str, str]:
    """``["--lr", "5e-6", "--group-size=4", "--no-tensorboard"]`` -> ``{"lr": "5e-6", ...}``.

    ``--flag`` alone (before another option or at the end) means true for a bool field, and
    ``--no-flag`` false. Values stay strings; `load_config` converts them.
    """
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}: settings are given as --name value")
        key, eq, value = arg[2:].partition("=")
        name = key.replace("-", "_")
        if name in RENAMED_KEYS:
            raise ConfigError(f"command line: {_renamed_text(name, flag=True)}")
        if not eq:
            has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            if has_value:
                value, i = argv[i + 1], i + 1
            elif name in _hints() and _hints()[name] is bool:
                value = "true"
            elif name.startswith("no_") and _hints().get(name[3:]) is bool:
                name, value = name[3:], "false"
            else:
                raise ConfigError(f"--{key} needs a value")
        if name not in _hints():
            raise _unknown(key, "command line: ")
        out[name] = value
        i += 1
    return out


def load_config(
    *,
    preset: str | None = None,
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    saved_run: bool = False,
) -> TrainConfig:
    """Defaults, then `preset`, then the YAML file `config`, then `overrides` (a mapping, or
    command-line words for `parse_overrides`).

    `saved_run`: `config` is a run directory's own config.yaml (as ``--resume`` reads it), which
    an older version may have written with renamed keys (`RENAMED_KEYS`): they are read under
    their new names, with a logged warning. Elsewhere an old key is a `ConfigError` naming the
    new one."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        _apply(values, PRESETS[preset], f"preset {preset}: ")
    if config is not None:
        import yaml

        path = Path(config)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of setting names to values")
        _apply(values, data, f"{path}: ", saved_run=saved_run)
    if overrides is not None:
        words = overrides if isinstance(overrides, Mapping) else parse_overrides(list(overrides))
        _apply(values, words, "")
    if not saved_run:  # a saved run's config.yaml holds every value it was trained with
        model = values.get("model", TrainConfig.model)
        for name, value in MODEL_DEFAULTS.get(model, {}).items():
            values.setdefault(name, value)
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        origin = f"{config}: " if config is not None else ""
        raise ConfigError(f"{origin}{exc}") from None
