"""Live weights into a real vLLM server on CUDA, over NCCL where there are two GPUs (the trainer
on GPU 0, the server on GPU 1) and over gloo (staged through host memory) where there is one:
NCCL cannot join two ranks on one device.

Needs a CUDA machine and a vLLM environment with the CUDA build of vLLM and this package (set
``SWEREPAIR_VLLM_PYTHON``, or ``.venv-vllm`` made by hand with ``pip install vllm`` and
``pip install --no-deps -e .``); skipped otherwise. Run it with ``pytest -m gpu tests/gpu``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from vllm_launch import check_live_weights, vllm_python, vllm_server

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
BACKEND = "nccl" if GPUS >= 2 else "gloo"


@pytest.fixture(scope="module")
def vllm_gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = vllm_python()
    if GPUS == 0 or python is None:
        pytest.skip("needs CUDA and a vLLM environment (SWEREPAIR_VLLM_PYTHON)")
    from swerepair.agents.inference.smollm2 import converted_path

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    args = ["--dtype", "float32", "--max-model-len", "2048", "--gpu-memory-utilization", "0.3"]
    env = {"CUDA_VISIBLE_DEVICES": "1"} if GPUS >= 2 else {}
    with vllm_server(python, converted_path(), log, args=args, env=env) as url:
        yield url


def test_vllm_on_cuda_serves_the_trainers_weights_after_a_push(vllm_gpu_server: str) -> None:
    from swerepair.agents.inference.models import load_model

    model, tokenizer = load_model("smollm2-135m", device="cuda:0", dtype=torch.float32)
    # different kernels (and TF32 where vLLM enables it): logprobs agree closely, greedy may not
    check_live_weights(
        vllm_gpu_server, model, tokenizer, backend=BACKEND, device="cuda:0", logprob_tol=5e-2, same_greedy=False
    )
