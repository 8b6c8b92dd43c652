"""A transformers KV cache whose layers grow in place.

transformers' `DynamicCache` appends each decoding step's keys and values with ``torch.cat``,
copying the whole cache every step: for a batch of long agent conversations that copy costs as
much as the step itself (SmolLM2-135M holds 46 KB of float32 KV per token: six 2.5k-token rows
copy 0.7 GB per generated token). `growing_cache` makes a cache whose layers write into a
preallocated buffer, doubled when full, and expose the filled part as a view: a step writes
only its own tokens.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import Cache, DynamicLayer

__all__ = ["GrowingLayer", "growing_cache"]


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` backed by a buffer of `capacity` positions (doubled when exceeded);
    ``keys``/``values`` are views of the filled positions."""

    def __init__(self, capacity: int = 0) -> None:
        super().__init__()
        self.capacity = int(capacity)
        self._keys: Any = None
        self._values: Any = None
        self.length = 0

    def _reserve(self, key_states: Any, value_states: Any, needed: int) -> None:
        if self._keys is not None and needed <= self._keys.shape[-2]:
            return
        size = max(needed, self.capacity, 2 * (self._keys.shape[-2] if self._keys is not None else 0), 64)
        keys = key_states.new_empty((*key_states.shape[:-2], size, key_states.shape[-1]))
        values = value_states.new_empty((*value_states.shape[:-2], size, value_states.shape[-1]))
        if self._keys is not None and self.length:
            keys[..., : self.length, :] = self._keys[..., : self.length, :]
            values[..., : self.length, :] = self._values[..., : self.length, :]
        self._keys, self._values = keys, values

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        self._reserve(key_states, value_states, self.length + n)
        self._keys[..., self.length : self.length + n, :] = key_states
        self._values[..., self.length : self.length + n, :] = value_states
        self.length += n
        self.keys = self._keys[..., : self.length, :]
        self.values = self._values[..., : self.length, :]
        return self.keys, self.values


def growing_cache(num_layers: int, capacity: int, layers: list[tuple[Any, Any]] | None = None) -> Cache:
    """A cache of `num_layers` `GrowingLayer`s with room for `capacity` positions, holding
    `layers` (one ``(keys, values)`` per layer, ``[batch, heads, seq, dim]``) if given."""
    cache = Cache(layers=[GrowingLayer(capacity) for _ in range(num_layers)])
    for layer, (keys, values) in zip(cache.layers, layers or [], strict=False):
        layer.update(keys, values)
    return cache
