"""`WeightSender`: rank 0 of a `WeightSyncGroup`, pushing named tensors bucket by bucket.

The wire format is `swerepair.agents.inference.weights.protocol`'s; `SyncStats` is what a push did.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from swerepair.agents.inference.weights.group import WeightSyncGroup
from swerepair.agents.inference.weights.protocol import DEFAULT_BUCKET_BYTES, Bucket, end_marker, plan_buckets

__all__ = ["SyncStats", "WeightSender"]


@dataclass
class SyncStats:
    """What one push did: buckets (= control messages), bytes and seconds."""

    version: int
    buckets: int
    tensors: int
    nbytes: int
    seconds: float
    per_bucket_s: list[float] = field(default_factory=list)

    @property
    def gb_per_s(self) -> float:
        """Payload gigabytes (1e9 bytes) per second."""
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 else float("inf")


class WeightSender:
    """Rank 0 of a `WeightSyncGroup`: pushes named tensors in buckets.

    Packing is pipelined with sending: while one bucket's payload travels (an asynchronous
    broadcast), the next bucket is packed into a second buffer. The two buffers are kept between
    pushes (allocating and first-touching hundreds of MB per push costs more than copying into
    them). A bucket holding a single contiguous tensor on the group's device is sent from the
    tensor itself, without a copy.
    """

    def __init__(self, group: WeightSyncGroup, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        if group.rank != 0:
            raise ValueError("the sender is rank 0")
        self.group = group
        self.bucket_bytes = bucket_bytes
        self._buffers: list[Tensor | None] = [None, None]

    def _buffer(self, slot: int, nbytes: int) -> Tensor:
        buffer = self._buffers[slot]
        if buffer is None or buffer.numel() < nbytes:
            buffer = torch.empty(nbytes, dtype=torch.uint8, device=self.group.device)
            self._buffers[slot] = buffer
        return buffer[:nbytes]

    def _payload(self, bucket: Bucket, by_name: dict[str, Tensor], slot: int) -> Tensor:
        if len(bucket.tensors) == 1:
            only = by_name[bucket.tensors[0].name].detach()
            if only.is_contiguous() and only.device == self.group.device:
                return only.reshape(-1).view(torch.uint8)
        buffer = self._buffer(slot, bucket.nbytes)
        for spec in bucket.tensors:
            src = by_name[spec.name].detach().contiguous().reshape(-1)
            buffer[spec.offset : spec.offset + spec.nbytes].copy_(src.view(torch.uint8))
        return buffer

    def push(self, named: Sequence[tuple[str, Tensor]], version: int) -> SyncStats:
        """Send every tensor of `named` (bucketed), then the end marker with `version`."""
        started = time.perf_counter()
        buckets = plan_buckets(named, self.bucket_bytes)
        by_name = dict(named)
        times = []
        in_flight: Any = None
        for i, bucket in enumerate(buckets):
            t0 = time.perf_counter()
            payload = self._payload(bucket, by_name, i % 2)  # packed while the last bucket travels
            if in_flight is not None:
                in_flight.wait()
            self.group.send_header(bucket.header())
            in_flight = self.group.broadcast_async(payload)
            times.append(time.perf_counter() - t0)
        if in_flight is not None:
            in_flight.wait()
        self.group.send_header(end_marker(version))
        total = sum(b.nbytes for b in buckets)
        return SyncStats(int(version), len(buckets), len(by_name), total, time.perf_counter() - started, times)
