"""Time and memory per training step of the two backends, swerepair and trl, on the same small config (CPU).

The same `TrainConfig` (below; ``--model`` picks the policy) is trained with each backend, each in a FRESH
subprocess (this script re-invoked with a hidden ``--child BACKEND``; env ``TRL_EXPERIMENTAL_SILENCE=1``; its
own temporary ``output_dir``), for ``--warmup`` + ``--steps`` optimizer steps; the first ``--warmup`` steps
(lazy imports, allocator growth, first-call set-up) are not counted:

- swerepair: ``GRPOTrainer(config).train()``; a step's time is ``time/rollout_s + time/training_s +
  time/weight_sync_s`` of its metrics record (rollout: the group's episodes; training: advantages left out,
  the micro-batches' forward + backward, clipping, AdamW; weight sync: nothing to do in-process);
- trl: ``build_trl_trainer(config).train()`` (trl.GRPOTrainer fed by `SweRepairRollout`, ``max_steps`` =
  warmup + steps); a step's time is the ``step_time`` of its ``state.log_history`` entry: TRL's sum of
  ``training_step`` over the step's gradient-accumulation micro-batches, i.e. the rollout (called from the
  first micro-batch's ``_prepare_inputs``), rewards, advantages and forward + backward -- the optimizer
  step and clipping are outside it. The rollout part is timed by wrapping ``trainer.rollout_func`` (read at
  call time, ``self.rollout_func(prompts, self)``); "update" is step_time minus that.

As a cross-check each child also times whole steps from the outside (JSON ``step_wall_*``, printed below the
table): swerepair wraps ``trainer.train_step`` (rollout, advantages, update, metrics line); trl uses a
``TrainerCallback`` from ``on_step_begin`` to ``on_step_end`` (all micro-batches, clipping, optimizer and
scheduler step; its log line and the final checkpoint come after ``on_step_end``).

Memory: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child at the end of training ("peak MiB",
checkpoint save included), and that minus the child's current RSS right after the trainer was built (model,
tokenizer, tasks, adapter; "peak over built MiB"). Also reported: the mean reward of the measured steps
(env reward + shaping; TRL's ``reward`` is the mean over its non-failed episodes) and the number of
trainable parameters (the LoRA adapter).

Default config (both backends): tiny-qwen3, tasks swerepair__intervals-5 and swerepair__durations-1,
group_size 4, tasks_per_step 2 (8 episodes per step), max_tool_calls 2, max_new_tokens 32, micro_batch_size 4,
lr 1e-4, LoRA (defaults: rank 8, last third of the layers), token_mean (TRL loss_type dapo), beta 0,
localization shaping, seed 0, env_workers 4, float32 CPU, gradient checkpointing, and drop_zero_variance off
(``--drop-zero-variance`` turns it on): TRL trains on zero-variance groups with advantage 0, so with
swerepair's default a model whose rewards are all equal (tiny-qwen3 always scores 0) would skip every update
there and the comparison would pit rollouts alone against rollouts + updates. Sampling differs between
the backends (different seeds per call and batch layout), so rewards and episode lengths -- hence times --
are comparable in distribution only, not step by step.

Run:  .venv/bin/python benchmarks/backends.py [--json] [--model tiny-qwen3|smollm2-135m] [--steps 4]
          [--warmup 1] [--backends swerepair,trl] [--timeout 1800]
With --json the figures are also printed as one JSON object on the last line of stdout. Exits 1 when a
backend's child failed (its stderr tail is printed and its row marked failed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

BACKENDS = ("swerepair", "trl")
MiB = 2**20
TASK_IDS = ["swerepair__intervals-5", "swerepair__durations-1"]


def base_config(model: str, drop_zero_variance: bool = False) -> dict:
    """The settings shared by both backends (``backend``, ``max_steps``, ``output_dir`` are set per child)."""
    return {
        "model": model,
        "device": "cpu",
        "dtype": "float32",
        "finetune": "lora",
        "gradient_checkpointing": True,
        "task_ids": list(TASK_IDS),
        "shaping": "localization",
        "group_size": 4,
        "tasks_per_step": 2,
        "max_tool_calls": 2,
        "max_new_tokens": 32,
        "micro_batch_size": 4,
        "lr": 1e-4,
        "aggregation": "token_mean",
        "beta": 0.0,
        "seed": 0,
        "env_workers": 4,
        "progress": False,
        "tensorboard": False,
        "save_every": 0,
        "save_episodes": False,
        # TRL keeps zero-variance groups in the batch (advantage 0) and always runs forward + backward; with
        # swerepair's default (drop them) a model that never scores, such as tiny-qwen3, would skip every update
        "drop_zero_variance": drop_zero_variance,
    }


# ---------------------------------------------------------------------------------------------- child


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


def _maxrss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_swerepair(config, warmup: int) -> dict:
    from swerepair.trainers.grpo import GRPOTrainer

    t0 = time.perf_counter()
    trainer = GRPOTrainer(config)
    out = {"build_s": time.perf_counter() - t0, "built_rss_mib": _rss_mib(), "built_maxrss_mib": _maxrss_mib()}
    out["trainable_params"] = sum(p.numel() for p in trainer.policy_model.trainable_parameters().values())
    walls: list[float] = []
    inner = trainer.train_step

    def timed_step(*a, **kw):
        t = time.perf_counter()
        try:
            return inner(*a, **kw)
        finally:
            walls.append(time.perf_counter() - t)

    trainer.train_step = timed_step  # train() calls self.train_step(bar): the instance attribute wins
    t0 = time.perf_counter()
    try:
        records = trainer.train()
    finally:
        trainer.close()
    out["train_s"] = time.perf_counter() - t0
    if len(records) != config.max_steps:
        raise RuntimeError(f"train() ran {len(records)} steps, expected {config.max_steps}")
    measured = records[warmup:]
    out["step_s"] = [r["time/rollout_s"] + r["time/training_s"] + r["time/weight_sync_s"] for r in measured]
    out["rollout_s"] = [r["time/rollout_s"] for r in measured]
    out["update_s"] = [r["time/training_s"] for r in measured]
    out["step_wall_s"] = walls[warmup:]
    out["rewards"] = [r.get("reward/mean") for r in measured]
    out["generated_tokens"] = [r.get("throughput/generated_tokens") for r in measured]
    out["updated"] = [r.get("train/updated") for r in measured]
    return out


def _child_trl(config, warmup: int) -> dict:
    from transformers import TrainerCallback

    from swerepair.trainers.trl_backend import build_trl_trainer

    t0 = time.perf_counter()
    trainer = build_trl_trainer(config)
    out = {"build_s": time.perf_counter() - t0, "built_rss_mib": _rss_mib(), "built_maxrss_mib": _maxrss_mib()}
    out["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)

    rollout_pending: list[float] = []  # rollout seconds since the last step ended
    rollout_per_step: list[float] = []
    walls: list[float] = []
    inner = trainer.rollout_func

    def timed_rollout(prompts, trl_trainer):
        t = time.perf_counter()
        try:
            return inner(prompts, trl_trainer)
        finally:
            rollout_pending.append(time.perf_counter() - t)

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            walls.append(time.perf_counter() - self.t)
            rollout_per_step.append(sum(rollout_pending))
            rollout_pending.clear()

    trainer.rollout_func = timed_rollout
    trainer.add_callback(StepTimer())
    t0 = time.perf_counter()
    trainer.train()
    out["train_s"] = time.perf_counter() - t0
    logged = [e for e in trainer.state.log_history if "step_time" in e]
    if len(logged) != config.max_steps or len(rollout_per_step) != config.max_steps:
        raise RuntimeError(
            f"expected {config.max_steps} steps, got {len(logged)} log entries with step_time and "
            f"{len(rollout_per_step)} completed steps"
        )
    out["rollout_calls"] = trainer.swerepair_rollout.calls
    measured, rollouts = logged[warmup:], rollout_per_step[warmup:]
    out["step_s"] = [float(e["step_time"]) for e in measured]
    out["rollout_s"] = rollouts
    out["update_s"] = [s - r for s, r in zip(out["step_s"], rollouts, strict=True)]
    out["step_wall_s"] = walls[warmup:]
    out["rewards"] = [e.get("reward") for e in measured]
    out["completion_mean_length"] = [e.get("completions/mean_length") for e in measured]
    return out


def child_main(args: argparse.Namespace) -> int:
    import torch

    from swerepair.trainers.config import load_config

    overrides = json.loads(args.config_json)
    config = load_config(overrides=overrides)
    torch_threads = torch.get_num_threads()
    run = _child_swerepair if args.child == "swerepair" else _child_trl
    out = run(config, args.warmup)
    out["peak_mib"] = _maxrss_mib()
    out["torch_threads"] = torch_threads
    with open(args.result_file, "w", encoding="utf-8") as f:
        json.dump(out, f)
    return 0


# --------------------------------------------------------------------------------------------- parent


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def run_child(args: argparse.Namespace, backend: str, config: dict, root: str) -> dict:
    workdir = tempfile.mkdtemp(prefix=f"{backend}-", dir=root)
    result_file = os.path.join(workdir, "result.json")
    overrides = config | {
        "backend": backend,
        "max_steps": args.warmup + args.steps,
        "output_dir": os.path.join(workdir, "run"),
    }
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        backend,
        "--config-json",
        json.dumps(overrides),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--result-file",
        result_file,
    ]
    env = os.environ | {"TRL_EXPERIMENTAL_SILENCE": "1"}
    row: dict = {"backend": backend, "steps": args.steps, "warmup": args.warmup}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        rc, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    row["process_wall_s"] = round(time.perf_counter() - t0, 1)
    res = None
    if rc == 0:
        try:
            with open(result_file, encoding="utf-8") as f:
                res = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            stderr += f"\n(result file unreadable: {type(e).__name__}: {e})"
    if res is None:
        tail = "\n".join(stderr.strip().splitlines()[-args.stderr_lines :]) or "(no stderr)"
        why = f"timed out after {args.timeout} s" if rc is None else f"exit {rc}"
        row.update(status="failed", reason=why, stderr_tail=tail)
        return row
    step_s = res.pop("step_s")
    row.update(
        status="ok",
        step_s=[round(x, 3) for x in step_s],
        median_s=statistics.median(step_s),
        mean_s=statistics.fmean(step_s),
        rollout_mean_s=_mean(res["rollout_s"]),
        update_mean_s=_mean(res["update_s"]),
        step_wall_median_s=statistics.median(res["step_wall_s"]) if res["step_wall_s"] else None,
        step_wall_mean_s=_mean(res["step_wall_s"]),
        peak_mib=res["peak_mib"],
        built_rss_mib=res["built_rss_mib"],
        peak_over_built_mib=res["peak_mib"] - res["built_rss_mib"],
        reward_mean=_mean(res["rewards"]),
        no_update_steps=sum(1 for u in res.get("updated", []) if not u),
        trainable_params=res["trainable_params"],
    )
    for key in ("rollout_s", "update_s", "step_wall_s"):
        res[key] = [round(x, 3) for x in res[key]]
    row["detail"] = res
    return row


def fmt(x, spec: str) -> str:
    return "-" if x is None else f"{x:{spec}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-qwen3", help="policy model: tiny-qwen3 (default), smollm2-135m, a path")
    ap.add_argument("--steps", type=int, default=4, help="measured optimizer steps per backend (default 4)")
    ap.add_argument("--warmup", type=int, default=1, help="steps run first and not counted (default 1)")
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset of swerepair,trl")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed to each child (default 1800)")
    ap.add_argument("--stderr-lines", type=int, default=25, help="stderr lines of a failed child shown (default 25)")
    ap.add_argument(
        "--drop-zero-variance",
        action="store_true",
        help="swerepair leaves zero-variance groups out of its update (its default; off here so that both "
        "backends run an update every step, as TRL does)",
    )
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    ap.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    ap.add_argument("--config-json", help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.timeout < 1:
        ap.error("--steps and --timeout must be >= 1 and --warmup >= 0")
    if args.child:
        return child_main(args)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or any(b not in BACKENDS for b in backends):
        ap.error(f"--backends must be a subset of {','.join(BACKENDS)}")

    config = base_config(args.model, args.drop_zero_variance)
    versions: dict = {}
    for mod in ("torch", "transformers", "trl", "peft"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as e:  # reported, the child fails with the details
            versions[mod] = f"unavailable ({type(e).__name__})"

    rows: list[dict] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="swerepair-backends-") as root:
        for backend in backends:
            print(
                f"running {backend} ({args.model}, {args.warmup} warm-up + {args.steps} steps) ...",
                file=sys.stderr,
                flush=True,
            )
            row = run_child(args, backend, config, root)
            print(f"  {backend}: {row['status']} in {row['process_wall_s']:.1f} s", file=sys.stderr, flush=True)
            rows.append(row)
    total_wall = time.perf_counter() - t_all

    by = {r["backend"]: r for r in rows}
    ratios: dict = {}
    sw, tr = by.get("swerepair"), by.get("trl")
    if sw and tr and sw["status"] == tr["status"] == "ok":
        for key in ("median_s", "mean_s", "rollout_mean_s", "update_mean_s", "step_wall_median_s"):
            a, b = sw.get(key), tr.get(key)
            ratios[key] = b / a if a and b is not None else None
        for key in ("peak_mib", "peak_over_built_mib"):
            a, b = sw[key], tr[key]
            ratios[key] = b / a if a > 0 else None

    header = (
        "backend",
        "status",
        "steps",
        "s/step median",
        "s/step mean",
        "rollout s/step",
        "update s/step",
        "peak MiB",
        "peak over built MiB",
        "trainable params",
        "reward mean",
    )
    table = [header]
    for r in rows:
        table.append(
            (
                r["backend"],
                r["status"],
                str(r["steps"]),
                fmt(r.get("median_s"), ".2f"),
                fmt(r.get("mean_s"), ".2f"),
                fmt(r.get("rollout_mean_s"), ".2f"),
                fmt(r.get("update_mean_s"), ".2f"),
                fmt(r.get("peak_mib"), ".0f"),
                fmt(r.get("peak_over_built_mib"), ".0f"),
                fmt(r.get("trainable_params"), ","),
                fmt(r.get("reward_mean"), ".3f"),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for k, row in enumerate(table):
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))

    print(
        f"\n{args.model}, {config['tasks_per_step']} tasks x {config['group_size']} episodes per step, "
        f"max_tool_calls {config['max_tool_calls']}, max_new_tokens {config['max_new_tokens']}, micro_batch_size "
        f"{config['micro_batch_size']}, LoRA, float32 CPU, {os.cpu_count()} CPUs; {args.warmup} warm-up step(s) "
        f"not counted; each backend in a fresh process; total wall {total_wall:.1f} s"
    )
    if ratios:
        parts = [
            f"time median {fmt(ratios['median_s'], '.2f')}x",
            f"mean {fmt(ratios['mean_s'], '.2f')}x",
            f"rollout {fmt(ratios['rollout_mean_s'], '.2f')}x",
            f"update {fmt(ratios['update_mean_s'], '.2f')}x",
            f"peak memory {fmt(ratios['peak_mib'], '.2f')}x",
            f"peak over built {fmt(ratios['peak_over_built_mib'], '.2f')}x",
        ]
        print("trl / swerepair: " + ", ".join(parts))
    for r in rows:
        if r["status"] == "ok":
            d = r["detail"]
            print(
                f"{r['backend']}: per-step s {r['step_s']}; whole-step wall median "
                f"{fmt(r['step_wall_median_s'], '.2f')} s; built RSS {r['built_rss_mib']:.0f} MiB; build "
                f"{d['build_s']:.1f} s, train {d['train_s']:.1f} s, process {r['process_wall_s']:.1f} s; "
                f"{d['torch_threads']} torch threads"
            )
            if r["no_update_steps"]:
                print(f"  ({r['no_update_steps']} measured step(s) without an update: all groups zero-variance)")
        else:
            print(f"{r['backend']}: FAILED ({r['reason']}); stderr tail:")
            for line in r["stderr_tail"].splitlines():
                print(f"    {line}")
    failed = [r["backend"] for r in rows if r["status"] != "ok"]
    if args.json:
        machine = {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            **versions,
        }
        result = {
            "config": config | {"warmup": args.warmup, "steps": args.steps, "max_steps": args.warmup + args.steps},
            "rows": rows,
            "ratios": ratios,
            "machine": machine,
            "total_wall_s": round(total_wall, 1),
        }
        print(json.dumps(result, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
