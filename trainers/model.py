"""The trained policy: a causal LM with a LoRA adapter (or all weights trainable), its optimizer
and learning-rate schedule, and the pieces the fused loss needs (final hidden states, LM head).

- LoRA goes through peft: rank, alpha, dropout, target modules and the decoder layers that get
  adapters (`TrainConfig.lora_layers`; ``last_third`` with rank 8, alpha 16 is the default).
  The reference policy of the KL penalty is the same model with the adapter disabled: no second
  copy of the weights exists. Full fine-tuning with ``beta > 0`` is the one case that keeps a
  frozen copy of the initial weights as the reference (there is no adapter to switch off).
- Gradient checkpointing recomputes decoder activations in the backward pass.
- AdamW over the trainable parameters only; linear warmup, then cosine decay (or constant).
- DeepSpeed ZeRO-2/3 (`TrainConfig.zero_stage`) wraps the same model, optimizer and schedule;
  it runs on CPU with gloo (world size 1 is enough) as well as on GPUs with NCCL. Outside a
  launcher, the process group is a single rank on a free local port, given to DeepSpeed directly
  (no ``MASTER_ADDR``/``MASTER_PORT``/``RANK`` in the environment); the ``LOCAL_RANK`` DeepSpeed
  reads while it works is set only inside `PolicyModel.launcher_env`.

Building the model changes no process-global random state: loading it and LoRA's random
initialisation (seeded with the run's seed) run inside `torch.random.fork_rng`. `RNGStates` is
how a trainer owns the process-global generators' states (python's, numpy's, torch's) while it
works, and only then.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from swerepair.trainers.config import ConfigError, TrainConfig, lora_layer_indices

__all__ = [
    "PolicyModel",
    "RNGStates",
    "build_policy_model",
    "lora_config",
    "lr_lambda",
    "resolve_device",
    "resolve_dtype",
]

log = logging.getLogger(__name__)


def lora_config(config: TrainConfig, num_layers: int) -> Any:
    """The peft ``LoraConfig`` of `config`'s LoRA settings for a model of `num_layers` layers."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        layers_to_transform=lora_layer_indices(config.lora_layers, num_layers),
        bias="none",
        task_type="CAUSAL_LM",
    )


def resolve_device(config: TrainConfig) -> torch.device:
    """The device `config.device` names (auto: cuda when available)."""
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is cuda but no CUDA device is available")
    return torch.device(config.device)


def resolve_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """The dtype `config.dtype` names (auto: bfloat16 on a GPU that supports it, else float32)."""
    if config.dtype == "float32":
        return torch.float32
    if config.dtype == "bfloat16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("dtype bfloat16 is not supported by this GPU")
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def lr_lambda(config: TrainConfig) -> Any:
    """The schedule as a multiplier of `config.lr` for `LambdaLR`: step s (0-based, the s-th
    optimizer step) -> factor. Linear warmup over `warmup_steps` (the first step already has a
    non-zero rate), then cosine from 1 to `min_lr_ratio` at `max_steps` (or constant)."""
    warmup, total, floor = config.warmup_steps, config.max_steps, config.min_lr_ratio
    cosine = config.lr_schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class PolicyModel:
    """The model being trained and everything that updates it.

    Attributes:
        config: the run's settings.
        model: what the optimizer updates (a peft model under LoRA, else the causal LM); under
            DeepSpeed, the engine wraps it.
        causal_lm: the causal LM itself (adapters, if any, injected in place): generation and
            the loss's forward go through it.
        tokenizer: its tokenizer.
        device, dtype: where and in what precision it runs.
        optimizer, scheduler: AdamW and its `LambdaLR` (DeepSpeed's wrappers under ZeRO).
        engine: the DeepSpeed engine, or None.
        reference: a frozen copy of the initial weights (full fine-tuning with beta > 0 only).
    """

    def __init__(self, config: TrainConfig, causal_lm: Any, tokenizer: Any, device: torch.device) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = next(causal_lm.parameters()).dtype
        self.engine: Any = None
        self.reference: Any = None
        self.lora = config.finetune == "lora"
        #: environment variables DeepSpeed reads while it works, set by `launcher_env` when absent
        self._launcher_env: dict[str, str] = {}
        num_layers = int(causal_lm.config.num_hidden_layers)
        if getattr(causal_lm.config, "final_logit_softcapping", None) or getattr(causal_lm.config, "logit_scale", None):
            raise ConfigError("the fused LM-head loss does not support logit soft-capping or scaling models")
        head = causal_lm.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise ConfigError("the fused LM-head loss does not support an LM head with a bias")
        if self.lora:
            from peft import get_peft_model

            # LoRA's A matrices are initialised randomly: from the run's seed, in a fork of the
            # global generators (of this device's), which are left as they were
            with torch.random.fork_rng(devices=_cuda_devices(device)):
                torch.random.default_generator.manual_seed(config.seed)
                if device.type == "cuda":
                    torch.cuda.manual_seed_all(config.seed)
                self.model = get_peft_model(causal_lm, lora_config(config, num_layers))
            self.causal_lm = self.model.get_base_model()
        else:
            self.model = causal_lm
            self.causal_lm = causal_lm
            if config.beta > 0:
                log.warning("full fine-tuning with beta > 0 keeps a frozen copy of the model as the reference")
                self.reference = copy.deepcopy(causal_lm).eval().requires_grad_(False)
        if config.gradient_checkpointing:
            enable = getattr(self.causal_lm, "activation_checkpointing_enable", None)  # transformers >= 5.x
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.causal_lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.causal_lm.config.use_cache = True  # generation wants the KV cache; training passes use_cache=False
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the model has no trainable parameters (check lora_target_modules)")
        self.optimizer: Any = torch.optim.AdamW(
            params,
            lr=config.lr,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
            foreach=device.type == "cuda",
        )
        self.scheduler: Any = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config))
        if config.zero_stage:
            self._init_deepspeed()
        self.model.eval()

    # -- DeepSpeed ---------------------------------------------------------------------------------
    def deepspeed_config(self) -> dict[str, Any]:
        """The DeepSpeed config generated from the settings (`deepspeed_config` merged over it)."""
        cfg: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": self.config.max_grad_norm,
            "zero_optimization": {"stage": self.config.zero_stage},
            "zero_allow_untested_optimizer": True,
            "bf16": {"enabled": self.dtype == torch.bfloat16},
            "steps_per_print": 1_000_000_000,
            "wall_clock_breakdown": False,
        }
        if self.config.deepspeed_config:
            extra = json.loads(Path(self.config.deepspeed_config).read_text(encoding="utf-8"))
            _merge(cfg, extra)
        return cfg

    def _init_deepspeed(self) -> None:
        if self.config.zero_stage == 3 and not self.lora:
            raise ConfigError(
                "zero_stage 3 with finetune=full is not supported: the fused loss reads the LM head's weight "
                "outside its module; use zero_stage 2, or LoRA"
            )
        import deepspeed
        import torch.distributed as dist

        # DeepSpeed reads LOCAL_RANK whenever its engine works (ZeRO-3's checks of its trace, too),
        # not only here: set while this model works (`launcher_env`) when no launcher set it
        self._launcher_env = {"LOCAL_RANK": "0", "WORLD_SIZE": "1"}
        if self.device.type == "cpu":
            self._launcher_env["DS_ACCELERATOR"] = "cpu"
        launched = all(key in os.environ for key in _LAUNCHER_KEYS)  # torchrun, deepspeed, accelerate
        with self.launcher_env():
            if not dist.is_initialized():
                backend = "gloo" if self.device.type == "cpu" else "nccl"
                if launched:  # the group the launcher's variables describe
                    deepspeed.init_distributed(dist_backend=backend)
                else:  # one process: its own group on a free local port, passed (not set in os.environ)
                    from swerepair.agents.inference.http import free_port

                    deepspeed.init_distributed(
                        dist_backend=backend,
                        auto_mpi_discovery=False,
                        init_method=f"tcp://127.0.0.1:{free_port()}",
                        rank=0,
                        world_size=1,
                    )
            engine, optimizer, _, scheduler = deepspeed.initialize(
                model=self.model,
                optimizer=self.optimizer,
                lr_scheduler=self.scheduler,
                config=self.deepspeed_config(),
            )
        self.engine, self.optimizer, self.scheduler = engine, optimizer, scheduler

    @contextlib.contextmanager
    def launcher_env(self) -> Iterator[None]:
        """A context in which the environment holds what DeepSpeed reads from it while it works
        (``LOCAL_RANK``, ``WORLD_SIZE``; ``DS_ACCELERATOR=cpu`` on CPU), each one that a launcher
        did not set; they are removed again on exit. Nothing without DeepSpeed; re-entrant."""
        added = {key: value for key, value in self._launcher_env.items() if key not in os.environ}
        os.environ.update(added)
        try:
            yield
        finally:
            for key, value in added.items():
                if os.environ.get(key) == value:
                    del os.environ[key]

    # -- the loss's forward --------------------------------------------------------------------------
    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Final hidden states [B, T, H] (after the last norm), without the LM head."""
        if self.engine is not None and hasattr(self.engine.optimizer, "clear_backward_seen_flag"):
            # DeepSpeedEngine.forward starts a new micro-step of ZeRO's gradient accumulation with
            # this call; this forward bypasses the engine (to skip the full-vocabulary logits), so
            # it makes the call itself, as the engine would
            self.engine.optimizer.clear_backward_seen_flag()
        decoder = self.causal_lm.get_decoder()
        out = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state

    @contextlib.contextmanager
    def lm_head_weight(self) -> Iterator[Tensor]:
        """The LM head's weight [V, H].

        Under ZeRO-3 the weight is partitioned outside its module's forward; it is gathered and
        copied (it is frozen there: ZeRO-3 needs LoRA), because the fused loss's backward pass
        recomputes its chunks after the gathering context has closed."""
        weight = self.causal_lm.get_output_embeddings().weight
        if self.engine is not None and self.config.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
                copy_ = weight.detach().clone()
            yield copy_
        else:
            yield weight

    @contextlib.contextmanager
    def reference_policy(self) -> Iterator[Any]:
        """A context in which `hidden_states` runs the reference policy (adapter disabled)."""
        if self.lora:
            with self.model.disable_adapter():
                yield self
        elif self.reference is not None:
            saved = self.causal_lm
            self.causal_lm = self.reference
            try:
                yield self
            finally:
                self.causal_lm = saved
        else:
            raise RuntimeError("full fine-tuning without beta > 0 keeps no reference policy")

    # -- updates ---------------------------------------------------------------------------------------
    def trainable_parameters(self) -> dict[str, Tensor]:
        """Name -> parameter, for every parameter the optimizer updates."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def backward(self, loss: Tensor, *, last: bool) -> None:
        """Accumulate the gradient of `loss` (already scaled to its share of the step)."""
        if self.engine is not None:
            self.engine.set_gradient_accumulation_boundary(last)
            self.engine.backward(loss, scale_wrt_gas=False)
        else:
            loss.backward()

    def step(self) -> float:
        """Clip, take one optimizer step and advance the schedule; return the gradient norm
        before clipping."""
        if self.engine is not None:
            self.engine.set_gradient_accumulation_boundary(True)
            self.engine.step()
            norm = self.engine.get_global_grad_norm()
            return float(norm) if norm is not None else float("nan")
        params = [p for p in self.trainable_parameters().values() if p.grad is not None]
        clip = self.config.max_grad_norm if self.config.max_grad_norm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip) if params else torch.tensor(0.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def zero_grad(self) -> None:
        """Drop accumulated gradients (after a step that was skipped)."""
        if self.engine is not None:
            self.engine.zero_grad()
        else:
            self.optimizer.zero_grad(set_to_none=True)

    @property
    def lr(self) -> float:
        """The learning rate the next step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def train_mode(self, on: bool) -> None:
        """Training mode (dropout, gradient checkpointing) for the loss; eval for generation."""
        (self.engine or self.model).train(on)

    # -- checkpoints ---------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the weights (the adapter, or the full model), the tokenizer and the optimizer and
        scheduler state into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.engine is not None:
            with self.launcher_env():
                self.engine.save_checkpoint(str(directory / "deepspeed"), tag="state")
            if self.config.zero_stage == 3 or _rank() != 0:
                return  # weights are sharded (the DeepSpeed checkpoint holds them), or rank 0 writes them
            self.model.save_pretrained(directory / "model")
        else:
            self.model.save_pretrained(directory / "model")
            torch.save(
                {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                directory / "optimizer.pt",
            )
        self.tokenizer.save_pretrained(directory / "model")

    def load(self, directory: Path) -> None:
        """Restore what `save` wrote (weights, optimizer, scheduler)."""
        if self.engine is not None:  # on another number of ranks: through DeepSpeed's universal checkpoint
            from swerepair.trainers.checkpoint import load_zero_checkpoint

            with self.launcher_env():
                load_zero_checkpoint(self.engine, directory / "deepspeed", tag="state")
            return
        if self.lora:
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights

            set_peft_model_state_dict(self.model, load_peft_weights(str(directory / "model"), device="cpu"))
        else:
            from transformers import AutoModelForCausalLM

            saved = AutoModelForCausalLM.from_pretrained(directory / "model", dtype=self.dtype)
            self.model.load_state_dict(saved.state_dict())
        state = torch.load(directory / "optimizer.pt", map_location=self.device, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


#: What a launcher (torchrun, the deepspeed launcher, accelerate) sets for every process.
_LAUNCHER_KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")


def _rank() -> int:
    """This process's rank in the default process group (0 without one)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _cuda_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose generators a model on `device` draws from (none on CPU)."""
    return list(range(torch.cuda.device_count())) if device.type == "cuda" else []


class RNGStates:
    """The states of the process-global random generators, owned by one trainer: python's
    `random`, numpy's global generator, torch's CPU generator and, with `cuda`, every CUDA
    device's. They start seeded with `seed` (as ``random.seed``, ``np.random.seed`` and
    ``torch.manual_seed`` would seed them).

    `active()` puts them into the process-global generators and, on exit, takes them back and
    restores the states it found there: whatever draws from the global generators inside (dropout,
    peft's initialisation, library code) draws from the trainer's own sequence, and code outside
    sees no change. `state_dict` and `load_state_dict` read and set them (inside `active()`, those
    of the global generators), in the format of a checkpoint's ``rng.pt``.
    """

    def __init__(self, seed: int, *, cuda: bool = False) -> None:
        self.seed = seed
        self.cuda = cuda
        self._state: dict[str, Any] | None = None  # None: seeded when first made active
        self._depth = 0

    @property
    def is_active(self) -> bool:
        """Whether these states are in the global generators now."""
        return self._depth > 0

    def _capture(self) -> dict[str, Any]:
        import numpy as np

        return {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if self.cuda else None,
        }

    def _apply(self, state: Mapping[str, Any]) -> None:
        import numpy as np

        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if self.cuda and state.get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["cuda"])

    def _seed_globals(self) -> None:
        import numpy as np

        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.random.default_generator.manual_seed(self.seed)
        if self.cuda:
            torch.cuda.manual_seed_all(self.seed)

    @contextlib.contextmanager
    def active(self) -> Iterator[RNGStates]:
        """A context in which the global generators hold these states (see the class); re-entrant."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        outside = self._capture()
        if self._state is None:
            self._seed_globals()
        else:
            self._apply(self._state)
        self._depth = 1
        try:
            yield self
        finally:
            self._depth = 0
            self._state = self._capture()
            self._apply(outside)

    def state_dict(self) -> dict[str, Any]:
        """The states: ``{"python", "numpy", "torch", "cuda"}`` (``cuda`` None without `cuda`)."""
        if not self.is_active:
            with self.active():
                return self._capture()
        return self._capture()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Set the states to `state` (what `state_dict` returned, here or in another process);
        its ``cuda`` entry is used only with `cuda`."""
        with self.active():
            self._apply(state)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def build_policy_model(config: TrainConfig) -> PolicyModel:
    """Load `config.model` on its device and dtype and make it trainable as `config` says."""
    from swerepair.agents.inference.models import load_model

    device = resolve_device(config)
    dtype = resolve_dtype(config, device)
    # whatever loading draws (building a built-in model the first time, say) is drawn from a fork:
    # the global generators, a trainer's while it builds, are as they were
    with torch.random.fork_rng(devices=_cuda_devices(device)):
        causal_lm, tokenizer = load_model(config.model, device=str(device), dtype=dtype)
    if config.init_adapter:
        # stage two: the SFT adapter becomes part of the frozen weights; the LoRA added below is
        # the only thing trained, and disabling it gives the SFT policy back (the reference)
        from swerepair.agents.inference.models import apply_adapter

        causal_lm = apply_adapter(causal_lm, config.init_adapter)
    return PolicyModel(config, causal_lm, tokenizer, device)
