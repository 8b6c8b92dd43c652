"""Seconds and GB/s to push a model's weights from the trainer to a receiver, bucketed vs per tensor.

Side by side in one run, on the same tensors (the 135M model's fp32 weights by default):

- **bucketed**: `WeightSender` with 256 MiB buckets over a gloo `WeightSyncGroup` (one control
  message, then one flat buffer, per bucket);
- **per tensor**: the same sender with ``bucket_bytes=0``: one control message and one broadcast per
  tensor;
- **server, bucketed** / **server, one request per tensor**: the same weights pushed to the
  embedded server (``swerepair serve``'s `InferenceServer` with its ``/weights`` endpoints, in a
  second process, loading them into its model) with `ServerWeightPusher`: as one update in
  256 MiB buckets, or the naive way, one update (HTTP requests, control message, broadcast,
  status) per tensor;
- **vLLM, bucketed** / **vLLM, one control message per tensor** (with ``--vllm``): the same
  weights pushed to a vLLM server (the CPU build, ``.venv-vllm`` from ``make vllm-env``, or
  ``--vllm-python``) through the worker extension with `VLLMWeightPusher`, in 256 MiB buckets or
  one bucket per tensor; each update ends with vLLM rebuilding its packed layers and a prefix
  cache reset;
- **server, adapter only** (printed below the table): the cpu-demo LoRA adapter's factors
  (`weight_push: adapter`), which the server composes with the base weights it kept;
- **memory copy**: the same bytes copied into a preallocated buffer in one process
  (``buffer[offset:].copy_(tensor)``), the physical limit of moving them on this machine.

The receiver is a second process (rank 1 of the group) that copies every received tensor into its
own preallocated parameters, as a server loading weights would. Each variant runs ``--repeat``
times after one warm-up; the table shows the median. Both processes share this machine's cores.

Goal: bucketed at least 10x faster than per tensor and at least 25% of the copy bandwidth.

Run:  .venv/bin/python benchmarks/weight_sync.py [--json] [--model smollm2-135m] [--repeat 3] [--vllm]
With --json the figures are also printed as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from typing import Any

GOAL_SPEEDUP = 10.0
GOAL_COPY_FRACTION = 0.25


def _named(model_name: str) -> list[tuple[str, Any]]:
    from swerepair.agents.inference.models import load_model

    model, _ = load_model(model_name)
    seen: set[int] = set()
    out = []
    for name, p in model.named_parameters():  # tied weights travel once
        if id(p) not in seen:
            seen.add(id(p))
            out.append((name, p.detach()))
    return out


def _receiver(port: int, model_name: str, rounds: int, done: Any) -> None:
    import torch

    from swerepair.agents.inference.weights.group import WeightSyncGroup
    from swerepair.agents.inference.weights.receiver import WeightReceiver

    torch.set_num_threads(1)
    params = {n: t.clone() for n, t in _named(model_name)}
    group = WeightSyncGroup("127.0.0.1", port, 1, 2, timeout_s=600)

    def apply(tensors: list[tuple[str, Any]]) -> None:
        for name, t in tensors:
            params[name].copy_(t)

    receiver = WeightReceiver(group, apply)
    for _ in range(rounds):
        receiver.receive_update()
    done.put("ok")
    group.close()


def _server(model_name: str, port_queue: Any, stop: Any) -> None:
    import torch

    from swerepair.agents.inference.models import load_model
    from swerepair.agents.inference.server import InferenceServer
    from swerepair.agents.inference.weight_endpoints import attach_weight_endpoints

    torch.set_num_threads(1)
    model, tokenizer = load_model(model_name)
    with attach_weight_endpoints(InferenceServer(model, tokenizer)) as server:
        port_queue.put(server.port)
        stop.wait(3600)


def _adapter_push(model_name: str, pusher: Any, version: int, runs: int) -> dict[str, Any]:
    """Adapter-only pushes of the cpu-demo LoRA adapter (random factors) to the embedded server:
    the first with the base weights, as a trainer's first push; then the factors alone."""
    import torch
    from peft import get_peft_model

    from swerepair.agents.inference.models import load_model
    from swerepair.trainers.config import load_config
    from swerepair.trainers.model import lora_config
    from swerepair.trainers.weight_sync import adapter_weights, policy_weights

    model, _ = load_model(model_name)
    peft_model = get_peft_model(model, lora_config(load_config(preset="cpu-demo"), model.config.num_hidden_layers))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.01)
    pusher.push(policy_weights(peft_model, merge=False) + adapter_weights(peft_model), version + 1)
    factors = adapter_weights(peft_model)
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        pusher.push(factors, version + 2 + i)
        if i:
            times.append(time.perf_counter() - t0)
    nbytes = sum(t.numel() * t.element_size() for _, t in factors)
    return {"tensors": len(factors), "bytes": nbytes, "seconds": statistics.median(times), "all_seconds": times}


def _vllm_rows(
    args: Any, named: list[tuple[str, Any]], bucket_bytes: int, runs: int, results: dict, counts: dict
) -> None:
    """Push to a vLLM server: bucketed, then one control message per tensor (whole updates both)."""
    import tempfile
    from pathlib import Path

    from swerepair.agents.inference.models import model_path
    from swerepair.agents.inference.vllm_server import vllm_server
    from swerepair.agents.inference.weights.protocol import plan_buckets
    from swerepair.trainers.weight_sync import VLLMWeightPusher

    log = Path(tempfile.mkdtemp()) / "vllm.log"
    server_args = ["--dtype", "float32", "--max-model-len", "1024", "--enforce-eager"]
    with vllm_server(
        args.vllm_python, model_path(args.model), log, args=server_args, env={"VLLM_CPU_KVCACHE_SPACE": "1"}
    ) as url:
        labels = {"vLLM, bucketed": bucket_bytes, "vLLM, one control message per tensor": 0}
        for label, size in labels.items():
            results[label], counts[label] = [], len(plan_buckets(named, size))
        pusher = VLLMWeightPusher([url], bucket_bytes=bucket_bytes)
        pusher.connect()
        assert pusher.sender is not None
        version = 0
        for i in range(runs):
            for label, size in labels.items():
                pusher.sender.bucket_bytes = size
                version += 1
                t0 = time.perf_counter()
                pusher.push(named, version)
                if i:
                    results[label].append(time.perf_counter() - t0)
        pusher.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bucket-mib", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-server", action="store_true", help="skip the embedded-server rows")
    parser.add_argument("--vllm", action="store_true", help="add the vLLM rows (needs a vLLM environment)")
    parser.add_argument("--vllm-python", default=".venv-vllm/bin/python", help="the vLLM environment's python")
    args = parser.parse_args()

    import torch

    from swerepair.agents.inference.http import free_port
    from swerepair.agents.inference.weights.group import WeightSyncGroup
    from swerepair.agents.inference.weights.protocol import plan_buckets
    from swerepair.trainers.weight_sync import WeightSender

    named = _named(args.model)
    nbytes = sum(t.numel() * t.element_size() for _, t in named)
    bucket_bytes = args.bucket_mib * 2**20
    runs = 1 + args.repeat
    ctx = mp.get_context("spawn")
    port, done = free_port(), ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(port, args.model, 2 * runs, done))
    proc.start()
    group = WeightSyncGroup("127.0.0.1", port, 0, 2, timeout_s=600)
    results: dict[str, list[float]] = {"bucketed": [], "per tensor": [], "memory copy": []}
    counts = {"bucketed": len(plan_buckets(named, bucket_bytes)), "per tensor": len(plan_buckets(named, 0))}
    version = 0
    for i in range(runs):
        for label, size in (("bucketed", bucket_bytes), ("per tensor", 0)):
            version += 1
            stats = WeightSender(group, size).push(named, version)
            if i:
                results[label].append(stats.seconds)
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        t0 = time.perf_counter()
        offset = 0
        for _, t in named:
            n = t.numel() * t.element_size()
            buffer[offset : offset + n].copy_(t.reshape(-1).view(torch.uint8))
            offset += n
        if i:
            results["memory copy"].append(time.perf_counter() - t0)
    ok = done.get(timeout=600) == "ok"
    proc.join(timeout=60)
    group.close()

    adapter = None
    if not args.no_server:
        from swerepair.trainers.weight_sync import ServerWeightPusher

        ports, stop = ctx.Queue(), ctx.Event()
        server = ctx.Process(target=_server, args=(args.model, ports, stop), daemon=True)
        server.start()
        url = f"http://127.0.0.1:{ports.get(timeout=600)}"
        pusher = ServerWeightPusher([url], bucket_bytes=bucket_bytes)
        pusher.connect()
        results["server, bucketed"], results["server, one request per tensor"] = [], []
        counts["server, bucketed"], counts["server, one request per tensor"] = counts["bucketed"], len(named)
        for i in range(runs):
            version += 1
            t0 = time.perf_counter()
            pusher.push(named, version)
            if i:
                results["server, bucketed"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for item in named:
                version += 1
                pusher.push([item], version)
            if i:
                results["server, one request per tensor"].append(time.perf_counter() - t0)
        adapter = _adapter_push(args.model, pusher, version, runs)
        pusher.close()
        stop.set()
        server.join(timeout=60)

    if args.vllm:
        _vllm_rows(args, named, bucket_bytes, runs, results, counts)

    rows = []
    for label, times in results.items():
        median = statistics.median(times)
        rows.append(
            {
                "variant": label,
                "messages": counts.get(label, 0),
                "seconds": median,
                "gb_per_s": nbytes / median / 1e9,
                "all_seconds": times,
            }
        )
    by = {r["variant"]: r for r in rows}
    speedup = by["per tensor"]["seconds"] / by["bucketed"]["seconds"]
    copy_fraction = by["bucketed"]["gb_per_s"] / by["memory copy"]["gb_per_s"]
    server_speedup = None
    if "server, bucketed" in by:
        server_speedup = by["server, one request per tensor"]["seconds"] / by["server, bucketed"]["seconds"]
    head = f"{args.model}: {len(named)} tensors, {nbytes / 1e6:.1f} MB, gloo over loopback"
    print(f"{head}, median of {args.repeat}")
    print(f"{'variant':38s} {'control msgs':>12s} {'seconds':>9s} {'GB/s':>7s}")
    for r in rows:
        print(f"{r['variant']:38s} {r['messages']:>12d} {r['seconds']:9.3f} {r['gb_per_s']:7.2f}")
    if server_speedup is not None:
        print(f"server: bucketed vs one request per tensor: {server_speedup:.1f}x faster")
        print(
            f"server, adapter only (cpu-demo LoRA, {adapter['tensors']} tensors, {adapter['bytes'] / 1e6:.1f} MB): "
            f"{adapter['seconds']:.3f} s"
        )
    print(
        f"bucketed vs per tensor: {speedup:.1f}x faster (goal {GOAL_SPEEDUP:.0f}x); "
        f"bucketed / memory copy bandwidth: {copy_fraction:.0%} (goal {GOAL_COPY_FRACTION:.0%})"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "tensors": len(named),
                    "bytes": nbytes,
                    "bucket_bytes": bucket_bytes,
                    "rows": rows,
                    "speedup_vs_per_tensor": speedup,
                    "server_speedup_vs_request_per_tensor": server_speedup,
                    "server_adapter_only": adapter,
                    "fraction_of_copy_bandwidth": copy_fraction,
                    "goals_met": speedup >= GOAL_SPEEDUP and copy_fraction >= GOAL_COPY_FRACTION,
                    "receiver_ok": ok,
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "torch": torch.__version__,
                    },
                }
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
