"""A store of KV states by token prefix, so that a backend encodes a shared history once.

An agent's episode grows by appending: turn k's prompt is turn k-1's prompt, its completion and
the tool's answer. The episodes of a GRPO group start from one system + issue prompt. A
`PrefixCache` keeps, for token sequences the model has already run, the keys and values of every
attention layer, so that the next prompt pays only for the tokens after the longest stored
prefix it starts with.

Entries are matched by their longest common prefix with a prompt, not only as whole prefixes:
the KV state of a position depends on the tokens up to it alone, so an entry for episode A's
second turn serves episode B's first turn for the part of the prompt they share.

Bounds: `max_bytes` of tensors; the least recently used entries are evicted past it, and an
entry that is a prefix of a newer one is dropped at once (the newer one serves every prompt it
served). The cache knows nothing of the weights: its owner clears it when they change
(`swerepair.agents.inference.hf_backend.HFBackend` does so on every weight change it can see).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CacheStats", "PrefixCache", "common_prefix"]

#: one layer's (keys, values), each ``[kv_heads, seq_len, head_dim]``
LayerKV = tuple[Any, Any]


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two 1-d integer arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


@dataclass
class CacheStats:
    """Counters since the cache was made (`clear` keeps them).

    Attributes:
        lookups: prompts looked up.
        reused_tokens: prompt tokens whose KV came from the cache.
        computed_tokens: prompt tokens the model had to encode.
        inserted: entries stored.
        evicted: entries dropped for the byte budget.
        cleared: times the whole cache was dropped (weight changes).
    """

    lookups: int = 0
    reused_tokens: int = 0
    computed_tokens: int = 0
    inserted: int = 0
    evicted: int = 0
    cleared: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of looked-up prompt tokens served from the cache."""
        total = self.reused_tokens + self.computed_tokens
        return self.reused_tokens / total if total else 0.0


@dataclass
class _Entry:
    tokens: np.ndarray
    layers: list[LayerKV]
    nbytes: int = field(default=0)


class PrefixCache:
    """KV states of token sequences, looked up by longest common prefix (module docstring).

    Args:
        max_bytes: most bytes of key/value tensors kept; 0 disables the cache (nothing is
            stored, every lookup misses).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next_key = 0
        self.nbytes = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def clear(self) -> None:
        """Drop every entry (the weights changed: no stored state is valid any more)."""
        if self._entries:
            self.stats.cleared += 1
        self._entries.clear()
        self.nbytes = 0

    def match(self, prompt: Sequence[int], *, limit: int | None = None) -> tuple[list[LayerKV] | None, int]:
        """``(layers, n)``: the stored entry sharing the longest prefix with `prompt` and that
        prefix's length `n` (at most `limit`); the entry's tensors are valid for positions
        ``[0, n)``. ``(None, 0)`` when nothing is shared. Marks the entry recently used."""
        if not self._entries:
            return None, 0
        ids = np.asarray(prompt, dtype=np.int64)
        best_key, best = -1, 0
        for key, entry in self._entries.items():
            n = common_prefix(entry.tokens, ids)
            if n > best:
                best_key, best = key, n
        if limit is not None:
            best = min(best, limit)
        if best <= 0:
            return None, 0
        self._entries.move_to_end(best_key)
        return self._entries[best_key].layers, best

    def record(self, reused: int, computed: int) -> None:
        """Count one prompt's lookup outcome (for `stats`)."""
        self.stats.lookups += 1
        self.stats.reused_tokens += reused
        self.stats.computed_tokens += computed

    def insert(self, tokens: Sequence[int], layers: list[LayerKV]) -> None:
        """Store the KV state of `tokens` (each layer's tensors cover exactly those positions).

        Entries that are prefixes of `tokens` are dropped (this one serves whatever they
        served); an entry that `tokens` is a prefix of makes this one redundant (not stored).
        Then least recently used entries go until the budget holds; an entry larger than the
        whole budget is not stored."""
        if not self.enabled or not len(tokens):
            return
        ids = np.asarray(tokens, dtype=np.int64)
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if nbytes > self.max_bytes:
            return
        for key, entry in list(self._entries.items()):
            n = common_prefix(entry.tokens, ids)
            if n == len(entry.tokens):  # the old entry is a prefix of the new one
                self._drop(key)
            elif n == len(ids):  # the new one is a prefix of a stored entry
                self._entries.move_to_end(key)
                return
        while self._entries and self.nbytes + nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
            self.stats.evicted += 1
        self._entries[self._next_key] = _Entry(ids, layers, nbytes)
        self._next_key += 1
        self.nbytes += nbytes
        self.stats.inserted += 1

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.nbytes -= entry.nbytes
