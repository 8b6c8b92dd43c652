"""Step time of `GRPOTrainer` on 1 and on 2 data-parallel ranks (``torchrun``, gloo, CPU).

Each configuration is one ``torchrun --nproc_per_node N`` run of the same training job (the same
global batch: ``tasks_per_step`` tasks x ``group_size`` episodes per step, LoRA, plain data
parallelism or ``--zero-stage 2``); the ranks split the step's task groups, so each plays and
trains on 1/N of the batch. The CPU cores are divided between the ranks (``OMP_NUM_THREADS`` =
cores / N, or ``--threads``): with the default, two ranks have no more compute than one, and the
table shows the cost of data parallelism (gathering episodes, reducing gradients, the slowest
rank's wait) more than its gain; with ``--threads 1`` each rank has a core of its own, as each
would have a GPU. The reward is a hash of the
generated ids, so every group has variance and every step updates.

The step time is the wall time of `GRPOTrainer.train_step` on rank 0 (rollouts, gathering,
advantages, the update with its all-reduce, metrics), median (and minimum, the figure least
disturbed by other work) over the steps after the first; speed-up is of the medians against the
first row; ``load`` is the machine's 1-minute load average before the run (other work on a shared
machine slows every column). Name a count twice (``--ranks 1 2 1 2``) to interleave repeated runs.

Run:  .venv/bin/python benchmarks/data_parallel.py [--json] [--ranks 1 2] [--steps 4] [--model tiny-qwen3]
With --json the figures are also printed as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def token_reward(ep: Any, task: Any) -> float:
    """A hash of the generated ids in [0, 1): groups with variance, a step that always updates."""
    ids = [t for t, m in zip(ep.tokens, ep.loss_mask, strict=True) if m]
    return int.from_bytes(hashlib.sha256(",".join(map(str, ids)).encode()).digest()[:6], "big") / 2**48


def child(settings: dict[str, Any], out: Path) -> None:
    """One rank: train, time each step, rank 0 writes the times."""
    import torch

    from swerepair.trainers.config import load_config
    from swerepair.trainers.grpo import GRPOTrainer

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    trainer = GRPOTrainer(load_config(overrides=settings), episode_reward=token_reward)
    times: list[float] = []
    step = trainer.train_step

    def timed(bar: Any = None) -> dict[str, Any]:
        started = time.monotonic()
        record = step(bar)
        times.append(time.monotonic() - started)
        return record

    trainer.train_step = timed  # type: ignore[method-assign]
    records = trainer.train()
    if trainer.ranks.is_main:
        keep = ("time/rollout_s", "time/training_s", "train/episodes", "throughput/generated_tokens")
        rows = [{k: r.get(k) for k in keep} for r in records]
        out.write_text(json.dumps({"step_s": times, "records": rows}), encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(ranks: int, settings: dict[str, Any], threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="swerepair-dp-") as tmp:
        out = Path(tmp) / "times.json"
        settings = {**settings, "output_dir": str(Path(tmp) / "run")}
        env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")}
        env.update(OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu")
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(ranks),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            __file__,
            "--child",
            json.dumps(settings),
            str(out),
        ]
        started = time.monotonic()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{ranks} rank(s) failed:\n{proc.stderr[-6000:]}")
        result = json.loads(out.read_text(encoding="utf-8"))
        result["wall_s"] = time.monotonic() - started
        return result


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]), Path(sys.argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts to measure")
    ap.add_argument("--steps", type=int, default=4, help="training steps per run (the first is warm-up)")
    ap.add_argument("--model", default="tiny-qwen3")
    ap.add_argument("--zero-stage", type=int, default=0, choices=[0, 2])
    ap.add_argument("--tasks-per-step", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="threads per rank (default: the cores / the ranks)")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    settings = dict(
        model=args.model,
        device="cpu",
        dtype="float32",
        tasks_per_step=args.tasks_per_step,
        group_size=args.group_size,
        max_tool_calls=1,
        max_new_tokens=args.max_new_tokens,
        micro_batch_size=args.group_size,
        env_workers=2,
        lora_layers="all",
        max_steps=args.steps,
        save_every=0,
        tensorboard=False,
        progress=False,
        zero_stage=args.zero_stage,
        lr=1e-3,
    )
    print(
        f"{platform.processor() or platform.machine()}, {cores} cores; {args.model}, "
        f"{args.tasks_per_step} tasks x {args.group_size} episodes per step, {args.max_new_tokens} new tokens, "
        f"zero_stage {args.zero_stage}"
    )
    rows = []
    for n in args.ranks:  # a count named twice runs twice (interleave them on a shared machine)
        load = os.getloadavg()[0]
        threads = args.threads or max(1, cores // n)
        result = launch(n, settings, threads)
        steady = result["step_s"][1:] or result["step_s"]
        later = result["records"][1:] or result["records"]
        rows.append(
            {
                "ranks": n,
                "threads_per_rank": threads,
                "step_s_median": statistics.median(steady),
                "step_s_min": min(steady),
                "step_s": result["step_s"],
                "rollout_s_median": statistics.median(r["time/rollout_s"] for r in later),
                "training_s_median": statistics.median(r["time/training_s"] for r in later),
                "episodes_per_step": result["records"][-1]["train/episodes"],
                "wall_s": result["wall_s"],
                "load_before": load,
            }
        )
    base = rows[0]["step_s_median"]
    head = f"{'ranks':>5} {'threads':>7} {'step s':>8} {'min s':>6} {'rollout s':>9} {'train s':>8} {'speed-up':>8}"
    print(head + f" {'episodes':>8} {'load':>5}")
    for r in rows:
        print(
            f"{r['ranks']:>5} {r['threads_per_rank']:>7} {r['step_s_median']:>8.2f} {r['step_s_min']:>6.2f} "
            f"{r['rollout_s_median']:>9.2f} "
            f"{r['training_s_median']:>8.2f} {base / r['step_s_median']:>7.2f}x {r['episodes_per_step']:>8.0f} "
            f"{r['load_before']:>5.1f}"
        )
    if args.json:
        print(json.dumps({"cores": cores, "settings": settings, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
