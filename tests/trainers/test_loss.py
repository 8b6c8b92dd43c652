"""The fused GRPO loss equals a naive full-logits reference, in value and in gradients, and never
materialises a [tokens, vocab] logits tensor."""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch")

from torch.autograd.graph import saved_tensors_hooks  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

from swerepair.trainers.loss import LossConfig, grpo_loss, masked_token_logprobs  # noqa: E402

B, T, V, H = 3, 17, 50, 8
ADVANTAGES = [1.0, -0.7, 0.4]
TOL = {"rtol": 1e-9, "atol": 1e-9}  # float64: the two paths agree to rounding


# -- the naive reference: full logits, textbook formulas, one sequence at a time ----------------------
def naive_logprobs(hidden, weight, targets, temperature=1.0):
    """Full [B, T, V] logits; logprobs and entropies at every position."""
    logp_all = torch.log_softmax(hidden @ weight.T / temperature, dim=-1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def naive_loss(logp, old_logp, advantages, mask, cfg: LossConfig, ref_logp=None, entropy=None):
    """All arguments but `cfg` and `advantages` are [B, T]; the loss of the module docstring."""
    num_seqs, total_tokens = mask.shape[0], int(mask.sum())
    loss = 0.0
    for i in range(num_seqs):
        m = mask[i].bool()
        lp, old, adv = logp[i][m], old_logp[i][m], advantages[i]
        lo, hi = 1 - cfg.eps_low, 1 + cfg.eps_high
        if cfg.importance == "token":
            ratio = torch.exp(lp - old)
            terms = -torch.minimum(ratio * adv, ratio.clamp(lo, hi) * adv)
        else:
            ratio = torch.exp((lp - old).mean())
            terms = -torch.minimum(ratio * adv, ratio.clamp(lo, hi) * adv) * torch.ones_like(lp)
        if cfg.beta:
            d = ref_logp[i][m] - lp
            terms = terms + cfg.beta * (torch.exp(d) - d - 1)
        if cfg.entropy_coef:
            terms = terms - cfg.entropy_coef * entropy[i][m]
        if cfg.aggregation == "token_mean":
            loss = loss + terms.sum() / total_tokens
        elif cfg.aggregation == "seq_mean_token_sum":
            loss = loss + terms.sum() / cfg.token_sum_norm / num_seqs
        else:
            loss = loss + terms.mean() / num_seqs
    return loss


# -- data ---------------------------------------------------------------------------------------------
def make_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    weight = (0.7 * torch.randn(V, H, generator=g, dtype=torch.float64)).requires_grad_()
    targets = torch.randint(0, V, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.long)
    mask[0, 3:8] = 1  # two assistant turns
    mask[0, 11:16] = 1
    mask[1, 5:17] = 1
    mask[2, 9] = 1  # a single generated token
    with torch.no_grad():
        logp, _ = naive_logprobs(hidden, weight, targets)
        # ratios well outside both clip edges, per token and per sequence (offsets for GSPO)
        offsets = torch.tensor([[-0.5], [0.5], [0.05]], dtype=torch.float64)
        old_logp = logp + offsets + 0.6 * (2 * torch.rand(B, T, generator=g, dtype=torch.float64) - 1)
        ref_logp = logp + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    advantages = torch.tensor(ADVANTAGES, dtype=torch.float64)
    return hidden, weight, targets, mask, old_logp, ref_logp, advantages


def fused(hidden, weight, targets, mask, old_logp, ref_logp, advantages, cfg, chunk_size=4, temperature=1.0):
    keep = mask.bool()
    logp, entropy = masked_token_logprobs(
        hidden, weight, targets, mask, chunk_size=chunk_size, temperature=temperature, with_entropy=True
    )
    seq_index = mask.nonzero()[:, 0]
    return grpo_loss(
        logp, old_logp[keep], advantages, seq_index, mask.shape[0], cfg, ref_logp=ref_logp[keep], entropy=entropy
    )


def grads(loss, hidden, weight):
    return torch.autograd.grad(loss, (hidden, weight))


CONFIGS = [
    LossConfig(eps_low=eps[0], eps_high=eps[1], beta=beta, entropy_coef=ent, aggregation=agg, importance=imp)
    for agg, imp, eps, beta, ent in itertools.product(
        ["token_mean", "seq_mean_token_sum", "seq_mean_token_mean"],
        ["token", "sequence"],
        [(0.2, 0.28), (0.05, 0.1)],
        [0.0, 0.1],
        [0.0, 0.01],
    )
]


# -- tests --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg", CONFIGS, ids=lambda c: f"{c.aggregation}-{c.importance}-{c.eps_low}-{c.beta}-{c.entropy_coef}"
)
def test_fused_equals_naive_in_value_and_gradients(cfg: LossConfig) -> None:
    hidden, weight, targets, mask, old_logp, ref_logp, adv = make_batch()
    loss, metrics = fused(hidden, weight, targets, mask, old_logp, ref_logp, adv, cfg)
    logp, entropy = naive_logprobs(hidden, weight, targets)
    expected = naive_loss(logp, old_logp, adv, mask, cfg, ref_logp, entropy)
    torch.testing.assert_close(loss, expected, **TOL)
    for got, want in zip(grads(loss, hidden, weight), grads(expected, hidden, weight), strict=True):
        torch.testing.assert_close(got, want, **TOL)
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0 < metrics["clip_fraction"] < 1  # both branches are exercised


def test_clip_is_active_at_both_edges() -> None:
    hidden, weight, targets, mask, old_logp, *_ = make_batch()
    with torch.no_grad():
        logp, _ = naive_logprobs(hidden, weight, targets)
    ratio = torch.exp(logp - old_logp)[mask.bool()]
    assert (ratio < 0.8).any() and (ratio > 1.28).any()
    seq_ratio = [torch.exp((logp - old_logp)[i][mask[i].bool()].mean()).item() for i in range(B)]
    assert seq_ratio[0] > 1.28 and seq_ratio[1] < 0.8  # GSPO: A > 0 clipped high, A < 0 clipped low


def test_seq_mean_token_sum_with_a_constant_normaliser() -> None:
    cfg = LossConfig(aggregation="seq_mean_token_sum", token_sum_norm=16.0, beta=0.1, entropy_coef=0.01)
    hidden, weight, targets, mask, old_logp, ref_logp, adv = make_batch(1)
    loss, _ = fused(hidden, weight, targets, mask, old_logp, ref_logp, adv, cfg)
    logp, entropy = naive_logprobs(hidden, weight, targets)
    torch.testing.assert_close(loss, naive_loss(logp, old_logp, adv, mask, cfg, ref_logp, entropy), **TOL)


def test_masked_positions_get_exactly_zero_gradient() -> None:
    hidden, weight, targets, mask, old_logp, ref_logp, adv = make_batch()
    cfg = LossConfig(beta=0.1, entropy_coef=0.01)
    loss, _ = fused(hidden, weight, targets, mask, old_logp, ref_logp, adv, cfg)
    (grad_hidden,) = torch.autograd.grad(loss, hidden)
    assert (grad_hidden[~mask.bool()] == 0).all()
    assert (grad_hidden[mask.bool()] != 0).any(dim=-1).all()


@pytest.mark.parametrize("importance", ["token", "sequence"])
def test_chunk_size_does_not_change_the_result(importance: str) -> None:
    hidden, weight, targets, mask, old_logp, ref_logp, adv = make_batch()
    cfg = LossConfig(beta=0.1, entropy_coef=0.01, importance=importance)
    n = int(mask.sum())
    results = []
    for chunk_size in (1, 4, n, 1024):
        loss, _ = fused(hidden, weight, targets, mask, old_logp, ref_logp, adv, cfg, chunk_size=chunk_size)
        results.append((loss, *grads(loss, hidden, weight)))
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            torch.testing.assert_close(got, want, **TOL)


def test_temperature_and_no_grad_path() -> None:
    hidden, weight, targets, mask, *_ = make_batch()
    want_logp, want_entropy = naive_logprobs(hidden, weight, targets, temperature=0.7)
    logp, entropy = masked_token_logprobs(
        hidden, weight, targets, mask, chunk_size=4, temperature=0.7, with_entropy=True
    )
    torch.testing.assert_close(logp, want_logp[mask.bool()], **TOL)
    torch.testing.assert_close(entropy, want_entropy[mask.bool()], **TOL)
    with torch.no_grad():  # how the caller computes old / reference logprobs: no checkpointing
        logp_ng, entropy_ng = masked_token_logprobs(hidden, weight, targets, mask, chunk_size=4, temperature=0.7)
    assert entropy_ng is None and not logp_ng.requires_grad
    torch.testing.assert_close(logp_ng, want_logp[mask.bool()], **TOL)


@pytest.mark.parametrize("importance", ["token", "sequence"])
def test_metrics_on_policy(importance: str) -> None:
    hidden, weight, targets, mask, _, ref_logp, adv = make_batch()
    logp, entropy = masked_token_logprobs(hidden, weight, targets, mask, with_entropy=True)
    cfg = LossConfig(beta=0.1, entropy_coef=0.01, importance=importance)
    keep = mask.bool()
    loss, metrics = grpo_loss(
        logp, logp.detach(), adv, mask.nonzero()[:, 0], B, cfg, ref_logp=ref_logp[keep], entropy=entropy
    )
    assert set(metrics) >= {"clip_fraction", "kl", "entropy", "ratio_mean", "ratio_max", "kl_old"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["clip_fraction"] == 0
    assert metrics["ratio_mean"] == pytest.approx(1) and metrics["ratio_max"] == pytest.approx(1)
    assert metrics["kl_old"] == pytest.approx(0) and metrics["kl"] > 0 and metrics["entropy"] > 0
    loss.backward()
    assert torch.isfinite(hidden.grad).all() and torch.isfinite(weight.grad).all()


def test_gspo_clip_fraction_counts_sequences() -> None:
    hidden, weight, targets, mask, old_logp, ref_logp, adv = make_batch()
    _, metrics = fused(hidden, weight, targets, mask, old_logp, ref_logp, adv, LossConfig(importance="sequence"))
    assert metrics["clip_fraction"] * B == pytest.approx(round(metrics["clip_fraction"] * B))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="aggregation"):
        LossConfig(aggregation="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="importance"):
        LossConfig(importance="seq")  # type: ignore[arg-type]
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(x, x, torch.zeros(1), torch.zeros(3, dtype=torch.long), 1, LossConfig(beta=0.1))
    with pytest.raises(ValueError, match="entropy"):
        grpo_loss(x, x, torch.zeros(1), torch.zeros(3, dtype=torch.long), 1, LossConfig(entropy_coef=0.1))
    with pytest.raises(ValueError, match="no masked tokens"):
        grpo_loss(x[:0], x[:0], torch.zeros(1), torch.zeros(0, dtype=torch.long), 1, LossConfig())


# -- memory: no [tokens, vocab] tensor, forward or backward ---------------------------------------------
class LargestAllocation(TorchDispatchMode):
    """Records the largest storage (in elements) that any op produces, forward and backward."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.untyped_storage().nbytes() // t.element_size())
        return out


def test_no_full_logits_tensor_is_ever_allocated() -> None:
    b, t, v, h, chunk = 2, 512, 50_000, 64, 64
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(b, t, h, generator=g, requires_grad=True)
    weight = (0.1 * torch.randn(v, h, generator=g)).requires_grad_()
    targets = torch.randint(0, v, (b, t), generator=g)
    mask = (torch.arange(t) % 4 == 0).long().expand(b, t)  # a quarter of the positions: N = 256 > chunk
    n = int(mask.sum())
    old_logp = torch.full((n,), -math.log(v)) + 0.1 * torch.randn(n, generator=g)
    adv = torch.tensor([1.0, -1.0])
    cfg = LossConfig(beta=0.1, entropy_coef=0.01)

    def pack(x: torch.Tensor) -> torch.Tensor:  # what the graph keeps for backward, the weight itself aside
        if x.untyped_storage().data_ptr() != weight.untyped_storage().data_ptr():
            saved.append(x.numel())
        return x

    # Tensors saved inside a checkpointed chunk go to the checkpoint's own hooks, not to `pack`: `pack`
    # sees the chunks' inputs and everything outside. It bounds what is held between forward and backward
    # (chunked logits without checkpointing would fail it); LargestAllocation bounds every allocation.
    saved: list[int] = []
    with saved_tensors_hooks(pack, lambda x: x), LargestAllocation() as mode:
        logp, entropy = masked_token_logprobs(hidden, weight, targets, mask, chunk_size=chunk, with_entropy=True)
        loss, _ = grpo_loss(logp, old_logp, adv, mask.nonzero()[:, 0], b, cfg, old_logp, entropy)
        loss.backward()
    assert max(saved) < 2 * chunk * v and sum(saved) < 2 * chunk * v
    assert mode.largest < 2 * chunk * v  # the backward's recomputation included
    assert hidden.grad is not None and weight.grad is not None

    saved.clear()  # the detectors do see a full logits tensor
    with saved_tensors_hooks(pack, lambda x: x), LargestAllocation() as mode:
        naive_logprobs(hidden, weight, targets)[0].sum().backward()
    assert max(saved) >= b * t * v and mode.largest >= b * t * v
