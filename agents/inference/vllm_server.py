"""Starting a vLLM OpenAI server that accepts live weights from swerepair's trainer.

`vllm_server` runs ``python -m vllm.entrypoints.openai.api_server`` from a given interpreter
(vLLM usually lives in an environment of its own: it pins its own torch and transformers) with
the worker extension `swerepair.agents.inference.vllm_extension.WeightSyncExtension` and vLLM's development
endpoints (``VLLM_SERVER_DEV_MODE=1``: ``/collective_rpc``, ``/reset_prefix_cache``), which is
all `swerepair.trainers.weight_sync.VLLMWeightPusher` needs. The same command by hand is in
docs/inference.md.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from swerepair.agents.inference.http import free_port, wait_healthy

__all__ = ["EXTENSION", "TRAINING_FLAGS", "vllm_command", "vllm_environment", "vllm_server"]

EXTENSION = "swerepair.agents.inference.vllm_extension.WeightSyncExtension"


#: Server flags training relies on: logprobs of the distribution actually sampled from (after
#: temperature; vLLM's default is the raw logits' logprobs), and sampling defaults that come from
#: the request alone (not from the model's generation_config.json, whose top_k or repetition
#: penalty would change the distribution the trainer assumes).
TRAINING_FLAGS = ("--logprobs-mode", "processed_logprobs", "--generation-config", "vllm")


def vllm_command(
    python: str, model_dir: str | Path, port: int, args: Sequence[str] = (), host: str = "127.0.0.1"
) -> list[str]:
    """The command line of a vLLM server for `model_dir` on `host`:`port` with the extension
    and `TRAINING_FLAGS` (a flag given in `args` wins)."""
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    command += ["--host", host, "--port", str(port), "--worker-extension-cls", EXTENSION]
    for flag, value in zip(TRAINING_FLAGS[::2], TRAINING_FLAGS[1::2], strict=True):
        if flag not in args:
            command += [flag, value]
    return [*command, *args]


def vllm_environment(**extra: str) -> dict[str, str]:
    """This process's environment for a vLLM server, with its development endpoints enabled
    (``VLLM_SERVER_DEV_MODE=1``: ``/collective_rpc`` and ``/reset_prefix_cache``) and `extra`."""
    return {**os.environ, "VLLM_SERVER_DEV_MODE": "1", **extra}


@contextlib.contextmanager
def vllm_server(
    python: str,
    model_dir: str | Path,
    log_path: Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 600,
) -> Iterator[str]:
    """``vllm`` serving `model_dir` on a free local port with the extension and the dev endpoints
    (``VLLM_SERVER_DEV_MODE=1``); yields its root URL once ``/health`` answers, stops it on exit.
    Its output goes to `log_path`, whose tail is in the error if it dies or is not ready in time."""
    port = free_port()
    environment = vllm_environment(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1")
    environment.update(env or {})
    command = vllm_command(python, model_dir, port, args)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(
                url,
                ready_timeout_s,
                interval_s=1.0,
                gone=lambda: None if proc.poll() is None else f"vLLM exited with {proc.returncode}",
            )
        except (RuntimeError, TimeoutError) as exc:
            raise type(exc)(f"{exc}:\n{log_path.read_text()[-4000:]}") from None
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"vLLM log: {log_path}", file=sys.stderr)
