"""`WeightReceiver`: a server's side of a live weight update (see `swerepair.agents.inference.weights.protocol`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from swerepair.agents.inference.weights.group import WeightSyncGroup
from swerepair.agents.inference.weights.protocol import Bucket, dtype_from_name

__all__ = ["WeightReceiver"]


class WeightReceiver:
    """A rank > 0 of a `WeightSyncGroup`: receives updates, bucket by bucket.

    `receive_update` hands each bucket to `apply` as ``[(name, tensor), ...]``: views of one
    buffer kept between buckets and updates, valid only during the call (`apply` must copy what it
    keeps). `stream` yields the tensors one by one, for a consumer such as vLLM's
    ``load_weights`` that takes an iterator; they are views of a buffer received for their bucket
    alone, so they stay valid as long as they are referenced (a consumer may hold a tensor past
    its bucket).

    `failure` is set when the group itself failed (a broadcast raised): the receiver, and the
    group, cannot be used again.
    """

    def __init__(self, group: WeightSyncGroup, apply: Callable[[list[tuple[str, Tensor]]], None] | None = None) -> None:
        if group.rank == 0:
            raise ValueError("rank 0 sends; receivers are ranks 1..N")
        self.group = group
        self.apply = apply
        #: the version carried by the end marker of the last update received in full
        self.version: int | None = None
        self.tensors = 0
        self.nbytes = 0
        self._buffer: Tensor | None = None
        self.failure: BaseException | None = None

    def buckets(self, reuse_buffer: bool = False) -> Iterator[list[tuple[str, Tensor]]]:
        """Receive one update; yield its buckets as they arrive. `version` is set at the end marker.

        With `reuse_buffer`, every bucket lands in one buffer kept between updates, so a bucket's
        tensors are valid only until the next bucket is asked for; otherwise each bucket gets a
        buffer of its own.

        The sender does not wait for the receiver, so a consumer that stops early must `drain`
        the rest, or the group falls out of step with the trainer."""
        if self.failure is not None:
            raise RuntimeError(f"the weight-sync group failed earlier: {self.failure}")
        self.version, self.tensors, self.nbytes = None, 0, 0
        while True:
            try:
                header = self.group.recv_header()
            except BaseException as exc:
                self.failure = exc
                raise
            if header.get("end"):
                self.version = int(header["version"])
                return
            bucket = Bucket.from_header(header)
            if reuse_buffer:
                if self._buffer is None or self._buffer.numel() < bucket.nbytes:
                    self._buffer = torch.empty(bucket.nbytes, dtype=torch.uint8, device=self.group.device)
                buffer = self._buffer[: bucket.nbytes]
            else:
                buffer = torch.empty(bucket.nbytes, dtype=torch.uint8, device=self.group.device)
            try:
                self.group.broadcast(buffer)
            except BaseException as exc:
                self.failure = exc
                raise
            dtype = dtype_from_name(bucket.dtype)
            self.tensors += len(bucket.tensors)
            self.nbytes += bucket.nbytes
            views = [buffer[t.offset : t.offset + t.nbytes].view(dtype).reshape(t.shape) for t in bucket.tensors]
            yield [(t.name, v) for t, v in zip(bucket.tensors, views, strict=True)]

    def stream(self) -> Iterator[tuple[str, Tensor]]:
        """Receive one update as a stream of ``(name, tensor)``; see `buckets`."""
        for bucket in self.buckets():
            yield from bucket

    @staticmethod
    def drain(iterator: Iterator[Any]) -> int:
        """Consume what is left of a `buckets` or `stream` iterator; how many items were left."""
        return sum(1 for _ in iterator)

    def receive_update(self) -> int:
        """Receive buckets until the end marker, applying each; return the version it carries.

        If `apply` raises, the rest of the update is still received (not applied), so the group
        stays in step with the sender, and then the error is raised."""
        if self.apply is None:
            raise ValueError("receive_update needs an apply function; or iterate stream()")
        buckets = self.buckets(reuse_buffer=True)
        for bucket in buckets:
            try:
                self.apply(bucket)
            except Exception:
                if self.failure is None:
                    self.drain(buckets)
                raise
        assert self.version is not None
        return self.version
