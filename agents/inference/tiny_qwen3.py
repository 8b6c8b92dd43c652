"""A tiny random model of the Qwen3 architecture, built offline, for fast tests and demos.

- Tokenizer: byte-level BPE trained with `tokenizers` on the bundled tasks' text and the
  nano-agent's prompt (deterministic: same corpus, same merges), with Qwen's chat tokens
  (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``) as special tokens and
  ``<tool_call>``/``<tool_response>`` tags as single tokens.
- Chat template: Qwen-style ChatML that renders tools (a Hermes ``<tools>`` block in the
  system message), assistant tool calls and tool results (``<tool_response>`` inside a user
  turn), and is prefix-stable: rendering a longer conversation never changes how its
  beginning is rendered.
- Model: `Qwen3ForCausalLM` with a few layers of width 64, random weights from a fixed seed.

`tiny_qwen3_path()` builds it once into the cache (``$SWEREPAIR_CACHE/models/tiny-qwen3-*``)
and returns the directory; it loads with plain ``from_pretrained(path)`` and
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from swerepair.core import build_once, cache_root

__all__ = ["CHAT_TEMPLATE", "TINY_CONFIG", "build_tiny_qwen3", "tiny_qwen3_path"]

#: Architecture of the tiny model (a Qwen3Config's keyword arguments, less the vocabulary).
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 16384,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-6,
}
VOCAB_SIZE = 3000
SEED = 1234

# A ChatML template in the style of Qwen's, written for this package. Every message renders
# the same whatever follows it, which keeps token sequences prefix-stable across turns.
CHAT_TEMPLATE = (
    "{%- if tools %}"
    "<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ '\\n' + messages[0].content + '\\n\\n' }}"
    "{%- else %}{{ '\\n' }}{%- endif %}"
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{%- for tool in tools %}{{ '\\n' + (tool | tojson) }}{%- endfor %}"
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "{%- elif messages[0].role == 'system' %}"
    "{{ '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' and loop.first %}"
    "{%- elif message.role in ['user', 'system'] %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' + (message.content or '') }}"
    "{%- for call in message.tool_calls or [] %}"
    "{%- set args = call.function.arguments %}"
    '{{ \'<tool_call>\\n{"name": "\' + call.function.name + \'", "arguments": \' }}'
    "{{- args if args is string else (args | tojson) }}{{ '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{ '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{ '<|im_start|>user' }}{%- endif %}"
    "{{ '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{ '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TAGS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]


def _corpus() -> list[str]:
    """Deterministic training text: the bundled tasks, the nano-agent prompt, tool schemas."""
    from swerepair.agents.scaffold import nano_agent

    data = Path(__file__).resolve().parents[2] / "envs" / "bundled" / "data" / "tasks.jsonl"
    if not data.exists():  # shipped as package data: a missing file is a broken install or layout
        raise FileNotFoundError(f"the bundled tasks are missing: {data}")
    texts: list[str] = []
    for line in data.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts += [row["problem_statement"], row["patch"], row["test_patch"]]
    scaffold = nano_agent()
    texts.append(scaffold.render_system("/workspace"))
    texts.append(json.dumps(scaffold.tool_schemas()))
    texts.append("def test_x():\n    assert f(1) == 2\n\nclass A:\n    pass\n" * 3)
    return texts


def _train_tokenizer() -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_qwen3(out_dir: Path, seed: int = SEED) -> Path:
    """Train the tokenizer and initialise the model into `out_dir`; return it."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = _train_tokenizer()
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    with torch.no_grad():  # a wider init than the default, so sampling is not uniform noise
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.08)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def tiny_qwen3_path(cache: Path | None = None) -> Path:
    """The tiny model's directory, built once per machine (guarded by a file lock)."""
    # the tokenizer is trained on the corpus, so the corpus is part of what the model is
    what = (TINY_CONFIG, VOCAB_SIZE, SEED, CHAT_TEMPLATE, TAGS, _corpus())
    key = hashlib.sha256(repr(what).encode()).hexdigest()[:12]
    root = (cache or cache_root()) / "models"
    final = root / f"tiny-qwen3-{key}"
    return build_once(final, build_tiny_qwen3, complete=lambda p: (p / "config.json").exists())
