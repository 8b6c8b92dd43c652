"""Live weight updates, the side both ends share: the wire protocol (`protocol`), the process
group (`group`) and the receiver (`receiver`). The trainer's sender and pushers build on these in
`swerepair.trainers.weight_sync`."""

from __future__ import annotations

from swerepair.agents.inference.weights.group import WeightSyncGroup
from swerepair.agents.inference.weights.protocol import (
    DEFAULT_BUCKET_BYTES,
    Bucket,
    TensorSpec,
    plan_buckets,
    split_adapter_name,
)
from swerepair.agents.inference.weights.receiver import WeightReceiver

__all__ = [
    "DEFAULT_BUCKET_BYTES",
    "Bucket",
    "TensorSpec",
    "WeightReceiver",
    "WeightSyncGroup",
    "plan_buckets",
    "split_adapter_name",
]
