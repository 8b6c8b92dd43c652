"""Generated tokens per second of the ``hf`` backend (`HFBackend.generate`) on CPU.

For each model (the built-ins "tiny-qwen3" and "smollm2-135m") and batch size (1, 4, 8) this
measures, on the nano-agent's first observation for the first bundled task (system message
``nano_agent().render_system("/workspace")`` plus the task's problem_statement, rendered with
the model's chat template and the nano-agent's tools, ~1.1k tokens), every batch row being that
same prompt (so there is no padding):

- time to first token: ``generate`` with ``max_new_tokens=1``, i.e. the prefill of the whole
  batch plus one sampling step;
- generation: ``generate`` with ``max_new_tokens=--new-tokens`` (default 64), reported as
  ``batch * new_tokens / seconds`` (prefill included, as a rollout pays it).

Every row generates the full `--new-tokens`: the backend's stop ids are emptied after
construction (``backend.stop_ids = []``; `HFBackend.generate` reads them at call time), so runs
are comparable whatever the model samples. Sampling at temperature 1.0, top_p 1.0, seed 0.
One warm-up ``generate`` (full length) per (model, batch) precedes the measurements; with
``--repeats N`` each figure is the median of N runs. CPU timings move a lot when other
processes share the cores: the JSON records the 1-minute load average before and after.

Run:  .venv/bin/python benchmarks/generation.py [--json] [--models tiny-qwen3,smollm2-135m]
          [--batches 1,4,8] [--new-tokens 64] [--threads N] [--repeats 1]
With --json the figures are also printed as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings

from swerepair.agents.inference.models import BUILTIN_MODELS

SEED = 0


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def first_observation(tokenizer) -> tuple[str, list[int]]:
    """(task id, prompt ids) of the nano-agent's first observation for the first bundled task."""
    from swerepair.agents.inference.chat import ChatRenderer
    from swerepair.agents.scaffold import nano_agent
    from swerepair.envs.tasks import load_tasks

    scaffold, task = nano_agent(), load_tasks("bundled")[0]
    renderer = ChatRenderer(tokenizer, scaffold.tool_schemas())
    messages = [
        {"role": "system", "content": scaffold.render_system("/workspace")},
        {"role": "user", "content": task.problem_statement},
    ]
    return task.instance_id, renderer.encode(renderer.render(messages, add_generation_prompt=True))


def timed_generate(backend, prompts, max_new: int, repeats: int) -> float:
    """Median seconds of ``backend.generate(prompts)`` at `max_new` tokens, each row full length."""
    backend.max_new_tokens = max_new
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gens = backend.generate(prompts)
        times.append(time.perf_counter() - t0)
        if any(len(g.token_ids) != max_new for g in gens):
            raise RuntimeError("a row stopped early although the stop ids are empty")
    return statistics.median(times)


def bench_model(name: str, batches: list[int], new_tokens: int, repeats: int) -> dict:
    from swerepair.agents.inference.hf_backend import HFBackend
    from swerepair.agents.inference.models import load_model

    t0 = time.perf_counter()
    model, tokenizer = load_model(name, device="cpu")
    load_s = time.perf_counter() - t0
    task_id, prompt = first_observation(tokenizer)
    params = sum(p.numel() for p in model.parameters())
    out = {"task_id": task_id, "prompt_tokens": len(prompt), "params": params, "load_s": round(load_s, 2)}
    out["batches"] = {}
    for b in batches:
        backend = HFBackend(model, tokenizer, temperature=1.0, top_p=1.0, max_new_tokens=new_tokens, seed=SEED)
        backend.stop_ids = []  # run every row to max_new_tokens (read at generate time)
        prompts = [prompt] * b
        timed_generate(backend, prompts, new_tokens, 1)  # warm-up
        ttft = timed_generate(backend, prompts, 1, repeats)
        secs = timed_generate(backend, prompts, new_tokens, repeats)
        out["batches"][str(b)] = {
            "batch": b,
            "new_tokens": new_tokens,
            "ttft_s": round(ttft, 4),
            "seconds": round(secs, 4),
            "tokens_per_s": round(b * new_tokens / secs, 2),
            "decode_tokens_per_s": round(b * (new_tokens - 1) / (secs - ttft), 2) if secs > ttft else None,
        }
        print(f"  {name} batch {b}: {secs:.2f} s", file=sys.stderr, flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(BUILTIN_MODELS), help="comma-separated (default: both built-ins)")
    ap.add_argument("--batches", default="1,4,8", help="comma-separated batch sizes (default 1,4,8)")
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens generated per row (default 64)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per figure, median reported (default 1)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    batches = ints(args.batches)
    if not models or not batches or min(batches) < 1:
        ap.error("--models and --batches must be non-empty, batch sizes at least 1")
    if args.new_tokens < 2 or args.repeats < 1 or (args.threads is not None and args.threads < 1):
        ap.error("--new-tokens must be at least 2, --repeats and --threads at least 1")

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.getLogger("swerepair").setLevel(logging.ERROR)
    result: dict = {"models": {}}
    started, load_before = time.perf_counter(), os.getloadavg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in models:
            result["models"][name] = bench_model(name, batches, args.new_tokens, args.repeats)
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["settings"] = dict(new_tokens=args.new_tokens, batches=batches, repeats=args.repeats, seed=SEED)
    result["settings"].update(temperature=1.0, top_p=1.0, same_prompt_every_row=True)
    threads, cpus = torch.get_num_threads(), os.cpu_count()
    result["machine"] = dict(device="cpu", torch_threads=threads, cpu_count=cpus, torch=torch.__version__)
    result["machine"].update(python=platform.python_version(), platform=platform.platform())
    # 1-minute load averages: a figure well above torch_threads means other processes shared the CPUs
    result["machine"].update(loadavg_1m_before=round(load_before[0], 2), loadavg_1m_after=round(os.getloadavg()[0], 2))

    rows = [("model", "batch", "prompt tok", "new/row", "TTFT s", "seconds", "gen tok/s", "decode tok/s")]
    for name, m in result["models"].items():
        for r in m["batches"].values():
            dec = f"{r['decode_tokens_per_s']:.1f}" if r["decode_tokens_per_s"] is not None else "n/a"
            nums = (r["batch"], m["prompt_tokens"], r["new_tokens"], f"{r['ttft_s']:.3f}", f"{r['seconds']:.3f}")
            rows.append((name, *map(str, nums), f"{r['tokens_per_s']:.1f}", dec))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i < 1 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\nCPU, {threads} torch threads ({cpus} CPUs), torch {torch.__version__}; every row is the same prompt")
    print("gen tok/s = batch*new/seconds (prefill included); decode tok/s = batch*(new-1)/(seconds-TTFT)")
    print(
        f"total {result['total_s']} s (model loading included); 1-min load average before/after: "
        f"{load_before[0]:.2f}/{result['machine']['loadavg_1m_after']:.2f}"
    )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
