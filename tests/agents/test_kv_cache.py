"""KV reuse in the hf backend: the prefix cache, the in-place growing KV layers, and that
generation with them is what it was without (ids equal, logprobs within float tolerance)."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from swerepair.agents.inference.hf_backend import MIN_SHARED_TOKENS, HFBackend  # noqa: E402
from swerepair.agents.inference.kv_layers import growing_cache  # noqa: E402
from swerepair.agents.inference.models import load_model  # noqa: E402
from swerepair.agents.inference.prefix_cache import PrefixCache, common_prefix  # noqa: E402

np = pytest.importorskip("numpy")


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen3")


def kv(n: int, fill: float = 0.0, heads: int = 2, dim: int = 4, layers: int = 2):
    """Stand-in per-layer tensors for an entry of `n` positions (the cache only slices them)."""
    return [(torch.full((heads, n, dim), fill), torch.full((heads, n, dim), fill)) for _ in range(layers)]


def entry_bytes(n: int) -> int:
    return sum(k.numel() * 4 + v.numel() * 4 for k, v in kv(n))


# --- the prefix cache on its own ---------------------------------------------------------------


def test_common_prefix() -> None:
    a = np.array([1, 2, 3, 4])
    assert common_prefix(a, np.array([1, 2, 9])) == 2
    assert common_prefix(a, np.array([1, 2, 3, 4, 5])) == 4
    assert common_prefix(a, np.array([7])) == 0
    assert common_prefix(a, np.array([], dtype=np.int64)) == 0


def test_match_is_the_longest_common_prefix_over_entries_and_respects_the_limit() -> None:
    cache = PrefixCache(1 << 20)
    cache.insert([1, 2, 3, 4, 5], kv(5, 1.0))
    cache.insert([1, 2, 7, 8], kv(4, 2.0))
    layers, n = cache.match([1, 2, 3, 4, 9, 9])
    assert n == 4 and float(layers[0][0][0, 0, 0]) == 1.0  # shares 4 tokens with the first entry
    layers, n = cache.match([1, 2, 7, 8, 9])
    assert n == 4 and float(layers[0][0][0, 0, 0]) == 2.0
    assert cache.match([1, 2, 3, 4, 5], limit=4)[1] == 4  # at most all but the last token
    assert cache.match([9, 9]) == (None, 0)
    assert cache.match([1, 2, 3], limit=0) == (None, 0)


def test_an_entry_that_is_a_prefix_of_a_new_one_is_dropped_and_a_prefix_of_a_stored_one_not_kept() -> None:
    cache = PrefixCache(1 << 20)
    cache.insert([1, 2, 3], kv(3))
    cache.insert([1, 2, 3, 4, 5], kv(5))  # the turn after: it serves all the first one served
    assert len(cache) == 1 and cache.nbytes == entry_bytes(5)
    cache.insert([1, 2], kv(2))  # already covered
    assert len(cache) == 1
    cache.insert([1, 2, 9], kv(3))  # a sibling: both kept
    assert len(cache) == 2 and cache.nbytes == entry_bytes(5) + entry_bytes(3)


def test_least_recently_used_entries_are_evicted_to_hold_the_budget() -> None:
    cache = PrefixCache(entry_bytes(10) * 2)
    cache.insert([1] * 10, kv(10))
    cache.insert([2] * 10, kv(10))
    cache.match([1] * 11)  # [1]*10 is now the recently used one
    cache.insert([3] * 10, kv(10))
    assert cache.nbytes <= cache.max_bytes and cache.stats.evicted == 1
    assert cache.match([2] * 11)[1] == 0  # the least recently used went
    assert cache.match([1] * 11)[1] == 10 and cache.match([3] * 11)[1] == 10
    cache.insert([4] * 30, kv(30))  # larger than the whole budget: not stored, nothing evicted
    assert len(cache) == 2 and cache.stats.evicted == 1


def test_a_zero_budget_stores_nothing_and_clear_drops_everything() -> None:
    off = PrefixCache(0)
    off.insert([1, 2], kv(2))
    assert len(off) == 0 and not off.enabled
    cache = PrefixCache(1 << 20)
    cache.insert([1, 2], kv(2))
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0 and cache.stats.cleared == 1
    with pytest.raises(ValueError):
        PrefixCache(-1)


def test_growing_layers_equal_transformers_dynamic_cache(tiny) -> None:
    from transformers import DynamicCache

    model, _ = tiny
    ids = torch.randint(100, 1000, (2, 40))
    with torch.no_grad():
        out = model(input_ids=ids[:, :30], use_cache=True)
        prefix = [(layer.keys.clone(), layer.values.clone()) for layer in out.cache.layers]
        caches = [DynamicCache(prefix, config=model.config), growing_cache(len(prefix), 31, prefix)]
        logits = []
        for cache in caches:  # ten single-token steps, past the growing cache's first capacity
            rows = []
            for t in range(30, 40):
                step = model(input_ids=ids[:, t : t + 1], cache=cache, use_cache=True)
                rows.append(step.logits[:, -1])
            logits.append(torch.stack(rows))
        full = model(input_ids=ids).logits[:, 30:40].transpose(0, 1)
    assert caches[1].get_seq_length() == 40
    assert torch.allclose(logits[0], logits[1], atol=1e-6)
    assert torch.allclose(logits[1], full, atol=1e-4)


# --- the backend --------------------------------------------------------------------------------


def play(backend: HFBackend, prompt: list[int], *, rows: int = 4, turns: int = 3, seed: int = 0):
    """A group of `rows` episodes from one prompt, `turns` turns each; after every turn each
    row gets its own made-up tool answer (the shape of an agent's rollout). Returns the
    generations of every turn."""
    rng = random.Random(seed)
    seqs = [list(prompt) for _ in range(rows)]
    turns_out = []
    for _ in range(turns):
        gens = backend.generate(seqs)
        turns_out.append(gens)
        seqs = [
            s + list(g.token_ids) + [rng.randrange(100, 1000) for _ in range(rng.randrange(5, 60))]
            for s, g in zip(seqs, gens, strict=True)
        ]
    return turns_out


def prompt_of(length: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(100, 1000) for _ in range(length)]


def assert_same(a, b, tol: float = 1e-4) -> None:
    for turn_a, turn_b in zip(a, b, strict=True):
        for x, y in zip(turn_a, turn_b, strict=True):
            assert x.token_ids == y.token_ids and x.finish_reason == y.finish_reason and x.text == y.text
            assert max((abs(p - q) for p, q in zip(x.logprobs, y.logprobs, strict=True)), default=0.0) < tol


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generation_with_kv_reuse_equals_generation_without(tiny, temperature: float) -> None:
    model, tok = tiny
    prompt = prompt_of(200)

    def backend(**kw):
        return HFBackend(model, tok, temperature=temperature, max_new_tokens=12, seed=3, **kw)

    before = play(backend(cache_bytes=0, grow_in_place=False), prompt)  # the backend without reuse
    cached = backend()
    after = play(cached, prompt)
    assert_same(before, after)
    stats = cached.cache.stats
    assert stats.reused_tokens > 0 and stats.hit_rate > 0.8


def test_history_is_encoded_once_and_a_shared_prompt_once_per_group(tiny) -> None:
    model, tok = tiny
    prompt = prompt_of(300)
    plain = HFBackend(model, tok, temperature=0.0, max_new_tokens=8, cache_bytes=0)
    cached = HFBackend(model, tok, temperature=0.0, max_new_tokens=8)
    first_plain = plain.generate([prompt] * 6)
    first = cached.generate([prompt] * 6)
    assert [g.token_ids for g in first] == [g.token_ids for g in first_plain]
    assert plain.stats["encoded_tokens"] == 6 * 300
    # the shared 299 tokens once, then each row's last prompt token
    assert cached.stats["encoded_tokens"] == 299 + 6
    # the next turn: each row's history is served by its own entry; only new tokens are run
    extra = [[500 + i] * 20 for i in range(6)]
    nxt = [prompt + list(g.token_ids) + e for g, e in zip(first, extra, strict=True)]
    before = cached.stats["encoded_tokens"]
    cached.generate(nxt)
    # the new tool answers, and each row's last generated token (sampled, never fed)
    assert cached.stats["encoded_tokens"] - before == 6 * 20 + 6


def test_rows_sharing_less_than_the_threshold_are_not_encoded_apart(tiny) -> None:
    model, tok = tiny
    a, b = prompt_of(40, 1), prompt_of(40, 2)
    shared = [7] * (MIN_SHARED_TOKENS - 1)
    cached = HFBackend(model, tok, temperature=0.0, max_new_tokens=2)
    cached.generate([shared + a, shared + b])
    assert cached.stats["encoded_tokens"] == 2 * (len(shared) + 40)


def test_weight_changes_invalidate_the_cache(tiny) -> None:
    model, tok = load_model("tiny-qwen3")  # a private copy: its weights are changed here
    prompt = prompt_of(120)
    backend = HFBackend(model, tok, temperature=0.0, max_new_tokens=6)
    play(backend, prompt, rows=2, turns=2)
    assert len(backend.cache) > 0
    with torch.no_grad():  # an optimizer step writes the parameters in place
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = play(backend, prompt, rows=2, turns=2)
    assert backend.cache.stats.cleared == 1
    fresh = play(HFBackend(model, tok, temperature=0.0, max_new_tokens=6, cache_bytes=0), prompt, rows=2, turns=2)
    assert_same(fresh, after)
    backend.policy_version = 7  # a pushed version counts as new weights too
    backend.generate([prompt])
    assert backend.cache.stats.cleared == 2
    backend.reset_cache()
    assert len(backend.cache) == 0


def test_a_small_budget_holds_and_keeps_outputs(tiny) -> None:
    model, tok = tiny
    cfg = model.config
    per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim * 4
    budget = 400 * per_token  # about two rows' histories of four
    peaks: list[int] = []

    class Watched(HFBackend):
        def generate(self, prompts):
            out = super().generate(prompts)
            peaks.append(self.cache.nbytes)
            return out

    prompt = prompt_of(150)
    small = Watched(model, tok, temperature=0.0, max_new_tokens=10, cache_bytes=budget)
    out = play(small, prompt, rows=4, turns=3)
    assert max(peaks) <= budget and small.cache.stats.evicted > 0
    plain = HFBackend(model, tok, temperature=0.0, max_new_tokens=10, cache_bytes=0)
    assert_same(play(plain, prompt, rows=4, turns=3), out)
