"""Episodes per minute of `GRPOTrainer` with rollouts on 1 and on 2 embedded inference servers.

Each configuration starts N embedded servers (``InferenceServer`` with its weight endpoints, one
spawned process each, tiny-qwen3 by default) and trains the same job in this process with
``servers`` set to them: every step plays ``tasks_per_step`` x ``group_size`` episodes, the
requests going to the least-loaded server, then updates and pushes the weights to every server
in one group. The reward is a hash of the generated ids, so every step updates and pushes.

Two figures per row, over the steps after the first (which warms up): ``rollout/min``, the
episodes per minute of rollout time (``time/rollout_s``: generation and tool calls), and
``step/min``, episodes per minute of whole steps (rollouts, update, weight push). ``load`` is
the machine's 1-minute load average before the run. The CPU cores are divided between the
servers (``--server-threads``, default cores / N) and the trainer gets all of them: on a small
machine two servers have no more compute than one, so a speed-up shows only where each server
has cores (or a GPU) of its own. Name a count twice (``--servers 1 2 1 2``) to interleave runs.

Run:  .venv/bin/python benchmarks/many_servers.py [--json] [--servers 1 2] [--steps 4]
With --json the figures are also printed as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any


def token_reward(ep: Any, task: Any) -> float:
    """A hash of the generated ids in [0, 1): groups with variance, a step that always updates."""
    ids = [t for t, m in zip(ep.tokens, ep.loss_mask, strict=True) if m]
    return int.from_bytes(hashlib.sha256(",".join(map(str, ids)).encode()).digest()[:6], "big") / 2**48


def serve(model_name: str, threads: int, ports: Any, stop: Any) -> None:
    """One embedded server with weight endpoints; puts its port in `ports`, serves until `stop`."""
    import torch

    from swerepair.agents.inference.models import load_model
    from swerepair.agents.inference.server import InferenceServer
    from swerepair.agents.inference.weight_endpoints import attach_weight_endpoints

    torch.set_num_threads(threads)
    model, tokenizer = load_model(model_name)
    with attach_weight_endpoints(InferenceServer(model, tokenizer, batch_window_s=0.02)) as server:
        ports.put(server.port)
        stop.wait(3600)


@contextlib.contextmanager
def servers(n: int, model_name: str, threads: int) -> Iterator[list[str]]:
    ctx = mp.get_context("spawn")
    stop, procs, urls = ctx.Event(), [], []
    try:
        for _ in range(n):
            ports = ctx.Queue()
            proc = ctx.Process(target=serve, args=(model_name, threads, ports, stop), daemon=True)
            proc.start()
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{ports.get(timeout=300)}")
        yield urls
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def run(n: int, settings: dict[str, Any], steps: int, threads: int) -> dict[str, Any]:
    from swerepair.trainers.config import load_config
    from swerepair.trainers.grpo import GRPOTrainer

    load = os.getloadavg()[0]
    with servers(n, settings["model"], threads) as urls, tempfile.TemporaryDirectory() as tmp:
        config = load_config(overrides={**settings, "servers": urls, "output_dir": tmp, "max_steps": steps})
        with GRPOTrainer(config, episode_reward=token_reward) as trainer:
            walls: list[float] = []
            step = trainer.train_step

            def timed(bar: Any = None) -> dict[str, Any]:
                started = time.monotonic()
                record = step(bar)
                walls.append(time.monotonic() - started)
                return record

            trainer.train_step = timed  # type: ignore[method-assign]
            records = trainer.train()
            requests = dict(trainer.backend.requests)
    later = records[1:] or records
    episodes = sum(r["episodes/kept"] + r["episodes/dropped"] for r in later)
    rollout = sum(r["time/rollout_s"] for r in later)
    wall = sum(walls[1:] or walls)
    return {
        "servers": n,
        "server_threads": threads,
        "steps_timed": len(later),
        "episodes": episodes,
        "rollout_s": rollout,
        "step_s": wall,
        "episodes_per_min_rollout": 60 * episodes / rollout,
        "episodes_per_min_step": 60 * episodes / wall,
        "rollout_s_median": statistics.median(r["time/rollout_s"] for r in later),
        "requests_per_server": list(requests.values()),
        "load_before": load,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    ap.add_argument("--servers", type=int, nargs="+", default=[1, 2], help="server counts to run, in order")
    ap.add_argument("--steps", type=int, default=4, help="steps per run (the first is not timed)")
    ap.add_argument("--model", default="tiny-qwen3")
    ap.add_argument("--tasks-per-step", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--server-threads", type=int, default=0, help="torch threads per server (0: cores / N)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    settings = dict(
        model=args.model,
        device="cpu",
        group_size=args.group_size,
        tasks_per_step=args.tasks_per_step,
        max_tool_calls=2,
        max_new_tokens=args.max_new_tokens,
        lora_layers="all",
        micro_batch_size=4,
        env_workers=4,
        weight_bucket_mb=8,
        progress=False,
        tensorboard=False,
    )
    rows = []
    for n in args.servers:
        threads = args.server_threads or max(1, cores // n)
        rows.append(run(n, settings, args.steps, threads))
    print(f"many servers: {args.model}, {args.tasks_per_step}x{args.group_size} episodes per step, {cores} cores")
    head = f"{'servers':>7} {'threads':>7} {'episodes':>8} {'rollout/min':>11} {'step/min':>8}"
    print(head + f" {'requests':>12} {'load':>5}")
    for r in rows:
        requests = "/".join(map(str, r["requests_per_server"]))
        print(
            f"{r['servers']:>7} {r['server_threads']:>7} {r['episodes']:>8.0f} {r['episodes_per_min_rollout']:>11.1f}"
            f" {r['episodes_per_min_step']:>8.1f} {requests:>12} {r['load_before']:>5.2f}"
        )
    if args.json:
        print(json.dumps({"cores": cores, "settings": settings, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
