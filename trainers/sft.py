"""Supervised fine-tuning on episodes: the first stage of the two-stage recipe (docs/pipeline.md).

The model learns the scaffold's format and a workflow from token-exact episodes (the expert's,
or resolved episodes distilled from a stronger model): the loss is

    L = CE(tokens the RL loss trains) + kl_coef * KL(student || base)

over exactly the positions whose ``loss_mask`` is 1 (what the policy generated; tool output,
prompts and templates are never trained on), normalised by the number of such tokens in the
optimizer step. The KL term is the full-vocabulary KL from the student's next-token distribution
to the frozen base model's (the LoRA adapter disabled), at the same positions: it keeps the
policy close to the base outside what the episodes teach. A share of each epoch (``replay_ratio``)
is general chat data from a local JSONL file (``{"messages": [...]}`` per line), trained on its
assistant turns, so that SFT on a narrow format forgets less of everything else.

The run directory is `swerepair train`'s: ``config.yaml`` (with an ``sft`` section), ``train.log``,
``metrics.jsonl`` (and TensorBoard), ``checkpoints/step-N/model`` (the LoRA adapter) and
``learning_curve.png``. Its adapter is what ``swerepair train --init-adapter`` stacks GRPO on and
``swerepair eval --adapter`` evaluates.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from swerepair.trainers.config import ConfigError, TrainConfig
from swerepair.trainers.metrics import MetricsLogger, _no_data, read_metrics
from swerepair.trainers.model import PolicyModel, build_policy_model
from swerepair.trainers.startup import check_model, check_output_dir

__all__ = ["BaseStates", "Example", "SFTSettings", "SFTTrainer", "chat_example", "load_episode_examples"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTSettings:
    """What the SFT stage trains on and how (the model, LoRA, optimizer and run directory are the
    `TrainConfig`'s).

    Attributes:
        episodes: JSONL files of episode records (``Episode.to_json()``: tokens and loss_mask).
        min_reward: keep episodes whose reward is at least this (None: all).
        replay: a JSONL file of general chat conversations (``{"messages": [...]}``), or None.
        replay_ratio: the share of each epoch's examples drawn from `replay` (0.2: one in five).
        kl_coef: lambda, the weight of KL(student || base).
        epochs: passes over the episodes.
        batch_size: examples per optimizer step.
        max_tokens: longer examples are cut to their first `max_tokens` tokens.
        base_cache_bytes: memory for the base model's hidden states at the trained positions,
            kept from an example's first pass so that later epochs skip the base's forward
            (`BaseStates`; about hidden size x 4 bytes per trained token); 0: recompute always.
    """

    episodes: tuple[str, ...]
    min_reward: float | None = 1.0
    replay: str | None = None
    replay_ratio: float = 0.2
    kl_coef: float = 0.05
    epochs: int = 2
    batch_size: int = 4
    max_tokens: int = 4096
    base_cache_bytes: int = 1 << 30

    def validate(self) -> None:
        if not self.episodes:
            raise ConfigError("sft needs at least one episodes file")
        if not 0 <= self.replay_ratio < 1:
            raise ConfigError(f"replay_ratio must be in [0, 1), got {self.replay_ratio}")
        if self.kl_coef < 0 or self.epochs < 1 or self.batch_size < 1 or self.max_tokens < 2:
            raise ConfigError("kl_coef must be >= 0, epochs and batch_size >= 1, max_tokens >= 2")
        if self.base_cache_bytes < 0:
            raise ConfigError(f"base_cache_bytes must be >= 0, got {self.base_cache_bytes}")


@dataclass(frozen=True)
class Example:
    """One training sequence: token ids and the mask of the ids that are trained (1)."""

    tokens: tuple[int, ...]
    mask: tuple[int, ...]
    source: str = "episode"

    @property
    def trained(self) -> int:
        return sum(self.mask)


def load_episode_examples(paths: Sequence[str | Path], min_reward: float | None, max_tokens: int) -> list[Example]:
    """Examples from episode JSONL files; a malformed line is an error naming ``file:line``."""
    examples = []
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                tokens, mask = record["tokens"], record["loss_mask"]
                if len(tokens) != len(mask):
                    raise ValueError("tokens and loss_mask differ in length")
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{n}: not a token-exact episode record: {exc}") from exc
            if min_reward is not None and float(record.get("reward") or 0.0) < min_reward:
                continue
            if sum(mask) == 0:
                continue
            examples.append(Example(tuple(tokens[:max_tokens]), tuple(mask[:max_tokens])))
    return examples


def chat_example(renderer: Any, messages: Sequence[dict[str, Any]], max_tokens: int) -> Example | None:
    """A chat conversation as an example trained on its assistant turns (their text and the
    template's end of turn), or None when the template re-renders earlier turns (a later render
    is not an extension of an earlier one)."""
    tokens: list[int] = []
    mask: list[int] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = renderer.encode(renderer.render(messages[:i], add_generation_prompt=True))
        after = renderer.encode(renderer.render(messages[: i + 1], add_generation_prompt=False))
        if before[: len(tokens)] != tokens or after[: len(before)] != before:
            return None
        mask += [0] * (len(before) - len(tokens)) + [1] * (len(after) - len(before))
        tokens = list(after)
    if not any(mask):
        return None
    return Example(tuple(tokens[:max_tokens]), tuple(mask[:max_tokens]), source="replay")


def _chunk_terms(h: Tensor, h_base: Tensor, weight: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy of `y` and KL(student || base) over one chunk of positions."""
    logits = (h @ weight.T).float()
    logp = torch.log_softmax(logits, dim=-1)
    with torch.no_grad():
        logp_base = torch.log_softmax((h_base @ weight.T).float(), dim=-1)
    ce = -logp.gather(-1, y[:, None]).sum()
    kl = (logp.exp() * (logp - logp_base)).sum()
    return ce, kl


class BaseStates:
    """The frozen base model's last hidden states at each example's trained positions, kept
    from the first time an example is seen so that later epochs skip the base model's forward
    (the base never changes during SFT: it is the model with the adapter disabled).

    `budget_bytes` bounds what is kept (float32, hidden size per trained token); past it, an
    example's states are computed each time as before. The states of an example do not depend
    on the other rows of its micro-batch (right padding, causal attention), so a cached row
    equals a recomputed one up to float rounding.
    """

    def __init__(self, budget_bytes: int = 1 << 30) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.states: dict[Example, Tensor] = {}
        self.hits = self.misses = 0

    def get(self, examples: Sequence[Example]) -> Tensor | None:
        """The states of every row of `examples` concatenated in row order, or None if any is missing."""
        found = [self.states.get(e) for e in examples]
        if any(h is None for h in found):
            self.misses += 1
            return None
        self.hits += 1
        return torch.cat([h for h in found if h is not None])

    def put(self, examples: Sequence[Example], states: Tensor, counts: Sequence[int]) -> None:
        """Keep each row's part of `states` (`counts`: trained positions per row) within the budget."""
        for e, h in zip(examples, torch.split(states, list(counts)), strict=True):
            size = h.numel() * h.element_size()
            if e not in self.states and self.used + size <= self.budget:
                self.states[e] = h.detach().clone()
                self.used += size


def sft_terms(
    pm: PolicyModel,
    examples: Sequence[Example],
    pad_id: int,
    chunk: int = 256,
    base_states: BaseStates | None = None,
) -> tuple[Tensor, Tensor, int]:
    """Summed CE and KL over the trained positions of `examples` (one forward of the student,
    one of the base unless `base_states` holds every row's), and their count."""
    length = max(len(e.tokens) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), length), dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.tokens)] = torch.tensor(e.tokens)
        attn[row, : len(e.tokens)] = 1
        mask[row, : len(e.mask)] = torch.tensor(e.mask)
    ids, attn, mask = ids.to(pm.device), attn.to(pm.device), mask.to(pm.device)
    keep = mask[:, 1:].bool()  # hidden at t predicts token t + 1
    targets = ids[:, 1:][keep]
    h_base = base_states.get(examples) if base_states is not None else None
    if h_base is None:
        with torch.no_grad(), pm.reference_policy():
            h_base = pm.hidden_states(ids, attn)[:, :-1][keep]
        if base_states is not None:
            base_states.put(examples, h_base, keep.sum(dim=1).tolist())
    h = pm.hidden_states(ids, attn)[:, :-1][keep]
    ce = torch.zeros((), device=pm.device)
    kl = torch.zeros((), device=pm.device)
    with pm.lm_head_weight() as weight:
        for start in range(0, h.shape[0], chunk):
            part = slice(start, start + chunk)
            c, k = checkpoint(_chunk_terms, h[part], h_base[part], weight, targets[part], use_reentrant=False)
            ce, kl = ce + c, kl + k
    return ce, kl, int(keep.sum())


class SFTTrainer:
    """`train()` runs the SFT stage (module docstring); `evaluate(examples)` measures its loss."""

    def __init__(self, config: TrainConfig, settings: SFTSettings) -> None:
        settings.validate()
        if config.finetune != "lora":
            raise ConfigError("sft trains a LoRA adapter (finetune lora)")
        self.config, self.settings = config, settings
        self.run_dir = Path(config.output_dir)
        self.examples = load_episode_examples(settings.episodes, settings.min_reward, settings.max_tokens)
        if not self.examples:
            raise ConfigError(
                f"no episodes to train on in {', '.join(settings.episodes)} (min_reward {settings.min_reward})"
            )
        # the learning-rate schedule's horizon is this run's number of optimizer steps
        config = config.replace(max_steps=self.steps_per_epoch(len(self.examples), settings) * settings.epochs)
        self.config = config
        check_model(config.model)  # before anything is written
        check_output_dir(config)
        self._prepare_run_dir()
        from swerepair.trainers.grpo import _attach_log_file

        self._handler: logging.Handler | None = _attach_log_file(self.run_dir / "train.log")
        try:
            self.pm = build_policy_model(config)
            tokenizer = self.pm.tokenizer
            self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
            self.replay = self._load_replay()
            self.base_states = BaseStates(settings.base_cache_bytes) if settings.base_cache_bytes else None
        except BaseException as exc:
            # why, in train.log only (the caller prints one line); what the start wrote but the log goes
            info = (type(exc), exc, exc.__traceback__)
            record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "the run could not start: %s", (exc,), info)
            self._handler.handle(record)
            self.close()
            (self.run_dir / "config.yaml").unlink(missing_ok=True)
            raise

    @staticmethod
    def steps_per_epoch(episodes: int, settings: SFTSettings) -> int:
        """Optimizer steps of one epoch: the episodes and their share of replay examples."""
        replay = round(episodes * settings.replay_ratio / (1 - settings.replay_ratio)) if settings.replay else 0
        return math.ceil((episodes + replay) / settings.batch_size)

    # -- set-up ------------------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        # a directory holding only a failed start's train.log holds no run
        if self.run_dir.exists() and any(p.name != "train.log" for p in self.run_dir.iterdir()):
            if not self.config.overwrite:
                raise ConfigError(f"{self.run_dir} already holds a run; pick another --output-dir or pass --overwrite")
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        import yaml

        data = {**asdict(self.config), "sft": {**asdict(self.settings), "episodes": list(self.settings.episodes)}}
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def _load_replay(self) -> list[Example]:
        if not self.settings.replay or self.settings.replay_ratio == 0:
            return []
        from swerepair.agents.inference.chat import ChatRenderer

        renderer = ChatRenderer(self.pm.tokenizer)
        examples = []
        for n, line in enumerate(Path(self.settings.replay).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line)["messages"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f'{self.settings.replay}:{n}: expected {{"messages": [...]}}: {exc}') from exc
            example = chat_example(renderer, messages, self.settings.max_tokens)
            if example is not None:
                examples.append(example)
        if not examples:
            raise ConfigError(f"{self.settings.replay}: no conversation with an assistant turn")
        return examples

    def plan(self, epoch: int) -> list[list[Example]]:
        """One epoch's optimizer steps: every episode once and replay examples making up
        `replay_ratio` of the epoch, shuffled with the run's seed and the epoch."""
        rng = random.Random(f"{self.config.seed}:{epoch}")
        chosen = list(self.examples)
        if self.replay:
            ratio = self.settings.replay_ratio
            count = round(len(chosen) * ratio / (1 - ratio))
            chosen += [rng.choice(self.replay) for _ in range(count)]
        rng.shuffle(chosen)
        size = self.settings.batch_size
        return [chosen[i : i + size] for i in range(0, len(chosen), size)]

    # -- the loss ---------------------------------------------------------------------------------------
    def _micro(self, batch: Sequence[Example]) -> Iterator[list[Example]]:
        size = self.config.micro_batch_size
        for i in range(0, len(batch), size):
            yield list(batch[i : i + size])

    @torch.no_grad()
    def evaluate(self, examples: Sequence[Example] | None = None) -> dict[str, float]:
        """Mean CE and KL per trained token over `examples` (default: the training episodes)."""
        examples = list(examples if examples is not None else self.examples)
        self.pm.train_mode(False)
        ce = kl = 0.0
        tokens = 0
        for micro in self._micro(examples):
            c, k, n = sft_terms(self.pm, micro, self.pad_id, base_states=self.base_states)
            ce, kl, tokens = ce + float(c), kl + float(k), tokens + n
        return {"ce": ce / max(tokens, 1), "kl": kl / max(tokens, 1), "tokens": float(tokens)}

    def step(self, batch: Sequence[Example]) -> dict[str, float]:
        """One optimizer step on `batch`; its metrics."""
        started = time.monotonic()
        total = sum(max(0, sum(e.mask[1:])) for e in batch) or 1
        self.pm.train_mode(True)
        ce_sum = kl_sum = 0.0
        micros = list(self._micro(batch))
        for i, micro in enumerate(micros):
            ce, kl, _ = sft_terms(self.pm, micro, self.pad_id, base_states=self.base_states)
            loss = (ce + self.settings.kl_coef * kl) / total
            self.pm.backward(loss, last=i == len(micros) - 1)
            ce_sum, kl_sum = ce_sum + float(ce.detach()), kl_sum + float(kl.detach())
        lr = self.pm.lr
        grad_norm = self.pm.step()
        self.pm.train_mode(False)
        return {
            "sft/loss": (ce_sum + self.settings.kl_coef * kl_sum) / total,
            "sft/ce": ce_sum / total,
            "sft/kl": kl_sum / total,
            "sft/tokens": float(total),
            "sft/replay_fraction": sum(e.source == "replay" for e in batch) / len(batch),
            "train/lr": lr,
            "train/grad_norm": grad_norm,
            "time/training_s": time.monotonic() - started,
        }

    def train(self) -> list[dict[str, float]]:
        """Every epoch's steps; checkpoints at the end (and every ``save_every`` steps)."""
        records: list[dict[str, float]] = []
        plans = [self.plan(epoch) for epoch in range(self.settings.epochs)]
        total_steps = sum(len(p) for p in plans)
        log.info(
            "sft: %d episodes, %d replay examples, %d epochs, %d steps",
            len(self.examples),
            len(self.replay),
            self.settings.epochs,
            total_steps,
        )
        bar = _bar(total_steps) if self.config.progress else None
        step = 0
        try:
            with MetricsLogger(self.run_dir, tensorboard=self.config.tensorboard) as metrics:
                for epoch, plan in enumerate(plans):
                    for batch in plan:
                        step += 1
                        record = {"epoch": float(epoch + 1), **self.step(batch)}
                        metrics.log(step, record)
                        records.append(record)
                        log.info(
                            "step %d: loss %.4f ce %.4f kl %.4f",
                            step,
                            record["sft/loss"],
                            record["sft/ce"],
                            record["sft/kl"],
                        )
                        if bar is not None:
                            bar.set_postfix(loss=f"{record['sft/loss']:.3f}", refresh=False)
                            bar.update(1)
                        if self.config.save_every and step % self.config.save_every == 0 and step < total_steps:
                            self.pm.save(self.run_dir / "checkpoints" / f"step-{step:06d}")
            self.pm.save(self.run_dir / "checkpoints" / f"step-{step:06d}")
            plot_sft_curve(self.run_dir / "metrics.jsonl", self.run_dir / "learning_curve.png")
        finally:
            if bar is not None:
                bar.close()
            self.close()
        return records

    def close(self) -> None:
        """Detach the run's log file (idempotent)."""
        handler, self._handler = getattr(self, "_handler", None), None
        if handler is not None:
            from swerepair.trainers.grpo import _detach_log_file

            _detach_log_file(handler)


def _bar(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    import sys

    return tqdm(total=total, desc="sft", unit="step", file=sys.stderr, dynamic_ncols=True)


def plot_sft_curve(metrics_path: str | Path, png_path: str | Path) -> Path:
    """The SFT run's loss, CE and KL per step, and its learning rate and gradient norm."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = read_metrics(metrics_path)
    fig = Figure(figsize=(11, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"SFT: {metrics_path}")
    left, right = fig.subplots(1, 2)
    steps = [float(r["step"]) for r in records if "sft/loss" in r]
    if not steps:
        _no_data(left)
        _no_data(right)
    else:
        for key in ("sft/loss", "sft/ce"):
            left.plot(steps, [r[key] for r in records if "sft/loss" in r], "o-", label=key, markersize=3)
        twin = left.twinx()
        twin.plot(
            steps,
            [r["sft/kl"] for r in records if "sft/loss" in r],
            "s--",
            color="tab:red",
            label="sft/kl",
            markersize=3,
        )
        twin.set_ylabel("KL per token (nats)")
        left.set_ylabel("per trained token (nats)")
        left.set_xlabel("step")
        left.legend(loc="upper right", fontsize="small")
        right.plot(
            steps, [r["train/grad_norm"] for r in records if "sft/loss" in r], "o-", label="grad norm", markersize=3
        )
        right.set_xlabel("step")
        right.legend(loc="upper right", fontsize="small")
        right.twinx().plot(steps, [r["train/lr"] for r in records if "sft/loss" in r], color="tab:gray", label="lr")
    left.set_title("loss")
    right.set_title("gradient norm and learning rate")
    fig.savefig(str(png_path))
    return Path(png_path)


def total_tokens(examples: Sequence[Example]) -> int:
    """Trained tokens over `examples`."""
    return sum(e.trained for e in examples)
