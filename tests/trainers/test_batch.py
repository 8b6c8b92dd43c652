"""Episodes to micro-batch tensors: padding, the one-position shift of targets and loss mask, the
row-major order of old logprobs, splitting, and alignment with `masked_token_logprobs`."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from swerepair.core import Episode  # noqa: E402
from swerepair.trainers.batch import make_micro_batch, micro_batches  # noqa: E402
from swerepair.trainers.loss import masked_token_logprobs  # noqa: E402

PAD = 99


def episode(name: str, tokens: list[int], mask: list[int], logprobs: list[float] | None = None) -> Episode:
    """An episode whose k-th generated token has logprob -(k + 1) / 10 - offset unless given."""
    if logprobs is None:
        base = sum(map(ord, name)) / 1000
        logprobs = [-(k + 1) / 10 - base for k in range(sum(mask))]
    return Episode(instance_id=name, messages=[], tokens=tokens, loss_mask=mask, logprobs=logprobs)


# two turns: prompt, generated, tool answer, generated
EP_A = episode("a", [1, 2, 3, 10, 11, 4, 5, 12, 13], [0, 0, 0, 1, 1, 0, 0, 1, 1])
EP_B = episode("b", [6, 7, 20, 21, 22], [0, 0, 1, 1, 1])
EP_C = episode("c", [8, 30, 9], [0, 1, 0])  # ends with a template token after the generated one


def generated_positions(ep: Episode) -> list[int]:
    return [i for i, m in enumerate(ep.loss_mask) if m]


def test_make_micro_batch_tensors():
    eps = [EP_A, EP_B, EP_C]
    mb = make_micro_batch(eps, [0.5, -1.0, 2.0], pad_id=PAD)
    width = len(EP_A.tokens)
    assert mb.size == 3
    for name in ["input_ids", "attention_mask", "targets", "loss_mask"]:
        assert getattr(mb, name).shape == (3, width), name
        assert getattr(mb, name).dtype == torch.long, name
    assert mb.num_tokens == sum(len(ep.logprobs) for ep in eps) == 4 + 3 + 1

    for row, ep in enumerate(eps):
        n = len(ep.tokens)
        assert mb.input_ids[row].tolist() == ep.tokens + [PAD] * (width - n)  # right padding
        assert mb.attention_mask[row].tolist() == [1] * n + [0] * (width - n)
        assert mb.targets[row, : n - 1].tolist() == ep.tokens[1:]  # shifted left by one
        assert mb.loss_mask[row].tolist() == ep.loss_mask[1:] + [0] * (width - n + 1)
        for t in range(width):  # position t scored iff token t + 1 was generated
            scored = t + 1 < n and ep.loss_mask[t + 1] == 1
            assert bool(mb.loss_mask[row, t]) == scored, (row, t)
            if scored:
                assert mb.targets[row, t] == ep.tokens[t + 1]
                assert mb.attention_mask[row, t] == 1
        assert not mb.loss_mask[row][mb.attention_mask[row] == 0].any()  # padding is never scored

    expected_old = [lp for ep in eps for lp in ep.logprobs]
    assert mb.old_logp.dtype == torch.float32
    assert torch.equal(mb.old_logp, torch.tensor(expected_old, dtype=torch.float32))
    assert mb.seq_index.tolist() == [0] * 4 + [1] * 3 + [2]
    assert torch.equal(mb.seq_index, mb.loss_mask.nonzero()[:, 0])
    assert mb.advantages.dtype == torch.float32
    assert mb.advantages.tolist() == [0.5, -1.0, 2.0]

    # the k-th scored position of a row targets the k-th generated token, whose old logprob is k-th
    flat_targets = mb.targets[mb.loss_mask.bool()].tolist()
    assert flat_targets == [ep.tokens[i] for ep in eps for i in generated_positions(ep)]


def test_single_episode_and_device_copy():
    mb = make_micro_batch([EP_B], [1.5], pad_id=0)
    assert mb.input_ids.tolist() == [EP_B.tokens]
    assert mb.attention_mask.tolist() == [[1] * 5]
    assert mb.targets.tolist() == [[7, 20, 21, 22, 0]]  # the last position targets the pad id
    assert mb.loss_mask.tolist() == [[0, 1, 1, 1, 0]]
    moved = mb.to(torch.device("cpu"))
    assert moved.size == 1 and torch.equal(moved.old_logp, mb.old_logp)


@pytest.mark.parametrize(
    ("ep", "match"),
    [
        (episode("m", [1, 2, 3], [0, 1], [-0.1]), "loss mask"),
        (episode("l", [1, 2, 3], [0, 1, 1], [-0.1]), "logprobs"),
        (episode("l2", [1, 2, 3], [0, 1, 0], [-0.1, -0.2]), "logprobs"),
        (episode("f", [1, 2, 3], [1, 1, 0], [-0.1, -0.2]), "first token"),
    ],
)
def test_inconsistent_episode_raises(ep, match):
    with pytest.raises(ValueError, match=match) as info:
        make_micro_batch([EP_B, ep], [0.0, 0.0], pad_id=PAD)
    assert ep.instance_id in str(info.value)


def test_empty_micro_batch_raises():
    with pytest.raises(ValueError):
        make_micro_batch([], [], pad_id=PAD)


def _lengths_episodes() -> list[Episode]:
    lengths = [7, 3, 9, 3, 5, 12, 4]
    eps = []
    for i, n in enumerate(lengths):
        tokens = [100 * (i + 1) + j for j in range(n)]  # unique per episode
        mask = [0] + [1] * (n - 2) + [0]
        eps.append(episode(f"e{i}", tokens, mask))
    return eps


@pytest.mark.parametrize(("size", "sizes"), [(1, [1] * 7), (2, [2, 2, 2, 1]), (3, [3, 3, 1]), (7, [7]), (10, [7])])
def test_micro_batches_split(size, sizes):
    eps = _lengths_episodes()
    advantages = [0.1 * (i + 1) for i in range(len(eps))]
    mbs = micro_batches(eps, advantages, size=size, pad_id=PAD)
    assert [mb.size for mb in mbs] == sizes

    seen = []
    for mb in mbs:
        offset = 0
        for row in range(mb.size):
            n = int(mb.attention_mask[row].sum())
            tokens = mb.input_ids[row, :n].tolist()
            (index,) = [i for i, ep in enumerate(eps) if ep.tokens == tokens]
            seen.append(index)
            ep = eps[index]
            assert mb.advantages[row].item() == pytest.approx(advantages[index])  # its own advantage
            k = len(ep.logprobs)
            assert mb.old_logp[offset : offset + k].tolist() == pytest.approx(ep.logprobs)
            assert (mb.seq_index[offset : offset + k] == row).all()
            offset += k
        assert offset == mb.num_tokens
        assert mb.input_ids.shape[1] == max(int(n) for n in mb.attention_mask.sum(1))  # padded to its longest
    assert sorted(seen) == list(range(len(eps)))  # each episode exactly once

    # grouped by length: batches in ascending length, so no batch holds a longer one than the next
    lengths = [len(eps[i].tokens) for i in seen]
    assert lengths == sorted(lengths)


def test_micro_batches_grouping_reduces_padding_and_is_stable():
    eps = _lengths_episodes()
    mbs = micro_batches(eps, [0.0] * len(eps), size=2, pad_id=PAD)
    # lengths 3, 3 | 4, 5 | 7, 9 | 12: ties kept in input order (episodes 1 then 3)
    assert [mb.input_ids.shape[1] for mb in mbs] == [3, 5, 9, 12]
    assert mbs[0].input_ids[:, 0].tolist() == [200, 400]
    again = micro_batches(eps, [0.0] * len(eps), size=2, pad_id=PAD)
    assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(mbs, again, strict=True))


# -- alignment with the loss ------------------------------------------------------------------------
V, H = 40, 6


def _model(embedding_only: bool, seed: int = 0):
    """A stand-in LM: hidden = embedding(input_ids), or with `embedding_only` False a causal mix
    hidden[t] = embedding(token t) + 0.5 * hidden[t - 1] (so it depends on the whole prefix)."""
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(V, H, generator=gen, dtype=torch.float64)
    head = torch.randn(V, H, generator=gen, dtype=torch.float64)

    def hidden(ids):  # [B, T] -> [B, T, H]
        x = emb[ids]
        if embedding_only:
            return x
        out = torch.zeros_like(x)
        for t in range(x.shape[1]):
            out[:, t] = x[:, t] + (0.5 * out[:, t - 1] if t else 0)
        return out

    return hidden, head


def _naive_logprob(hidden, head, prefix: list[int], token: int) -> float:
    """log p(token | prefix), from the unpadded prefix alone."""
    h = hidden(torch.tensor([prefix]))[0, -1]
    return torch.log_softmax(h @ head.T, dim=-1)[token].item()


def _random_episodes(seed: int) -> list[Episode]:
    gen = torch.Generator().manual_seed(seed)
    eps = []
    for i, n in enumerate([11, 5, 8, 2]):
        tokens = torch.randint(0, V, (n,), generator=gen).tolist()
        mask = [0, *torch.randint(0, 2, (n - 1,), generator=gen).tolist()]
        if sum(mask) == 0:
            mask[-1] = 1
        eps.append(episode(f"r{i}", tokens, mask))
    return eps


@pytest.mark.parametrize("embedding_only", [True, False])
def test_scored_logprobs_are_those_of_the_generated_tokens(embedding_only):
    hidden, head = _model(embedding_only)
    eps = _random_episodes(seed=3)
    # what a sampling backend running the same model records: log p(k-th generated token | tokens before it)
    for ep in eps:
        ep.logprobs = [_naive_logprob(hidden, head, ep.tokens[:i], ep.tokens[i]) for i in generated_positions(ep)]

    for mbs in ([make_micro_batch(eps, [0.0] * len(eps), pad_id=0)], micro_batches(eps, [0.0] * 4, 2, pad_id=0)):
        for mb in mbs:
            h = hidden(mb.input_ids)
            logp, _ = masked_token_logprobs(h, head, mb.targets, mb.loss_mask, chunk_size=3)
            assert logp.shape == (mb.num_tokens,)
            # the policy's logprobs line up, token for token, with the recorded ones: ratio exactly 1
            torch.testing.assert_close(logp, mb.old_logp.double(), rtol=1e-6, atol=1e-6)
            # and each equals log_softmax(hidden[b, t] @ W.T)[targets[b, t]] at the scored positions
            positions = mb.loss_mask.nonzero().tolist()
            for k, (b, t) in enumerate(positions):
                expected = torch.log_softmax(h[b, t] @ head.T, dim=-1)[mb.targets[b, t]]
                assert logp[k].item() == pytest.approx(expected.item(), abs=1e-12)
                assert mb.seq_index[k] == b

    # a misaligned variant (targets not shifted) would not match: the test can tell
    mb = make_micro_batch(eps, [0.0] * len(eps), pad_id=0)
    wrong, _ = masked_token_logprobs(hidden(mb.input_ids), head, mb.input_ids, mb.loss_mask)
    assert not torch.allclose(wrong, mb.old_logp.double(), atol=1e-3)
