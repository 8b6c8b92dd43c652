"""End to end on CPU: the trainer (tiny model, LoRA) pushes its weights over gloo to the embedded
server running in another process; the server's greedy output then equals the trainer's own."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from helpers import tiny_model_server  # noqa: E402


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=120) as response:
        return json.loads(response.read())


def test_pushed_weights_make_the_server_answer_like_the_trainer(tmp_path: Any) -> None:
    from swerepair.agents.hf_backend import HFBackend
    from swerepair.agents.models import load_model
    from swerepair.trainers.config import load_config
    from swerepair.trainers.model import PolicyModel
    from swerepair.trainers.weight_sync import ServerWeightPusher, policy_weights

    with tiny_model_server() as url:
        config = load_config(
            overrides={"model": "tiny-qwen3", "device": "cpu", "lora_layers": "all", "output_dir": str(tmp_path)}
        )
        model, tokenizer = load_model("tiny-qwen3")
        pm = PolicyModel(config, model, tokenizer, torch.device("cpu"))
        with torch.no_grad():  # a trained adapter: non-zero B matrices change the policy
            g = torch.Generator().manual_seed(0)
            for name, p in pm.model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        prompt = tokenizer("<|im_start|>user\nfix the bug in intervals<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
        mine = HFBackend(pm.causal_lm, tokenizer, temperature=0.0, max_new_tokens=16).generate([prompt])[0]
        request = {"messages": [{"role": "user", "content": "x"}], "prompt_token_ids": prompt, "temperature": 0.0}
        request |= {"max_tokens": 16, "logprobs": True}
        before = _post(f"{url}/v1/chat/completions", request)
        assert before["choices"][0]["token_ids"] != list(mine.token_ids), "the adapter changed the policy"

        pusher = ServerWeightPusher([url], bucket_bytes=64 * 1024)
        pusher.connect()
        stats = pusher.push(policy_weights(pm.model), version=7)
        assert stats.buckets > 1 and stats.tensors == len(policy_weights(pm.model))
        after = _post(f"{url}/v1/chat/completions", request)
        assert after["policy_version"] == 7
        assert after["choices"][0]["token_ids"] == list(mine.token_ids)
        got = [c["logprob"] for c in after["choices"][0]["logprobs"]["content"]]
        assert got == pytest.approx(list(mine.logprobs), abs=1e-5)
        # the trainer's model is left as it was: the adapter is still separate (not merged in)
        assert any("lora_B" in n for n, _ in pm.model.named_parameters())
        again = HFBackend(pm.causal_lm, tokenizer, temperature=0.0, max_new_tokens=16).generate([prompt])[0]
        assert again.token_ids == mine.token_ids
        pusher.close()
