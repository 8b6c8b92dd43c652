"""Starting a real vLLM OpenAI server with the swerepair worker extension, for the slow and GPU
tests. vLLM runs from its own environment (``make vllm-env`` makes ``.venv-vllm``; or set
``SWEREPAIR_VLLM_PYTHON`` to an interpreter with vLLM and this package installed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swerepair.agents.inference.vllm_server import vllm_server

__all__ = ["check_live_weights", "vllm_python", "vllm_server"]

ROOT = Path(__file__).resolve().parents[1]


def vllm_python() -> str | None:
    """The interpreter of the vLLM environment, if there is one."""
    explicit = os.environ.get("SWEREPAIR_VLLM_PYTHON")
    if explicit:
        return explicit
    default = ROOT / ".venv-vllm" / "bin" / "python"
    return str(default) if default.exists() else None


def check_live_weights(
    url: str, model: Any, tokenizer: Any, *, backend: str, logprob_tol: float, same_greedy: bool, device: str = "cpu"
) -> None:
    """Push a perturbed copy of `model` (the trainer's, in this process) to the vLLM server at
    `url` through the extension, and check what the server then generates:

    - its greedy tokens' logprobs equal `model`'s own logprobs for those tokens (teacher-forced)
      within `logprob_tol`, and, with `same_greedy`, its greedy tokens equal `model`'s;
    - its answers carry the pushed version;
    - pushing the original weights back gives the original greedy output exactly.
    """
    import torch

    from swerepair.agents.inference.hf_backend import HFBackend
    from swerepair.agents.inference.server_backend import ServerBackend
    from swerepair.trainers.weight_sync import VLLMWeightPusher, policy_weights

    original = [(n, t.clone()) for n, t in policy_weights(model)]
    chat = [{"role": "user", "content": "Write a Python function that adds two numbers."}]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    prompt = list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def teacher_forced(tokens: Sequence[int]) -> list[float]:
        ids = torch.tensor([prompt + list(tokens)], device=model.device)
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1].float()
        picked = torch.tensor(list(tokens), device=model.device)[:, None]
        return torch.log_softmax(logits, dim=-1).gather(-1, picked).squeeze(-1).tolist()

    def ours() -> Any:
        return HFBackend(model, tokenizer, temperature=0, max_new_tokens=16).generate([prompt])[0]

    pusher = VLLMWeightPusher([url], backend=backend, device=device, bucket_bytes=64 * 2**20, timeout_s=300)
    server = ServerBackend([url], temperature=0, max_new_tokens=16, api="completions", version_source=pusher.version_of)
    base = server.generate([prompt])[0]
    if same_greedy:
        assert base.token_ids == ours().token_ids  # vLLM and transformers agree before any push

    torch.manual_seed(0)
    with torch.no_grad():  # a different policy: every weight moved by 10% of its own spread
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1 * p.std())
    changed = ours()
    assert changed.token_ids != base.token_ids

    pusher.connect()
    ranks = [s["rank"] for s in pusher.rpc(url, "swerepair_status")]
    assert ranks == list(range(1, len(ranks) + 1))
    stats = pusher.push(policy_weights(model), version=1)
    assert stats.buckets >= 2 and stats.nbytes == sum(t.numel() * t.element_size() for _, t in original)
    after = server.generate([prompt])[0]
    assert after.token_ids != base.token_ids and after.policy_version == 1
    gap = max(abs(a - b) for a, b in zip(after.logprobs, teacher_forced(after.token_ids), strict=True))
    assert gap < logprob_tol, f"vLLM's logprobs differ from the trainer's by {gap}"
    if same_greedy:
        assert after.token_ids == changed.token_ids  # vLLM now generates with the pushed weights

    pusher.push(original, version=2)  # pushing the original weights back restores the output
    restored = server.generate([prompt])[0]
    assert restored.token_ids == base.token_ids and restored.policy_version == 2
    status = pusher.rpc(url, "swerepair_status")
    assert all(s["version"] == 2 and s["updates"] == 2 for s in status)
    pusher.close()
    server.close()
