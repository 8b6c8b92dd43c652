"""`WeightSyncGroup`: the process group a trainer and its inference servers share for weight updates only.

Its own ``TCPStore`` and a gloo (CPU) or NCCL (CUDA) process group built from it directly, so the
trainer's default process group (DeepSpeed's, say) is untouched and the same code runs on both
backends. Control messages (`send_header` / `recv_header`) are JSON, as two broadcasts: the
length, then the bytes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["WeightSyncGroup"]


class WeightSyncGroup:
    """A process group for weight updates only (see the module docstring).

    Args:
        host, port: the ``TCPStore`` address; rank 0 (the trainer) hosts it.
        rank: 0 for the trainer, 1..world_size-1 for the servers.
        world_size: 1 + the number of servers.
        backend: ``"gloo"`` (CPU tensors) or ``"nccl"`` (CUDA tensors).
        device: where buffers live with NCCL (``cuda:N``); gloo's are always in host memory.
        timeout_s: how long joining and each collective may take.
    """

    def __init__(
        self,
        host: str,
        port: int,
        rank: int,
        world_size: int,
        *,
        backend: str = "gloo",
        device: str | torch.device = "cpu",
        timeout_s: float = 300.0,
    ) -> None:
        if backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be gloo or nccl, got {backend!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size}")
        timeout = timedelta(seconds=timeout_s)
        self.rank, self.world_size, self.backend = rank, world_size, backend
        # gloo moves CPU buffers: a CUDA model is staged through host memory (one GPU can hold
        # the trainer and the server, which NCCL does not allow)
        self.device = torch.device(device) if backend == "nccl" else torch.device("cpu")
        self.store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
        if backend == "gloo":
            self.pg: Any = dist.ProcessGroupGloo(self.store, rank, world_size, timeout)
        else:
            self.pg = dist.ProcessGroupNCCL(self.store, rank, world_size)

    def broadcast_async(self, tensor: Tensor, src: int = 0) -> Any:
        """Start broadcasting `tensor` in place from rank `src`; the returned work's ``wait()``
        blocks until it is done (`tensor` must not change before then)."""
        opts = dist.BroadcastOptions()
        opts.rootRank = src
        opts.rootTensor = 0
        return self.pg.broadcast([tensor], opts)

    def broadcast(self, tensor: Tensor, src: int = 0) -> None:
        """Broadcast `tensor` in place from rank `src` to every rank of the group."""
        self.broadcast_async(tensor, src).wait()

    def send_header(self, header: dict[str, Any]) -> None:
        """Rank 0: broadcast one control message."""
        data = torch.frombuffer(bytearray(json.dumps(header).encode()), dtype=torch.uint8).to(self.device)
        self.broadcast(torch.tensor([data.numel()], dtype=torch.int64, device=self.device))
        self.broadcast(data)

    def recv_header(self) -> dict[str, Any]:
        """Ranks > 0: receive one control message."""
        length = torch.zeros(1, dtype=torch.int64, device=self.device)
        self.broadcast(length)
        data = torch.empty(int(length.item()), dtype=torch.uint8, device=self.device)
        self.broadcast(data)
        return json.loads(bytes(data.cpu().numpy()).decode())

    def close(self) -> None:
        """Leave the group."""
        shutdown = getattr(self.pg, "shutdown", None)
        if callable(shutdown):
            shutdown()
        self.pg = None
