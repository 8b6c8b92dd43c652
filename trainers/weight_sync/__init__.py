"""The trainer's side of live weight updates to inference servers.

- `extract`: what a push carries (`policy_weights`: merged weights under the plain model's names;
  `adapter_weights`: a LoRA adapter's factors);
- `sender`: `WeightSender`, rank 0 of the group, and `SyncStats`;
- `pushers`: the control plane (`WeightPusher`, `ServerWeightPusher`, `VLLMWeightPusher`,
  `make_pusher`).

The wire protocol, the process group and the receiving side are shared with the servers and
live in `swerepair.agents.inference.weights` (inference never imports trainers).
"""

from __future__ import annotations

from swerepair.trainers.weight_sync.extract import adapter_weights, policy_weights
from swerepair.trainers.weight_sync.pushers import (
    ServerWeightPusher,
    VLLMWeightPusher,
    WeightPusher,
    make_pusher,
)
from swerepair.trainers.weight_sync.sender import SyncStats, WeightSender

__all__ = [
    "ServerWeightPusher",
    "SyncStats",
    "VLLMWeightPusher",
    "WeightPusher",
    "WeightSender",
    "adapter_weights",
    "make_pusher",
    "policy_weights",
]
