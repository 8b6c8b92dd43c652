"""The ``hf`` backend: in-process generation with a `transformers` causal LM, CPU or GPU.

Prompts are token ids (what a token-exact episode has accumulated); a batch is left-padded
and decoded step by step with the model's KV cache. Each step samples from
``softmax(logits / temperature)`` truncated to the top-p nucleus (greedy when temperature is
0) and records the chosen token's logprob under ``log_softmax(logits / temperature)``, the
untruncated sampling distribution, which at temperature 1 is the model's own distribution:
what a trainer recomputes. A row stops at its first stop token (kept) or at
`max_new_tokens`.

**KV reuse.** An agent's prompt at turn k is its prompt at turn k-1 plus that turn's output and
the tool's answer, and a group's episodes share one system + issue prompt. The backend keeps
the keys and values of what it has run in a `PrefixCache` (bounded by `cache_bytes`, least
recently used entries evicted): each prompt is fed from the end of its longest stored prefix
(at most all but its last token), so an episode's history is encoded once, not at every turn;
rows of one batch that share a prefix the cache lacks (a group's first turn) have it encoded
once, on its own, before the batch. Within a call the KV states grow in place
(`swerepair.agents.inference.kv_layers`) rather than by concatenation. Outputs are those of
generation without reuse: the same ids (greedy, and sampled with the same seed) with logprobs
equal within float tolerance (about 1e-5: a position's keys are computed in another batch
shape). Stored states belong to the weights that computed them: the cache is dropped when
`policy_version` changes, when any parameter is written in place (an optimizer step, a
received weight update; seen through the tensors' version counters), or on `reset_cache`.
Models with sliding-window layers use transformers' `DynamicCache` and no reuse.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from swerepair.agents.inference.backend import Generation
from swerepair.agents.inference.prefix_cache import PrefixCache

__all__ = ["DEFAULT_CACHE_BYTES", "MIN_SHARED_TOKENS", "HFBackend", "stop_token_ids"]

#: default byte budget of the KV prefix cache (SmolLM2-135M in float32 holds 46 KB per token:
#: about 46k tokens, e.g. 10 episodes of 4.6k)
DEFAULT_CACHE_BYTES = 2 << 30

#: fewest new tokens a batch's shared prefix must hold to be encoded once on its own
MIN_SHARED_TOKENS = 16


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """The ids that end a turn: the tokenizer's eos, ``<|im_end|>`` if the vocabulary has it,
    and the model's generation-config eos ids."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end >= 0:
        ids.add(im_end)
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    return sorted(ids)


class HFBackend:
    """Batched sampling with a transformers model (see the module docstring).

    Args:
        model: a causal LM (``AutoModelForCausalLM``), on the device generation should run on.
        tokenizer: its tokenizer (for decoding, the pad and the stop tokens).
        temperature: sampling temperature; 0 means greedy.
        top_p: nucleus size for sampling (1.0 disables it).
        max_new_tokens: most tokens one turn may generate.
        seed: seed of the sampling RNG (``None``: nondeterministic).
        cache_bytes: byte budget of the KV prefix cache (`PrefixCache`); 0 turns it off, and
            every prompt is encoded from its first token.
        grow_in_place: keep a call's KV states in a buffer that grows in place
            (`swerepair.agents.inference.kv_layers`); False uses transformers' `DynamicCache`,
            which copies the whole cache at every generated token (with ``cache_bytes=0``: the
            backend as it was before KV reuse, for comparisons).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        seed: int | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        grow_in_place: bool = True,
    ) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.grow_in_place = grow_in_place
        self.stop_ids = stop_token_ids(tokenizer, model)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.stop_ids[0])
        self.generator = torch.Generator(device=model.device)
        if seed is not None:
            self.generator.manual_seed(seed)
        self.policy_version = 0
        #: KV states of sequences already run, reused by prompts that start with them
        text_config = model.config.get_text_config()
        self._num_layers = int(text_config.num_hidden_layers)
        kinds = set(getattr(text_config, "layer_types", None) or ["full_attention"])
        #: every layer attends to every earlier position: KV states can be stored and grown in place
        self._plain_layers = kinds == {"full_attention"}
        self.cache = PrefixCache(cache_bytes if self._plain_layers else 0)
        self._cache_key: tuple[int, int, int] | None = None
        #: tokens generated, prompt tokens run through the model (those not served by the
        #: cache) and seconds spent, for throughput logs
        self.stats = {"generated_tokens": 0, "encoded_tokens": 0, "seconds": 0.0}

    def _sample(self, logits: Any) -> tuple[Any, Any]:
        """Choose one token per row; return (ids, their logprobs under the sampling dist)."""
        import torch

        if self.temperature <= 0:
            logp = torch.log_softmax(logits.float(), dim=-1)
            ids = logits.argmax(dim=-1)
            return ids, logp.gather(-1, ids[:, None]).squeeze(-1)
        logp = torch.log_softmax(logits.float() / self.temperature, dim=-1)
        probs = logp.exp()
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            outside = sorted_p.cumsum(dim=-1) - sorted_p > self.top_p  # keep at least the top one
            sorted_p = sorted_p.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        ids = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        return ids, logp.gather(-1, ids[:, None]).squeeze(-1)

    def reset_cache(self) -> None:
        """Drop every stored KV state (call after changing the weights by means the backend
        cannot see: it notices `policy_version` changes and in-place parameter updates)."""
        self.cache.clear()

    def _weights_key(self) -> tuple[int, int, int]:
        """Changes whenever the weights may have: another model object, a new `policy_version`,
        or any in-place write to a parameter (an optimizer step, ``param.copy_``) through its
        version counter."""
        return (id(self.model), int(self.policy_version), sum(p._version for p in self.model.parameters()))

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Generation]:
        """Continue each prompt (token ids); one `Generation` per prompt, in order."""
        import torch

        if not prompts:
            return []
        start = time.monotonic()
        rows = [list(p) for p in prompts]
        if self.cache.enabled:
            key = self._weights_key()
            if key != self._cache_key:
                self.cache.clear()
                self._cache_key = key
        device = self.model.device
        stop = torch.tensor(self.stop_ids, device=device)
        out_ids: list[list[int]] = [[] for _ in rows]
        out_lp: list[list[float]] = [[] for _ in rows]
        batch = len(rows)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        with torch.no_grad():
            if self.cache.enabled:
                self._encode_shared_prefixes(rows)
            past, mask, step_ids, step_pos = self._inputs(rows, count=True, room=self.max_new_tokens)
            for _ in range(self.max_new_tokens):
                logits, past = self._forward(step_ids, mask, step_pos, past)
                ids, lps = self._sample(logits)
                active = ~done
                ids = torch.where(active, ids, torch.full_like(ids, self.pad_id))
                for i in torch.nonzero(active).flatten().tolist():
                    out_ids[i].append(int(ids[i]))
                    out_lp[i].append(float(lps[i]))
                done = done | torch.isin(ids, stop)
                if bool(done.all()):
                    break
                step_ids = ids[:, None]
                step_pos = step_pos[:, -1:] + 1
                # a token is attended to once fed: every row that sampled one this step
                mask = torch.cat([mask, active.long()[:, None]], dim=-1)
            if self.cache.enabled and past is not None:
                self._store([r + o for r, o in zip(rows, out_ids, strict=True)], past, mask)
        results = []
        for ids_i, lp_i in zip(out_ids, out_lp, strict=True):
            finished = bool(ids_i) and ids_i[-1] in self.stop_ids
            text = self.tokenizer.decode(ids_i, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            results.append(
                Generation(tuple(ids_i), tuple(lp_i), text, "stop" if finished else "length", self.policy_version)
            )
        self.stats["generated_tokens"] += sum(len(i) for i in out_ids)
        self.stats["seconds"] += time.monotonic() - start
        return results

    def _forward(self, input_ids: Any, mask: Any, positions: Any, past: Any) -> tuple[Any, Any]:
        """One forward pass with the KV cache: (the last column's logits, the grown cache)."""
        kwargs = {_cache_argument(): past}
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # the LM head only where the next token is sampled
            **kwargs,
        )
        grown = out.get("cache") if "cache" in out else out.get("past_key_values")
        return out.logits[:, -1, :], grown

    def _inputs(self, rows: list[list[int]], *, count: bool = False, room: int = 0) -> tuple[Any, Any, Any, Any]:
        """The first forward pass's ``(past, attention mask, input ids, position ids)`` for
        `rows`: each row's longest stored prefix (at most all but its last token) is laid out
        in `past`, left-padded to the longest one, and only the rest is fed, right-aligned so
        that every row's last prompt token is the batch's last column. Padding (between or
        before a row's parts) is masked out; positions count the row's real tokens. The cache
        has room for `room` more positions before it must grow."""
        import torch

        device = self.model.device
        matches = [self.cache.match(r, limit=len(r) - 1) if self.cache.enabled else (None, 0) for r in rows]
        if count:
            for r, (_, n) in zip(rows, matches, strict=True):
                self.cache.record(n, len(r) - n)
        reuse = [n for _, n in matches]
        width_past = max(reuse)
        width = max(len(r) - n for r, n in zip(rows, reuse, strict=True))
        batch = len(rows)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((batch, width_past + width), dtype=torch.long, device=device)
        positions = torch.zeros((batch, width), dtype=torch.long, device=device)
        self.stats["encoded_tokens"] += sum(len(r) - n for r, n in zip(rows, reuse, strict=True))
        for i, (r, n) in enumerate(zip(rows, reuse, strict=True)):
            rest = r[n:]
            if rest:
                input_ids[i, width - len(rest) :] = torch.tensor(rest, dtype=torch.long, device=device)
                mask[i, width_past + width - len(rest) :] = 1
                positions[i, width - len(rest) :] = torch.arange(n, len(r), device=device)
            mask[i, width_past - n : width_past] = 1
        capacity = width_past + width + room
        if width_past == 0:
            return self._new_cache(capacity), mask, input_ids, positions
        template = next(layers for layers, n in matches if n == width_past)
        assert template is not None
        data = []
        for layer, (k0, v0) in enumerate(template):
            keys = k0.new_zeros((batch, k0.shape[0], width_past, k0.shape[-1]))
            values = v0.new_zeros((batch, v0.shape[0], width_past, v0.shape[-1]))
            for i, (layers, n) in enumerate(matches):
                if layers is not None and n:
                    keys[i, :, width_past - n :] = layers[layer][0][:, :n]
                    values[i, :, width_past - n :] = layers[layer][1][:, :n]
            data.append((keys, values))
        return self._new_cache(capacity, data), mask, input_ids, positions

    def _new_cache(self, capacity: int, data: list[tuple[Any, Any]] | None = None) -> Any:
        """A KV cache for one `generate` call: growing in place (`growing_cache`) where every
        layer is full attention, transformers' own `DynamicCache` otherwise (sliding-window
        layers keep a window, not every position, and the prefix cache is off for them)."""
        if not (self._plain_layers and self.grow_in_place):
            from transformers import DynamicCache

            return DynamicCache(data, config=self.model.config)
        from swerepair.agents.inference.kv_layers import growing_cache

        return growing_cache(self._num_layers, capacity, data)

    def _encode_shared_prefixes(self, rows: list[list[int]]) -> None:
        """Encode once, and store, the prefixes that rows of this batch share beyond what the
        cache already holds (a group's common prompt): the batch then feeds only each row's
        own tokens. Prefixes shorter than `MIN_SHARED_TOKENS` of new work are not worth a pass."""
        from swerepair.agents.inference.prefix_cache import common_prefix

        if len(rows) < 2:
            return
        arrays = [np.asarray(r, dtype=np.int64) for r in rows]
        shared = [0] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: rows[i])
        for a, b in itertools.pairwise(order):  # the longest shared prefix of a row is with a neighbour
            n = common_prefix(arrays[a], arrays[b])
            shared[a], shared[b] = max(shared[a], n), max(shared[b], n)
        targets: set[tuple[int, ...]] = set()
        for r, n in zip(rows, shared, strict=True):
            n = min(n, len(r) - 1)
            _, have = self.cache.match(r, limit=n)
            if n - have >= MIN_SHARED_TOKENS:
                targets.add(tuple(r[:n]))
        if not targets:  # no prefix worth encoding once (zip(strict=True) below needs one)
            return
        # a target that is a prefix of another is served by it
        ordered = sorted(targets)
        keep = [t for i, t in enumerate(ordered) if i + 1 == len(ordered) or ordered[i + 1][: len(t)] != t]
        if not keep:
            return
        prefixes = [list(t) for t in keep]
        past, mask, input_ids, positions = self._inputs(prefixes)
        _, past = self._forward(input_ids, mask, positions, past)
        self._store(prefixes, past, mask)

    def _store(self, sequences: list[list[int]], past: Any, mask: Any) -> None:
        """Store each row's KV state: the attended columns of `past`, which hold, in order,
        the first tokens of the row's sequence (its prompt, then what was fed of its output)."""
        width = past.get_seq_length()
        attended = mask[:, :width].bool()
        for i, seq in enumerate(sequences):
            columns = attended[i].nonzero().flatten()
            n = int(columns.numel())
            if n == 0 or n > len(seq):
                continue
            layers = [
                (lay.keys[i].index_select(-2, columns), lay.values[i].index_select(-2, columns)) for lay in past.layers
            ]
            self.cache.insert(seq[:n], layers)


@functools.cache
def _cache_argument() -> str:
    """The forward argument that takes the KV cache: ``cache`` in recent transformers,
    ``past_key_values`` before (recent versions still accept it, with a deprecation warning)."""
    from transformers.models.llama.modeling_llama import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"
