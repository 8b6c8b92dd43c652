"""Trainers: GRPO on SweRepair-v0 (`GRPOTrainer`, configured by `TrainConfig`), built from group
advantages (`advantages`), the fused masked loss (`loss`), the trained model's plumbing
(`model`: LoRA, optimizer, schedule, DeepSpeed), episode batching (`batch`), run metrics
(`metrics`) and shaping rewards (`shaping`).

Importing this package needs nothing heavy: the names below load their modules (and torch) on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PRESETS", "GRPOTrainer", "LossConfig", "TrainConfig", "compute_advantages", "grpo_loss", "load_config"]

_WHERE = {
    "GRPOTrainer": "grpo",
    "TrainConfig": "config",
    "PRESETS": "config",
    "load_config": "config",
    "LossConfig": "loss",
    "grpo_loss": "loss",
    "compute_advantages": "advantages",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
