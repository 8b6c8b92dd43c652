"""The cpu-demo's rollout phase with and without KV reuse in the hf backend, side by side.

One training step's rollouts as ``swerepair train --preset cpu-demo`` plays them: SmolLM2-135M-
Instruct (``--model``), a group of ``group_size`` (6) episodes of the preset's first task, its
budgets (2 tool calls, 64 new tokens per turn, 4096-token context), its sandbox and reward,
``env_workers`` (4) env threads, sampling at temperature 1 seeded as the trainer seeds step
1. The group is played with the backend as it was without reuse (``cache_bytes=0,
grow_in_place=False``) and as it is (prefix cache, the group's prompt encoded once, KV grown in
place), alternating, ``--repeats`` times each. The table gives, per backend, the median
seconds of the whole rollout phase and of generation alone (`HFBackend.stats`), the prompt
tokens run through the model, turns played, and whether the episodes are the same (every
episode's token ids equal; largest difference of a recorded logprob).

Run:  .venv/bin/python benchmarks/rollout.py [--json] [--model smollm2-135m] [--preset cpu-demo]
          [--group-size 6] [--repeats 1]
With --json the figures are also printed as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings

from generation import print_table  # benchmarks/generation.py: the same table layout

VARIANTS = {"without reuse": dict(cache_bytes=0, grow_in_place=False), "with reuse": {}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="model name or path (default smollm2-135m)")
    ap.add_argument("--preset", default="cpu-demo", help="training preset whose rollouts are played (default cpu-demo)")
    ap.add_argument("--group-size", type=int, default=None, help="episodes in the group (default: the preset's)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per backend, median reported (default 1)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    args = ap.parse_args()
    if args.repeats < 1 or (args.group_size is not None and args.group_size < 1):
        ap.error("--repeats and --group-size must be at least 1")

    import torch

    from swerepair.agents.inference.chat import ChatRenderer
    from swerepair.agents.inference.hf_backend import HFBackend
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.policies.model import ModelPolicy
    from swerepair.agents.scaffold import resolve_scaffold
    from swerepair.envs.rollout import run_episodes
    from swerepair.trainers.config import ConfigError, load_config
    from swerepair.trainers.episodes import env_factory, select_tasks, step_seed

    overrides = {"model": args.model}
    if args.group_size is not None:
        overrides["group_size"] = args.group_size
    try:
        cfg = load_config(preset=args.preset, overrides=overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("swerepair").setLevel(logging.ERROR)
    started, load_before = time.perf_counter(), os.getloadavg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tokenizer = load_model(cfg.model, device="cpu")
        tasks = select_tasks(cfg)
        scaffold = resolve_scaffold(cfg.scaffold)
        renderer = ChatRenderer(tokenizer, scaffold.tool_schemas())
        make_env = env_factory(cfg, tasks, renderer, scaffold)
        task_ids = [tasks[0].instance_id] * cfg.group_size
        times: dict[str, list[float]] = {k: [] for k in VARIANTS}
        gen_times: dict[str, list[float]] = {k: [] for k in VARIANTS}
        encoded: dict[str, int] = {}
        episodes: dict[str, list] = {}
        for rep in range(args.repeats):
            for label, kwargs in VARIANTS.items():
                backend = HFBackend(
                    model,
                    tokenizer,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    max_new_tokens=cfg.max_new_tokens,
                    seed=cfg.seed,
                    **kwargs,
                )
                backend.generator.manual_seed(step_seed(cfg.seed, 1, "sampling"))
                t0 = time.perf_counter()
                eps = run_episodes(
                    make_env,
                    ModelPolicy(backend, renderer),
                    task_ids,
                    seed=step_seed(cfg.seed, 1, "env"),
                    workers=cfg.env_workers,
                )
                times[label].append(time.perf_counter() - t0)
                gen_times[label].append(backend.stats["seconds"])
                encoded[label], episodes[label] = backend.stats["encoded_tokens"], eps
                print(f"  {label} (run {rep + 1}): {times[label][-1]:.1f} s", file=sys.stderr, flush=True)
    pairs = list(zip(episodes["without reuse"], episodes["with reuse"], strict=True))
    same = sum(a.tokens == b.tokens for a, b in pairs)
    diffs = [abs(x - y) for a, b in pairs if a.tokens == b.tokens for x, y in zip(a.logprobs, b.logprobs, strict=True)]
    med = {k: statistics.median(v) for k, v in times.items()}
    gen = {k: statistics.median(v) for k, v in gen_times.items()}
    turns = {k: sum(len(e.info.get("policy_versions") or []) for e in v) for k, v in episodes.items()}
    result = {
        "model": cfg.model,
        "preset": args.preset,
        "task_id": task_ids[0],
        "group_size": cfg.group_size,
        "max_tool_calls": cfg.max_tool_calls,
        "max_new_tokens": cfg.max_new_tokens,
        "seconds": {k: round(v, 2) for k, v in med.items()},
        "generation_seconds": {k: round(v, 2) for k, v in gen.items()},
        "runs": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "encoded_tokens": encoded,
        "turns": turns,
        "speedup_rollout": round(med["without reuse"] / med["with reuse"], 2),
        "speedup_generation": round(gen["without reuse"] / gen["with reuse"], 2),
        "same_episodes": f"{same}/{len(pairs)}",
        "max_logprob_diff": max(diffs, default=0.0),
        "total_s": round(time.perf_counter() - started, 1),
        "machine": {
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
    }
    rows = [("backend", "rollout s", "generation s", "prompt tokens run", "turns", "speed-up (gen)", "same episodes")]
    for label in VARIANTS:
        reuse = label == "with reuse"
        rows.append(
            (
                label,
                f"{med[label]:.1f}",
                f"{gen[label]:.1f}",
                str(encoded[label]),
                str(turns[label]),
                f"{result['speedup_rollout']:.2f}x ({result['speedup_generation']:.2f}x)" if reuse else "1.00x",
                result["same_episodes"] if reuse else "",
            )
        )
    print_table(rows, left=1)
    print(
        f"\n{cfg.model}, preset {args.preset}: {cfg.group_size} episodes of {task_ids[0]}, {cfg.max_tool_calls} tool "
        f"calls, {cfg.max_new_tokens} new tokens per turn; largest logprob difference {result['max_logprob_diff']:.1e}"
    )
    print(
        f"CPU, {torch.get_num_threads()} torch threads; total {result['total_s']} s; 1-min load average before/after: "
        f"{load_before[0]:.2f}/{result['machine']['loadavg_1m_after']:.2f}"
    )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
