"""What a push carries: the policy's weights under the plain model's names, or a LoRA adapter's factors.

The factors' names follow `swerepair.agents.inference.weights.protocol` (``::lora_A``, ...).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from swerepair.agents.inference.weights.protocol import LORA_A, LORA_B, LORA_SCALING

__all__ = ["adapter_weights", "policy_weights"]


def policy_weights(model: Any, merge: bool = True) -> list[tuple[str, Tensor]]:
    """The weights a server needs, under the plain model's names: a peft model's LoRA adapters are
    merged into their base weights (and the ``base_layer`` names mapped back); tied weights travel
    once. The tensors are copies; the model is left as it was (the merge is undone). With
    ``merge=False`` the base weights travel without the adapters (see `adapter_weights`)."""
    merge_fn = getattr(model, "merge_adapter", None) if merge else None
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    if callable(merge_fn):
        merge_fn()
    try:
        out: list[tuple[str, Tensor]] = []
        seen: set[int] = set()
        for name, p in lm.named_parameters():
            if "lora_" in name or id(p) in seen:
                continue
            seen.add(id(p))
            out.append((name.replace(".base_layer.", "."), p.detach().clone()))
        return out
    finally:
        if callable(merge_fn):
            model.unmerge_adapter()


def adapter_weights(model: Any) -> list[tuple[str, Tensor]]:
    """A peft LoRA model's update without its base weights: for every LoRA layer, the factors A
    (r × in) and B (out × r) and the scaling of its active adapter, named after the base weight
    they change (``model.layers.0.self_attn.q_proj.weight::lora_A``), plus every other trainable
    parameter under its plain name. A receiver that kept the base weights applies them as
    ``W = W_base + scaling · B @ A`` (what peft's merge computes). For SmolLM2-135M with
    rank 8 on every linear layer of the last third (the cpu-demo preset) that is 3.3 MB (210
    tensors) instead of 538 MB.

    The receiver keeps as base whatever the weight holds before its first factor update, so the
    first factor push to a server must follow (or include) a push of the unmerged base weights,
    ``policy_weights(model, merge=False)``, as the trainer does; after a merged push the adapter
    would count twice.

    Raises ``ValueError`` for what that formula does not cover: DoRA, ``fan_in_fan_out`` layers,
    several active adapters, or a model without LoRA layers."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    out: list[tuple[str, Tensor]] = []
    covered: set[int] = set()
    for module_name, module in lm.named_modules():
        if not (hasattr(module, "lora_A") and hasattr(module, "lora_B") and hasattr(module, "base_layer")):
            continue
        active = [a for a in getattr(module, "active_adapters", ["default"]) if a in module.lora_A]
        if not active:
            continue
        if len(active) > 1:
            raise ValueError(f"{module_name}: {len(active)} active adapters; push merged weights instead")
        adapter = active[0]
        if getattr(module, "use_dora", {}).get(adapter, False) or getattr(module, "fan_in_fan_out", False):
            raise ValueError(f"{module_name}: DoRA or fan_in_fan_out; push merged weights instead")
        target = f"{module_name}.weight"
        a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
        covered.update((id(a), id(b)))
        scaling = torch.tensor(float(module.scaling[adapter]), dtype=torch.float32)
        out += [(target + LORA_A, a.detach().clone()), (target + LORA_B, b.detach().clone())]
        out.append((target + LORA_SCALING, scaling))
    if not out:
        raise ValueError("the model has no active LoRA layers; push merged weights instead")
    for name, p in lm.named_parameters():  # e.g. modules_to_save
        if p.requires_grad and id(p) not in covered and "lora_" not in name:
            out.append((name.replace(".base_layer.", "."), p.detach().clone()))
    return out
