"""The GRPO policy-gradient loss over the assistant-generated tokens of a batch of episodes.

Textbook GRPO (DeepSeekMath, Shao et al. 2024) maximises, over a group of G sampled outputs o_i with
advantages A_i,

    1/G Σ_i 1/|o_i| Σ_t [ min(r_it A_i, clip(r_it, 1 - ε, 1 + ε) A_i) - β KL_it ],
    r_it = π_θ(o_it | ·) / π_old(o_it | ·),   KL_it = k3 estimate of KL(π_θ || π_ref) at token t.

`grpo_loss` returns the negation of that objective (a loss to minimise) and departs from it exactly as
follows (`LossConfig` defaults in brackets):

1. Asymmetric clip: clip(r, 1 - eps_low, 1 + eps_high), DAPO's "clip-higher" [0.2, 0.28]; eps_low ==
   eps_high is the textbook clip.
2. Optional sequence-level importance ratio (GSPO, ``importance="sequence"``) ["token", textbook]:
   r_i = exp(mean of (logp - old_logp) over sequence i's masked tokens), clipped per sequence; the
   sequence's clipped term is then the same at each of its tokens and goes through the aggregation below
   (``seq_mean_token_mean`` gives GSPO's objective exactly). GSPO uses far smaller eps (3e-4, 4e-4).
3. Optional KL penalty [beta=0: off, as in DAPO and Dr. GRPO]. When on, it is the textbook k3 estimator
   exp(ref - logp) - (ref - logp) - 1 per token, times beta, added to the loss and aggregated like the
   policy term. The caller computes the reference logprobs with the LoRA adapter disabled: the base model
   is the reference policy, so no second copy of the model is held.
4. Optional entropy bonus [entropy_coef=0: off; textbook GRPO has none]: - entropy_coef * H, where H is
   the entropy of the full next-token distribution at each masked position, aggregated like the policy term.
5. Aggregation ["token_mean"]:
   - ``token_mean``: sum over all masked tokens of the batch / number of masked tokens (DAPO);
   - ``seq_mean_token_sum``: per sequence, sum over its tokens / the constant ``token_sum_norm``, then mean
     over sequences (Dr. GRPO-like; Dr. GRPO sets the constant to the generation budget, e.g.
     max_new_tokens, so that no length-dependent factor enters the gradient) [token_sum_norm=1: plain sum];
   - ``seq_mean_token_mean``: per sequence mean, then mean over sequences (textbook GRPO).
   Means over sequences divide by ``num_seqs``: a sequence without masked tokens contributes zero.
6. Loss mask: only assistant-generated tokens (``Episode.loss_mask == 1``) count; prompts, tool outputs
   and template text are never scored. All assistant turns of a multi-turn episode form one sequence.
7. Advantages are per sequence (shape [B], e.g. group-normalised rewards, computed by the caller) and are
   broadcast to the sequence's tokens.

`masked_token_logprobs` computes logp (and the entropies) from the final hidden states, fused with the LM
head: only at masked positions, in chunks of positions under activation checkpointing, so neither the
forward nor the backward pass holds more than one [chunk_size, vocab] block of logits at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ["LossConfig", "grpo_loss", "masked_token_logprobs"]

Aggregation = Literal["token_mean", "seq_mean_token_sum", "seq_mean_token_mean"]
Importance = Literal["token", "sequence"]


@dataclass(frozen=True)
class LossConfig:
    """Hyper-parameters of `grpo_loss` (see the module docstring)."""

    eps_low: float = 0.2
    """The ratio is clipped below at 1 - eps_low."""
    eps_high: float = 0.28
    """The ratio is clipped above at 1 + eps_high (DAPO clip-higher when eps_high > eps_low)."""
    beta: float = 0.0
    """Coefficient of the k3 KL penalty to the reference policy; 0 disables it."""
    entropy_coef: float = 0.0
    """Coefficient of the entropy bonus; 0 disables it."""
    aggregation: Aggregation = "token_mean"
    """How per-token losses become one scalar: token_mean, seq_mean_token_sum or seq_mean_token_mean."""
    importance: Importance = "token"
    """Importance ratio per token (GRPO) or per sequence (GSPO)."""
    token_sum_norm: float = 1.0
    """Constant divisor of each sequence's token sum in seq_mean_token_sum (Dr. GRPO: the generation budget)."""

    def __post_init__(self) -> None:
        if self.aggregation not in ("token_mean", "seq_mean_token_sum", "seq_mean_token_mean"):
            raise ValueError(f"unknown aggregation {self.aggregation!r}")
        if self.importance not in ("token", "sequence"):
            raise ValueError(f"unknown importance {self.importance!r}")


def _chunk_logprobs(
    hidden: Tensor, weight: Tensor, targets: Tensor, temperature: float, with_entropy: bool
) -> tuple[Tensor, Tensor | None]:
    """Log-probs of `targets` (and entropies) for one chunk of positions: hidden [C, H] -> [C]."""
    logits = hidden @ weight.T
    if logits.dtype.itemsize < 4:  # bf16 / fp16 models: the softmax runs in fp32
        logits = logits.float()
    logp_all = torch.log_softmax(logits / temperature, dim=-1)
    logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
    return logp, entropy


def masked_token_logprobs(
    hidden: Tensor,
    lm_head_weight: Tensor,
    targets: Tensor,
    mask: Tensor,
    *,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs of `targets` at the masked positions, through the LM head, chunk by chunk.

    Args:
        hidden: final hidden states [B, T, H] (after the last norm).
        lm_head_weight: the LM head's weight [V, H].
        targets: [B, T]; ``targets[b, t]`` is the token whose logprob is wanted from ``hidden[b, t]``
            (the caller shifts: hidden at t predicts token t + 1).
        mask: [B, T], 1 where the token is scored (assistant-generated), else 0.
        chunk_size: positions per chunk; only one chunk's [chunk_size, V] logits (and their few same-sized
            temporaries) live at a time, in the forward and in the backward pass.
        temperature: the sampling temperature; logits are divided by it.
        with_entropy: also return the entropy of the full next-token distribution at each position.

    Returns:
        The N logprobs at the masked positions, in the row-major order of `mask` (the order of
        ``mask.nonzero()``), and their entropies (or None).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    keep = mask.bool()
    h, y = hidden[keep], targets[keep]  # [N, H], [N]: positions outside the mask get exactly zero gradient
    recompute = torch.is_grad_enabled() and (h.requires_grad or lm_head_weight.requires_grad)
    logps, entropies = [], []
    for h_chunk, y_chunk in zip(h.split(chunk_size), y.split(chunk_size), strict=True):
        args = (h_chunk, lm_head_weight, y_chunk, temperature, with_entropy)
        # checkpoint keeps no logits for backward: they are recomputed there, one chunk at a time
        logp, entropy = checkpoint(_chunk_logprobs, *args, use_reentrant=False) if recompute else _chunk_logprobs(*args)
        logps.append(logp)
        entropies.append(entropy)
    return torch.cat(logps), torch.cat(entropies) if with_entropy else None


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    seq_index: Tensor,
    num_seqs: int,
    config: LossConfig,
    ref_logp: Tensor | None = None,
    entropy: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The GRPO loss on the flat masked-token representation (what `masked_token_logprobs` returns).

    Args:
        logp: [N] logprobs of the masked tokens under the current policy (with gradient).
        old_logp: [N] logprobs under the policy that sampled them (e.g. ``Episode.logprobs``).
        advantages: [B] one advantage per sequence.
        seq_index: [N] the sequence each masked token belongs to (``mask.nonzero()[:, 0]``).
        num_seqs: B.
        config: the loss's hyper-parameters.
        ref_logp: [N] logprobs under the reference policy; needed when ``config.beta > 0``.
        entropy: [N] entropies at the masked positions; needed when ``config.entropy_coef > 0``.

    Returns:
        The scalar loss and metrics: ``clip_fraction`` (fraction of tokens, or of sequences for GSPO,
        where the clipped branch was taken), ``ratio_mean``, ``ratio_max`` (over the same units),
        ``kl_old`` (mean k3 estimate of KL(old || current)), ``pg_loss``, and ``kl`` (mean k3 to the
        reference) when `ref_logp` is given, ``entropy`` (mean) when `entropy` is given.
    """
    if logp.numel() == 0:
        raise ValueError("the batch has no masked tokens")
    if config.beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp")
    if config.entropy_coef > 0 and entropy is None:
        raise ValueError("entropy_coef > 0 needs entropy")

    def per_seq_sum(x: Tensor) -> Tensor:
        return x.new_zeros(num_seqs).index_add(0, seq_index, x)

    counts = per_seq_sum(torch.ones_like(logp))
    log_ratio = logp - old_logp.to(logp)
    advantages = advantages.to(logp)
    if config.importance == "sequence":  # GSPO: one ratio per sequence, the geometric mean of its tokens'
        ratio, adv = (per_seq_sum(log_ratio) / counts.clamp(min=1)).exp(), advantages
        present = counts > 0
    else:
        ratio, adv = log_ratio.exp(), advantages[seq_index]
        present = torch.ones_like(ratio, dtype=torch.bool)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - config.eps_low, 1 + config.eps_high) * adv
    pg = -torch.minimum(unclipped, clipped)
    if config.importance == "sequence":
        pg = pg[seq_index]  # the sequence's term at each of its tokens

    per_token = pg
    if ref_logp is not None:
        d = ref_logp.to(logp) - logp
        kl = d.exp() - d - 1  # k3 estimator of KL(π_θ || π_ref)
        if config.beta > 0:
            per_token = per_token + config.beta * kl
    if entropy is not None and config.entropy_coef > 0:
        per_token = per_token - config.entropy_coef * entropy

    if config.aggregation == "token_mean":
        loss = per_token.mean()
    elif config.aggregation == "seq_mean_token_sum":
        loss = (per_seq_sum(per_token) / config.token_sum_norm).sum() / num_seqs
    else:
        loss = (per_seq_sum(per_token) / counts.clamp(min=1)).sum() / num_seqs

    with torch.no_grad():
        stats = {
            "clip_fraction": (clipped < unclipped)[present].double().mean(),
            "ratio_mean": ratio[present].mean(),
            "ratio_max": ratio[present].max(),
            "kl_old": (log_ratio.exp() - 1 - log_ratio).mean(),
            "pg_loss": pg.mean(),
        }
        if ref_logp is not None:
            stats["kl"] = kl.mean()
        if entropy is not None:
            stats["entropy"] = entropy.mean()
        values = torch.stack([v.double() for v in stats.values()]).tolist()  # one device sync
    return loss, dict(zip(stats, values, strict=True))
