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

These throughput figures run with the backend's KV prefix cache off (``cache_bytes=0``: a
repeated prompt would otherwise be served from it).

``--multi-turn`` measures KV reuse instead, on the shape of an agent's rollout: a group of
``--rows`` episodes (default 6) from that first observation, ``--turns`` turns each (default 4),
every turn generating ``--new-tokens`` tokens per row (stop ids emptied, as above) and then
appending a tool answer of its own to each row: a ChatML tool turn holding a slice of a bundled
project's source file, ``--tool-tokens`` long (default 80-400, drawn per row and turn from a
seeded RNG). The same group runs with the backend as it was without reuse
(``cache_bytes=0, grow_in_place=False``: every turn re-encodes each row's whole history, KV
grown by ``torch.cat``) and as it is (prefix cache, shared prompt encoded once, KV grown in
place), alternating, ``--repeats`` times each, same seed: the table gives each one's seconds
(median), prompt tokens run through the model, the speed-up, and whether the outputs are the
same (ids equal in every row and turn; largest logprob difference).

Run:  .venv/bin/python benchmarks/generation.py [--json] [--models tiny-qwen3,smollm2-135m]
          [--batches 1,4,8] [--new-tokens 64] [--threads N] [--repeats 1]
      .venv/bin/python benchmarks/generation.py --multi-turn [--models smollm2-135m] [--rows 6]
          [--turns 4] [--new-tokens 64] [--tool-tokens 80-400] [--repeats 1] [--json]
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


def print_table(rows: list[tuple[str, ...]], *, left: int) -> None:
    """Print `rows` (the first is the header) in aligned columns: the first `left` columns
    left-aligned, the others right-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print(
            "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))


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
        backend = HFBackend(
            model, tokenizer, temperature=1.0, top_p=1.0, max_new_tokens=new_tokens, seed=SEED, cache_bytes=0
        )
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


def tool_answers(tokenizer, rows: int, turns: int, lengths: tuple[int, int]) -> list[list[list[int]]]:
    """``[row][turn]`` token ids of a ChatML tool turn holding a slice of a bundled project's
    source (as the env would append after a ``cat``), then the next assistant header."""
    import random
    from pathlib import Path

    import swerepair.envs.bundled as bundled

    files = sorted(p for p in (Path(bundled.__file__).parent / "projects").rglob("*.py") if p.stat().st_size > 400)
    rng = random.Random(SEED)
    out = []
    for r in range(rows):
        row = []
        for t in range(turns):
            body = tokenizer(files[(r * turns + t) % len(files)].read_text(), add_special_tokens=False)["input_ids"]
            n = rng.randint(*lengths)
            text = tokenizer.decode((body * (n // max(len(body), 1) + 1))[:n])
            turn = (
                f"<|im_end|>\n<|im_start|>user\n<tool_response>\n{text}\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n"
            )
            row.append(tokenizer(turn, add_special_tokens=False)["input_ids"])
        out.append(row)
    return out


def play_group(backend, prompt: list[int], answers: list[list[list[int]]]) -> tuple[float, list]:
    """(seconds in `generate`, generations per turn) of one multi-turn group."""
    seqs = [list(prompt) for _ in answers]
    turns, seconds = [], 0.0
    for t in range(len(answers[0])):
        t0 = time.perf_counter()
        gens = backend.generate(seqs)
        seconds += time.perf_counter() - t0
        turns.append(gens)
        seqs = [s + list(g.token_ids) + answers[r][t] for r, (s, g) in enumerate(zip(seqs, gens, strict=True))]
    return seconds, turns


def bench_multi_turn(name: str, rows: int, turns: int, new_tokens: int, lengths: tuple[int, int], repeats: int) -> dict:
    from swerepair.agents.inference.hf_backend import HFBackend
    from swerepair.agents.inference.models import load_model

    model, tokenizer = load_model(name, device="cpu")
    task_id, prompt = first_observation(tokenizer)
    answers = tool_answers(tokenizer, rows, turns, lengths)
    variants = {
        "without reuse": dict(cache_bytes=0, grow_in_place=False),
        "with reuse": {},
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    encoded: dict[str, int] = {}
    outputs: dict[str, list] = {}
    for rep in range(repeats):
        for label, kwargs in variants.items():
            backend = HFBackend(
                model, tokenizer, temperature=1.0, top_p=1.0, max_new_tokens=new_tokens, seed=SEED, **kwargs
            )
            backend.stop_ids = []  # every turn generates new_tokens per row
            seconds, out = play_group(backend, prompt, answers)
            times[label].append(seconds)
            encoded[label], outputs[label] = backend.stats["encoded_tokens"], out
            print(f"  {name} {label} (run {rep + 1}): {seconds:.1f} s", file=sys.stderr, flush=True)
    pairs = [
        (a, b)
        for ta, tb in zip(outputs["without reuse"], outputs["with reuse"], strict=True)
        for a, b in zip(ta, tb, strict=True)
    ]
    same_ids = sum(a.token_ids == b.token_ids for a, b in pairs)
    lp_diff = max(
        abs(x - y) for a, b in pairs if a.token_ids == b.token_ids for x, y in zip(a.logprobs, b.logprobs, strict=True)
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    history = len(prompt) + sum(new_tokens + len(answers[r][t]) for r in range(rows) for t in range(turns - 1)) / rows
    return {
        "task_id": task_id,
        "prompt_tokens": len(prompt),
        "rows": rows,
        "turns": turns,
        "new_tokens": new_tokens,
        "tool_tokens": list(lengths),
        "last_turn_prompt_tokens_mean": round(history, 1),
        "seconds": {k: round(v, 2) for k, v in med.items()},
        "runs": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "encoded_tokens": encoded,
        "speedup": round(med["without reuse"] / med["with reuse"], 2),
        "same_ids": f"{same_ids}/{len(pairs)}",
        "max_logprob_diff": lp_diff,
    }


def multi_turn_main(args, models: list[str]) -> int:
    import torch

    lo, _, hi = args.tool_tokens.partition("-")
    lengths = (int(lo), int(hi or lo))
    if args.rows < 1 or args.turns < 1 or lengths[0] < 1 or lengths[1] < lengths[0]:
        print("--rows and --turns must be at least 1, --tool-tokens LO-HI with 1 <= LO <= HI", file=sys.stderr)
        return 2
    logging.getLogger("swerepair").setLevel(logging.ERROR)
    started, load_before = time.perf_counter(), os.getloadavg()
    result: dict = {"multi_turn": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in models:
            result["multi_turn"][name] = bench_multi_turn(
                name, args.rows, args.turns, args.new_tokens, lengths, args.repeats
            )
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["machine"] = dict(device="cpu", torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count())
    result["machine"].update(torch=torch.__version__, loadavg_1m_before=round(load_before[0], 2))
    result["machine"].update(loadavg_1m_after=round(os.getloadavg()[0], 2))
    rows = [("model", "group", "backend", "seconds", "prompt tokens run", "speed-up", "same ids", "max |dlogp|")]
    for name, m in result["multi_turn"].items():
        shape = f"{m['rows']}x{m['turns']} turns"
        for label in ("without reuse", "with reuse"):
            reuse = label == "with reuse"
            rows.append(
                (
                    name,
                    shape,
                    label,
                    f"{m['seconds'][label]:.1f}",
                    str(m["encoded_tokens"][label]),
                    f"{m['speedup']:.2f}x" if reuse else "1.00x",
                    m["same_ids"] if reuse else "",
                    f"{m['max_logprob_diff']:.1e}" if reuse else "",
                )
            )
    print_table(rows, left=3)
    m0 = next(iter(result["multi_turn"].values()))
    print(
        f"\nsampling at temperature 1, seed {SEED}; {m0['new_tokens']} new tokens per row and turn; tool answers "
        f"{m0['tool_tokens'][0]}-{m0['tool_tokens'][1]} tokens; first prompt {m0['prompt_tokens']} tokens"
    )
    print(
        f"CPU, {result['machine']['torch_threads']} torch threads; total {result['total_s']} s; 1-min load average "
        f"before/after: {load_before[0]:.2f}/{result['machine']['loadavg_1m_after']:.2f}"
    )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(BUILTIN_MODELS), help="comma-separated (default: both built-ins)")
    ap.add_argument("--batches", default="1,4,8", help="comma-separated batch sizes (default 1,4,8)")
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens generated per row (default 64)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per figure, median reported (default 1)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    ap.add_argument("--multi-turn", action="store_true", help="measure KV reuse on a multi-turn group instead")
    ap.add_argument("--rows", type=int, default=6, help="--multi-turn: episodes in the group (default 6)")
    ap.add_argument("--turns", type=int, default=4, help="--multi-turn: turns per episode (default 4)")
    ap.add_argument("--tool-tokens", default="80-400", help="--multi-turn: tool answer length range (default 80-400)")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    batches = ints(args.batches)
    if not models or not batches or min(batches) < 1:
        ap.error("--models and --batches must be non-empty, batch sizes at least 1")
    if args.new_tokens < 2 or args.repeats < 1 or (args.threads is not None and args.threads < 1):
        ap.error("--new-tokens must be at least 2, --repeats and --threads at least 1")
    if args.multi_turn:
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        return multi_turn_main(args, models)

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
    print_table(rows, left=1)
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
