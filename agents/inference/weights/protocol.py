"""The wire protocol of live weight updates, shared by the trainer (sender) and the servers (receivers).

The trainer (rank 0) and each server (ranks 1..N) join a process group made for this purpose only:
its own ``TCPStore`` and a gloo (CPU) or NCCL (CUDA) process group built from it directly, so the
trainer's default process group (DeepSpeed's, say) is untouched, and the same code runs on both
backends. An update is a sequence of broadcasts from rank 0:

    for each bucket:  header (one control message: the bucket's tensor names, shapes, dtype and
                      byte offsets, as JSON) -> payload (one flat buffer holding the bucket's tensors)
    end:              header {"end": true, "version": v}

Buckets group tensors of one dtype, in order, up to ``bucket_bytes`` (default 256 MiB); a tensor
larger than that travels alone. ``bucket_bytes=0`` sends one bucket (one control message) per
tensor: the per-tensor baseline of ``benchmarks/weight_sync.py``. A header is two broadcasts (its
length, then its bytes), so a bucket costs three collectives whatever it holds.

A LoRA update may carry an adapter's factors instead of merged weights: tensors named
``<base weight name>::lora_A`` / ``::lora_B`` / ``::lora_scaling`` (`split_adapter_name`).

The group is `swerepair.agents.inference.weights.group.WeightSyncGroup`; the receiving side
`swerepair.agents.inference.weights.receiver.WeightReceiver`; the sending side lives with the
trainers (`swerepair.trainers.weight_sync`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_BUCKET_BYTES",
    "LORA_A",
    "LORA_B",
    "LORA_SCALING",
    "Bucket",
    "TensorSpec",
    "dtype_from_name",
    "end_marker",
    "plan_buckets",
    "split_adapter_name",
]

#: Default bucket size: tensors of one dtype are packed up to this many bytes per broadcast.
DEFAULT_BUCKET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class TensorSpec:
    """One tensor's place in a bucket: name, shape, and byte offset in the bucket's buffer."""

    name: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Bucket:
    """Tensors of one dtype sent as one flat buffer after one control message."""

    dtype: str
    nbytes: int
    tensors: tuple[TensorSpec, ...]

    def header(self) -> dict[str, Any]:
        """The control message announcing this bucket."""
        return {
            "dtype": self.dtype,
            "nbytes": self.nbytes,
            "tensors": [[t.name, list(t.shape), t.offset, t.nbytes] for t in self.tensors],
        }

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Bucket:
        specs = tuple(TensorSpec(n, tuple(s), o, b) for n, s, o, b in header["tensors"])
        return cls(header["dtype"], int(header["nbytes"]), specs)


def dtype_from_name(name: str) -> torch.dtype:
    """The torch dtype a header names (``"bfloat16"``, ``"torch.float32"``)."""
    value = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return value


def end_marker(version: int) -> dict[str, Any]:
    """The control message that closes an update and names the version it installs."""
    return {"end": True, "version": int(version)}


def plan_buckets(named: Iterable[tuple[str, Tensor]], bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> list[Bucket]:
    """Group `named` tensors into buckets of one dtype and at most `bucket_bytes` (see the module
    docstring); ``bucket_bytes <= 0`` puts every tensor in its own bucket. Order is preserved
    within each dtype."""
    buckets: list[Bucket] = []
    open_: dict[str, list[TensorSpec]] = {}
    sizes: dict[str, int] = {}

    def close(dtype: str) -> None:
        if open_.get(dtype):
            buckets.append(Bucket(dtype, sizes[dtype], tuple(open_[dtype])))
        open_[dtype], sizes[dtype] = [], 0

    for name, tensor in named:
        dtype = str(tensor.dtype).removeprefix("torch.")
        nbytes = tensor.numel() * tensor.element_size()
        if dtype not in open_:
            open_[dtype], sizes[dtype] = [], 0
        if open_[dtype] and (bucket_bytes <= 0 or sizes[dtype] + nbytes > bucket_bytes):
            close(dtype)
        open_[dtype].append(TensorSpec(name, tuple(tensor.shape), sizes[dtype], nbytes))
        sizes[dtype] += nbytes
        if bucket_bytes <= 0:
            close(dtype)
    for dtype in list(open_):
        close(dtype)
    return buckets


#: Name suffixes of adapter tensors in an update: ``<target weight name><suffix>``.
LORA_A, LORA_B, LORA_SCALING = "::lora_A", "::lora_B", "::lora_scaling"


def split_adapter_name(name: str) -> tuple[str, str] | None:
    """``("model.x.weight", "lora_A")`` for an adapter tensor's name, None for a plain one."""
    for suffix in (LORA_A, LORA_B, LORA_SCALING):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix[2:]
    return None
