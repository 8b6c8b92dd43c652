"""The vLLM weight path against a stand-in engine (`fake_vllm`: vLLM's worker and HTTP shapes,
the real extension and pusher code). The real vLLM is tested in test_vllm_cpu.py (slow) and
tests/gpu/test_vllm_gpu.py (CUDA)."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch

from swerepair.agents.inference.http import free_port
from swerepair.agents.inference.vllm_extension import WeightSyncExtension
from swerepair.agents.inference.weights.group import WeightSyncGroup
from swerepair.trainers.weight_sync import VLLMWeightPusher, WeightSender, make_pusher, policy_weights


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(3, 2, bias=False)


class _Loader:
    """vLLM's model interface (`load_weights` by checkpoint names) over `_Linear`."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.module = _Linear()
        self.fail_after = fail_after
        self.seen: list[str] = []

    def load_weights(self, weights: Any) -> set[str]:
        params = dict(self.module.named_parameters())
        for i, (name, tensor) in enumerate(weights):
            if self.fail_after is not None and i >= self.fail_after:
                raise ValueError(f"cannot load {name}")
            params[name].data.copy_(tensor)
            self.seen.append(name)
        return set(self.seen)


class _Worker(WeightSyncExtension):
    """A worker without reload_weights (the loader falls back to the model's load_weights)."""

    def __init__(self, rank: int, loader: _Loader) -> None:
        self.device = torch.device("cpu")
        self.rank = rank
        self.model_runner = type("Runner", (), {"model": loader})()


class _ReloadingWorker(_Worker):
    def __init__(self, rank: int, loader: _Loader) -> None:
        super().__init__(rank, loader)
        self.reloaded: list[str] = []

    def reload_weights(self, weights_iterator: Any = None) -> None:
        names = self.model_runner.model.load_weights(weights_iterator)
        self.reloaded.extend(sorted(names))


def _on_workers(workers: list[Any], method: str, arg: str) -> Any:
    """Call `method` on every worker in a thread of its own (as vLLM's workers are processes);
    return a function that waits for them and gives their answers."""
    answers: list[Any] = [None] * len(workers)
    threads = [
        threading.Thread(target=lambda i=i: answers.__setitem__(i, getattr(workers[i], method)(arg)))
        for i in range(len(workers))
    ]
    for t in threads:
        t.start()

    def wait() -> list[Any]:
        for t in threads:
            t.join(60)
        return answers

    return wait


def _update(workers: list[Any], named: list[tuple[str, torch.Tensor]], version: int, bucket_bytes: int) -> list[dict]:
    """Rank 0 in this thread, `workers` (ranks 1..) in threads: join, push once, return their answers."""
    port = free_port()
    spec = json.dumps({"host": "127.0.0.1", "port": port, "first_rank": 1, "world_size": len(workers) + 1})
    # every worker of one server joins with the same first_rank; its own rank (self.rank) is added
    joins = _on_workers(workers, "swerepair_join", spec)
    group = WeightSyncGroup("127.0.0.1", port, 0, len(workers) + 1, timeout_s=60)
    assert [j["rank"] for j in joins()] == list(range(1, len(workers) + 1))
    first = _on_workers(workers, "swerepair_receive", "{}")
    WeightSender(group, bucket_bytes).push(named, version)
    answers = first()
    # a second update goes through the same group: the first left it in step
    second = _on_workers(workers, "swerepair_receive", "")
    WeightSender(group, bucket_bytes).push([(n, t * 2) for n, t in named], version + 1)
    answers2 = second()
    for w in workers:
        w.swerepair_leave()
    group.close()
    return answers + answers2


def _weights(seed: int) -> list[tuple[str, torch.Tensor]]:
    torch.manual_seed(seed)
    return [(n, torch.randn_like(p)) for n, p in _Linear().named_parameters()]


@pytest.mark.parametrize("bucket_bytes", [0, 40, 1 << 20])
def test_workers_of_one_server_receive_and_load_every_update(bucket_bytes: int) -> None:
    named = _weights(1)
    workers = [_ReloadingWorker(rank, _Loader()) for rank in range(2)]  # two tensor-parallel ranks
    answers = _update(workers, named, version=5, bucket_bytes=bucket_bytes)
    assert [a["version"] for a in answers] == [5, 5, 6, 6]
    assert all(a["tensors"] == 3 and a["bytes"] == sum(t.numel() * 4 for _, t in named) for a in answers)
    for w in workers:
        params = dict(w.model_runner.model.module.named_parameters())
        for name, tensor in named:  # the second update (doubled) is what the model now holds
            assert torch.equal(params[name], tensor * 2), name
        assert w.reloaded == sorted(n for n, _ in named) * 2  # loaded through reload_weights, twice
        status = w.swerepair_status()
        assert status["version"] == 6 and status["updates"] == 2 and not status["joined"]


def test_without_reload_weights_the_models_load_weights_is_used() -> None:
    named = _weights(2)
    worker = _Worker(0, _Loader())
    answers = _update([worker], named, version=1, bucket_bytes=0)
    assert [a["version"] for a in answers] == [1, 2]
    assert worker.model_runner.model.seen == [n for n, _ in named] * 2


def test_a_failing_loader_reports_the_error_and_keeps_the_group_in_step() -> None:
    named = _weights(3)
    loader = _Loader(fail_after=1)
    worker = _ReloadingWorker(0, loader)
    first, second = _update([worker], named, version=3, bucket_bytes=0)
    # both updates failed in the loader, but each was received to its end marker: the second
    # update found the group in step (no hang, no garbage header), and the version never moved
    assert "cannot load" in first["error"] and "cannot load" in second["error"]
    assert first["version"] == 0 and worker.swerepair_status()["version"] == 0
    assert "may be incomplete" in worker.swerepair_status()["broken"]  # said until an update loads in full
    loader.fail_after = None
    assert _update([worker], named, version=7, bucket_bytes=0)[0]["version"] == 7
    assert worker.swerepair_status()["broken"] is None


def test_bad_requests_become_errors_not_exceptions() -> None:
    worker = _Worker(0, _Loader())
    assert "swerepair_join first" in worker.swerepair_receive("{}")["error"]
    assert "KeyError" in worker.swerepair_join(json.dumps({"host": "127.0.0.1"}))["error"]
    assert "loader must be" in worker.swerepair_join(json.dumps({"loader": "magic"}))["error"]
    assert "JSON object" in worker.swerepair_join("[1]")["error"]
    with pytest.raises(ValueError, match="swerepair or vllm"):
        make_pusher("sglang", ["http://127.0.0.1:1"])


def test_extension_attributes_do_not_clash_with_a_vllm_worker() -> None:
    # vLLM refuses an extension whose (non-dunder) class attributes the worker already has
    public = [a for a in dir(WeightSyncExtension) if not a.startswith("__")]
    assert public and all(a.startswith(("swerepair_", "_swerepair_")) for a in public)


def test_layers_sharing_a_weight_are_re_derived_after_an_update() -> None:
    # vLLM's CPU build prepacks each linear layer's weight; a tied LM head keeps a stale pack
    # unless it is processed again after the embedding is reloaded
    class Method:
        def __init__(self) -> None:
            self.calls = 0

        def process_weights_after_loading(self, layer: Any) -> None:
            self.calls += 1
            layer.packed = layer.weight.detach().clone()

    class UnquantizedEmbeddingMethod(Method):
        pass

    class Fp8LinearMethod(Method):  # quantized: processing twice would quantize twice
        pass

    def layer(weight: torch.nn.Parameter, method: Method) -> torch.nn.Module:
        module = torch.nn.Module()
        module.weight, module.quant_method = weight, method
        return module

    shared, quantized = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(2))
    model = torch.nn.Module()
    model.embed = layer(shared, UnquantizedEmbeddingMethod())
    model.head = layer(shared, UnquantizedEmbeddingMethod())
    model.alone = layer(torch.nn.Parameter(torch.zeros(2, 2)), UnquantizedEmbeddingMethod())
    model.q1, model.q2 = layer(quantized, Fp8LinearMethod()), layer(quantized, Fp8LinearMethod())
    worker = _Worker(0, _Loader())
    worker.model_runner.model = model
    with torch.no_grad():
        shared.add_(1.0)
    assert worker._swerepair_refresh_tied() == 2
    assert torch.equal(model.head.packed, torch.ones(3, 2))  # the head now computes with the new weight
    assert model.alone.quant_method.calls == 0 and model.q1.quant_method.calls == 0


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_pusher_updates_a_vllm_shaped_server_and_its_greedy_output_matches_the_trainer() -> None:
    from fake_vllm import fake_vllm_server

    from swerepair.agents.inference.hf_backend import HFBackend
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.inference.server_backend import ServerBackend

    model, tokenizer = load_model("tiny-qwen3")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # the trainer's weights now differ from the server's
    prompt = tokenizer("def add(a, b):")["input_ids"]
    ours = HFBackend(model, tokenizer, temperature=0, max_new_tokens=12).generate([prompt])[0]

    with fake_vllm_server(workers=2, refuse_resets=2) as url:
        pusher = VLLMWeightPusher([url], bucket_bytes=1 << 16, timeout_s=120)
        backend = ServerBackend(
            [url], temperature=0, max_new_tokens=12, api="completions", version_source=pusher.version_of
        )
        before = backend.generate([prompt])[0]
        assert before.policy_version == 0 and before.token_ids != ours.token_ids
        pusher.connect()
        stats = pusher.push(policy_weights(model), version=4)
        assert stats.buckets > 2 and pusher.version_of(url) == 4
        after = backend.generate([prompt])[0]
        assert after.token_ids == ours.token_ids  # the server now generates with the trainer's weights
        assert max(abs(a - b) for a, b in zip(after.logprobs, ours.logprobs, strict=True)) < 1e-5
        assert after.policy_version == 4
        status = pusher.rpc(url, "swerepair_status")
        assert [s["version"] for s in status] == [4, 4] and [s["rank"] for s in status] == [1, 2]
        pusher.close()
        assert not any(s["joined"] for s in pusher.rpc(url, "swerepair_status"))


def test_a_failed_push_is_reported_at_once_and_the_pusher_can_connect_again() -> None:
    import time

    from fake_vllm import fake_vllm_server

    from swerepair.agents.inference.models import load_model

    model, _ = load_model("tiny-qwen3")
    with fake_vllm_server() as url:
        pusher = VLLMWeightPusher([url], timeout_s=120)
        pusher.connect()
        pusher.rpc(url, "swerepair_leave")  # the worker is gone from the group (a server restart, say)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="not in a weight-sync group"):
            pusher.push(policy_weights(model), version=1)
        assert time.monotonic() - started < 30  # the worker's answer, not the group's 120 s timeout
        assert pusher.sender is None  # the abandoned group was left
        pusher.connect()
        assert pusher.push(policy_weights(model), version=2).version == 2
        assert pusher.rpc(url, "swerepair_status")[0]["version"] == 2
        pusher.close()
        pusher.close()  # twice is harmless


def test_grpo_trains_against_a_vllm_shaped_server(tmp_path: Path) -> None:
    from fake_vllm import fake_vllm_server

    from swerepair.trainers.config import load_config
    from swerepair.trainers.grpo import GRPOTrainer

    from helpers import token_reward

    with fake_vllm_server() as url:
        config = load_config(
            overrides=dict(
                model="tiny-qwen3",
                device="cpu",
                output_dir=str(tmp_path / "run"),
                servers=[url],
                server_engine="vllm",
                weight_bucket_mb=1,
                group_size=2,
                tasks_per_step=1,
                max_tool_calls=2,
                max_new_tokens=8,
                lr=1e-2,
                micro_batch_size=2,
                env_workers=2,
                progress=False,
                tensorboard=False,
                max_steps=2,
            )
        )
        with GRPOTrainer(config, episode_reward=token_reward) as trainer:
            records = trainer.train()
            statuses = trainer.pusher.rpc(url, "swerepair_status")
        assert [s["version"] for s in statuses] == [2]  # the initial push (0), then one per step
        assert statuses[0]["updates"] == 3
        assert all(r["policy/version_lag_max"] == 0.0 for r in records)  # synchronous: never stale
        assert all(r["episodes/kept"] == 2 for r in records)


def test_serve_with_the_vllm_engine_execs_vllm_with_the_extension_and_training_flags(tmp_path: Path) -> None:
    import subprocess
    import sys

    # a stand-in interpreter that reports what it was started with, in place of vLLM's
    fake_python = tmp_path / "python"
    fake_python.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'dev_mode': os.environ.get('VLLM_SERVER_DEV_MODE')}))\n"
    )
    fake_python.chmod(0o755)
    command = [sys.executable, "-m", "swerepair.cli", "serve", "--engine", "vllm", "--vllm-python", str(fake_python)]
    command += ["--model", "tiny-qwen3", "--host", "0.0.0.0", "--port", "8123", "--vllm-args", "--dtype float32"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    argv = seen["argv"]
    assert seen["dev_mode"] == "1"
    assert argv[:2] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert Path(argv[argv.index("--model") + 1]).is_dir()  # the built-in name resolved to its directory
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert flags["--host"] == "0.0.0.0" and flags["--port"] == "8123" and flags["--dtype"] == "float32"
    assert flags["--worker-extension-cls"] == "swerepair.agents.inference.vllm_extension.WeightSyncExtension"
    assert flags["--logprobs-mode"] == "processed_logprobs" and flags["--generation-config"] == "vllm"
