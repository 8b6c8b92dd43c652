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


def _get_status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/weights/status", timeout=60) as response:
        return json.loads(response.read())


def _tiny_lora_policy(tmp_path: Any, lora_layers: str) -> tuple[Any, Any, list[int], dict[str, Any]]:
    """The trainer's side: tiny-qwen3 with a LoRA adapter, its tokenizer, a prompt, and a greedy
    chat request for that prompt."""
    from swerepair.agents.inference.models import load_model
    from swerepair.trainers.config import load_config
    from swerepair.trainers.model import PolicyModel

    overrides = {"model": "tiny-qwen3", "device": "cpu", "lora_layers": lora_layers, "output_dir": str(tmp_path)}
    model, tokenizer = load_model("tiny-qwen3")
    pm = PolicyModel(load_config(overrides=overrides), model, tokenizer, torch.device("cpu"))
    prompt = tokenizer("<|im_start|>user\nfix the bug in intervals<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    request = {"messages": [{"role": "user", "content": "x"}], "prompt_token_ids": prompt, "temperature": 0.0}
    return pm, tokenizer, prompt, request | {"max_tokens": 16, "logprobs": True}


def test_pushed_weights_make_the_server_answer_like_the_trainer(tmp_path: Any) -> None:
    from swerepair.agents.inference.hf_backend import HFBackend
    from swerepair.trainers.weight_sync import ServerWeightPusher, policy_weights

    with tiny_model_server() as url:
        pm, tokenizer, prompt, request = _tiny_lora_policy(tmp_path, "all")
        with torch.no_grad():  # a trained adapter: non-zero B matrices change the policy
            g = torch.Generator().manual_seed(0)
            for name, p in pm.model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        mine = HFBackend(pm.causal_lm, tokenizer, temperature=0.0, max_new_tokens=16).generate([prompt])[0]
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


def test_adapter_pushes_carry_only_the_lora_factors_and_the_server_composes_them(tmp_path: Any) -> None:
    from swerepair.agents.inference.hf_backend import HFBackend
    from swerepair.trainers.weight_sync import ServerWeightPusher, adapter_weights, policy_weights

    with tiny_model_server() as url:
        pm, tokenizer, prompt, request = _tiny_lora_policy(tmp_path, "last_half")
        g = torch.Generator().manual_seed(0)

        def train_a_bit() -> Any:  # new adapter values, as after an update
            with torch.no_grad():
                for name, p in pm.model.named_parameters():
                    if "lora_" in name:
                        p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            return HFBackend(pm.causal_lm, tokenizer, temperature=0.0, max_new_tokens=16).generate([prompt])[0]

        pusher = ServerWeightPusher([url], bucket_bytes=64 * 1024)
        pusher.connect()
        full = sum(t.numel() * t.element_size() for _, t in policy_weights(pm.model))
        mine = train_a_bit()
        first = pusher.push(policy_weights(pm.model, merge=False) + adapter_weights(pm.model), version=1)
        answer = _post(f"{url}/v1/chat/completions", request)
        assert answer["choices"][0]["token_ids"] == list(mine.token_ids) and answer["policy_version"] == 1
        for version in (2, 3):  # later pushes: the factors alone, composed on the kept base
            mine = train_a_bit()
            stats = pusher.push(adapter_weights(pm.model), version=version)
            assert stats.nbytes < full / 10 < first.nbytes
            answer = _post(f"{url}/v1/chat/completions", request)
            assert answer["choices"][0]["token_ids"] == list(mine.token_ids)
            got = [c["logprob"] for c in answer["choices"][0]["logprobs"]["content"]]
            assert got == pytest.approx(list(mine.logprobs), abs=1e-4)
        assert _get_status(url)["error"] is None
        pusher.close()


def test_adapter_weights_names_and_refusals() -> None:
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.inference.weights.protocol import split_adapter_name
    from swerepair.trainers.weight_sync import adapter_weights

    model, _ = load_model("tiny-qwen3")
    with pytest.raises(ValueError, match="no active LoRA"):
        adapter_weights(model)
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    named = dict(adapter_weights(peft_model))
    plain = dict(model.named_parameters())
    targets = {split_adapter_name(n)[0] for n in named}  # type: ignore[index]
    assert targets and all(t.replace(".weight", ".base_layer.weight") in plain for t in targets)
    some = sorted(targets)[0]
    assert named[some + "::lora_A"].shape[0] == 4 and named[some + "::lora_B"].shape[1] == 4
    assert float(named[some + "::lora_scaling"]) == 2.0  # alpha / r
    assert split_adapter_name("model.norm.weight") is None
