"""Peak memory and time of the GRPO loss's log-probs (forward + backward), fused vs. full-logits paths.

On the same inputs (same seed), for each sequence length this runs, each in a FRESH subprocess:

- fused: `masked_token_logprobs` (LM head fused, masked positions only, chunks of ``--chunk-size``
  positions under activation checkpointing) + `grpo_loss`;
- naive: full logits ``hidden @ W.T`` [T, V] in float32, ``log_softmax``, ``gather``, then the same
  `grpo_loss` on the masked positions;
- trl: TRL's GRPOTrainer path (trl 1.16: ``add_fused_lm_head`` -> ``model(..., fused_lm_head=True)``),
  i.e. the exact ``_ChunkedLogProbFunction.apply(...)`` call its patched forward makes (with
  ``_CHUNKED_LOGPROB_CHUNK_SIZE``, ``outputs=("log_probs", "entropy")`` as GRPOTrainer requests, and
  its CPU branch, which scores every position because ``_use_triton`` is False off CUDA/XPU), called
  through TRL's own objects imported from ``trl.trainer.utils``; then `grpo_loss` on the masked positions;
- trl-selective: ``trl.trainer.utils.selective_log_softmax`` on the full [1, T, V] logits (TRL's
  GRPO path before the fused LM head, still used by several of its trainers); then `grpo_loss`.

Inputs: hidden [1, T, H] ~ N(0, 1) and W [V, H] ~ N(0, 1/H), both requiring grad, float32 on CPU;
random targets; an assistant mask of alternating unmasked/masked segments (prompt, assistant turn,
tool output, ...) of random lengths, ~half of the positions; old logprobs = the current ones
(computed without grad, 32 positions at a time so the transient stays small) + N(0, 0.05) noise;
one random advantage; default `LossConfig`.

Memory: each (variant, seq_len) runs in its own ``python`` process, which builds the inputs, reads
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (after the inputs exist), runs forward + backward
once, and reads it again: "peak MiB" is the difference (the weight's gradient, 0.5 GB at the
default sizes, is included in every variant). When the process's high-water mark is already above
its current RSS at the baseline (allocator state left by building the inputs; reported as
``baseline_slack_mib``), that difference understates the row; the JSON's ``peak_over_rss_mib``
(final high-water minus the baseline's current RSS) is then the upper bound. Time is that same
single forward + backward (first call after a warm-up on a tiny problem, page faults included;
``--repeat N`` adds N - 1 timed runs and reports the best). Before each subprocess the parent
estimates its peak from the logits size and skips it, with a note,
when the estimate exceeds 70% of /proc/meminfo MemAvailable; the child also caps its address
space (RLIMIT_AS) near MemAvailable so that a wrong estimate fails the row instead of swapping.
The loss and gradient norms of every row are compared with the fused row's.

Goal: at the largest length (8k by default), fused peak <= 25% of naive and time <= 1.2x naive.

Run:  .venv/bin/python benchmarks/loss_memory.py [--json] [--seq-lens 2048,8192] [--vocab 151936]
          [--hidden 896] [--chunk-size 1024] [--variants fused,naive,trl,trl-selective] [--repeat 1]
Quick check:  .venv/bin/python benchmarks/loss_memory.py --seq-lens 512 --vocab 16384
With --json the figures are also printed as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

VARIANTS = ("fused", "naive", "trl", "trl-selective")
GOAL_MEM_RATIO = 0.25
GOAL_TIME_RATIO = 1.2
MEM_FRACTION = 0.70  # skip a row whose estimated peak exceeds this fraction of MemAvailable
TRL_VERSION = "1.16.0"
MiB = 2**20


# ---------------------------------------------------------------------------------------------- child


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _make_inputs(seq_len: int, vocab: int, hidden_size: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(1, seq_len, hidden_size, generator=g).requires_grad_()
    weight = (
        torch.randn(vocab, hidden_size, generator=g).mul_(hidden_size**-0.5).requires_grad_()
    )  # in place: no transient copy
    targets = torch.randint(0, vocab, (1, seq_len), generator=g)
    # a realistic mix: alternating unmasked (prompt / tool output) and masked (assistant) segments
    mask = torch.zeros(1, seq_len, dtype=torch.long)
    lo, hi = max(1, seq_len // 64), max(2, seq_len // 8)
    pos, on = 0, False
    while pos < seq_len:
        n = int(torch.randint(lo, hi + 1, (1,), generator=g))
        if on:
            mask[0, pos : pos + n] = 1
        pos, on = pos + n, not on
    if not mask.any():
        mask[0, -1] = 1
    keep = mask.bool()
    with torch.no_grad():  # current logprobs, 32 positions at a time: a small transient only
        h, y = hidden.detach()[keep], targets[keep]
        cur = torch.cat(
            [
                torch.log_softmax(hc @ weight.detach().T, -1).gather(-1, yc[:, None]).squeeze(-1)
                for hc, yc in zip(h.split(32), y.split(32), strict=True)
            ]
        )
    old_logp = cur + 0.05 * torch.randn(cur.shape, generator=g)
    advantages = torch.randn(1, generator=g)
    seq_index = keep.nonzero()[:, 0]
    return hidden, weight, targets, mask, old_logp, advantages, seq_index


def _variant_fn(variant: str, chunk_size: int):
    """A function (hidden, weight, targets, mask) -> logp [N] at the masked positions, row-major."""
    import torch

    from swerepair.trainers.loss import masked_token_logprobs

    if variant == "fused":

        def fn(hidden, weight, targets, mask):
            return masked_token_logprobs(hidden, weight, targets, mask, chunk_size=chunk_size)[0]

    elif variant == "naive":

        def fn(hidden, weight, targets, mask):
            logits = (hidden @ weight.T).float()  # [1, T, V]
            logp_all = torch.log_softmax(logits, dim=-1)
            logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)  # [1, T]
            return logp[mask.bool()]

    elif variant == "trl-selective":
        from trl.trainer.utils import selective_log_softmax

        def fn(hidden, weight, targets, mask):
            logits = hidden @ weight.T  # [1, T, V]
            return selective_log_softmax(logits, targets)[mask.bool()]

    elif variant == "trl":
        # What GRPOTrainer's patched forward (trl.trainer.utils.add_fused_lm_head -> _fused_forward) does with
        # the final hidden states, given pre-shifted labels (-100 outside the completion mask), no bias, no
        # softcapping, logit_scale 1, temperature 1 and outputs=("log_probs", "entropy").
        from trl.trainer import utils as trl_utils

        def fn(hidden, weight, targets, mask):
            labels = targets.masked_fill(mask == 0, -100)
            keep = labels != -100
            compact = trl_utils._use_triton(hidden.device)
            per_token = trl_utils._ChunkedLogProbFunction.apply(
                hidden[keep] if compact else hidden.reshape(-1, hidden.size(-1)),
                weight,
                None,
                labels[keep] if compact else labels.clamp(min=0).reshape(-1),
                1.0,
                trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE,
                None,
                1.0,
                ("log_probs", "entropy"),
            )
            if compact:
                per_token = (None if x is None else x.new_zeros(keep.shape).masked_scatter(keep, x) for x in per_token)
            else:
                per_token = (None if x is None else x.view(keep.shape).masked_fill(~keep, 0) for x in per_token)
            log_probs = next(iter(per_token))
            return log_probs[keep]

    else:
        raise ValueError(f"unknown variant {variant!r}")
    return fn


def child_main(args: argparse.Namespace) -> int:
    import resource

    import torch

    from swerepair.trainers.loss import LossConfig, grpo_loss

    out: dict = {"variant": args.child, "seq_len": args.seq_len}
    try:
        fn = _variant_fn(args.child, args.chunk_size)
    except Exception as e:  # TRL missing or broken
        out.update(status="unavailable", reason=f"{type(e).__name__}: {e}")
        print(json.dumps(out))
        return 0
    if args.child.startswith("trl"):
        import trl

        out["trl_version"] = trl.__version__
    torch.manual_seed(args.seed)
    hidden, weight, targets, mask, old_logp, advantages, seq_index = _make_inputs(
        args.seq_len, args.vocab, args.hidden, args.seed
    )
    config = LossConfig()
    # warm-up: the same variant, forward + backward, on a tiny problem of its own (lazy imports, kernel set-up)
    wh, ww, wt, wm, wo, wa, wi = _make_inputs(16, 256, args.hidden, args.seed + 1)
    grpo_loss(fn(wh, ww, wt, wm), wo, wa, wi, 1, config)[0].backward()
    del wh, ww, wt, wm, wo, wa, wi
    if args.as_limit_bytes > 0:  # backstop: fail the row rather than swap the machine
        limit = _status_kb("VmSize") * 1024 + args.as_limit_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["baseline_rss_mib"] = round(_rss_bytes() / MiB, 1)
    out["baseline_slack_mib"] = round(before_kb / 1024 - _rss_bytes() / MiB, 1)  # high-water above current RSS
    try:
        t0 = time.perf_counter()
        logp = fn(hidden, weight, targets, mask)
        loss, stats = grpo_loss(logp, old_logp, advantages, seq_index, 1, config)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
    except (RuntimeError, MemoryError) as e:
        out.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        print(json.dumps(out))
        return 0
    after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.update(
        status="ok",
        peak_mib=round((after_kb - before_kb) / 1024, 1),
        peak_over_rss_mib=round(after_kb / 1024 - out["baseline_rss_mib"], 1),  # upper bound when slack > 0
        fwd_s=round(t1 - t0, 3),
        bwd_s=round(t2 - t1, 3),
        total_s=round(t2 - t0, 3),
        loss=loss.item(),
        clip_fraction=stats["clip_fraction"],
        n_masked=int(mask.sum()),
        grad_hidden_norm=hidden.grad.norm().item(),
        grad_weight_norm=weight.grad.norm().item(),
        threads=torch.get_num_threads(),
    )
    del logp, loss
    best = t2 - t0
    for _ in range(args.repeat - 1):
        hidden.grad = weight.grad = None
        t0 = time.perf_counter()
        loss, _ = grpo_loss(fn(hidden, weight, targets, mask), old_logp, advantages, seq_index, 1, config)
        loss.backward()
        best = min(best, time.perf_counter() - t0)
        del loss
    out["best_total_s"] = round(best, 3)
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------------------------------------- parent


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def estimate_peak(variant: str, seq_len: int, vocab: int, hidden: int, chunk_size: int) -> int:
    """A deliberately generous estimate of a row's peak RSS increase, in bytes."""
    weight_grad = vocab * hidden * 4
    logits = seq_len * vocab * 4
    # factors from measurements at T=2048 (naive ~2.5, trl-selective ~3.5 [T, V] blocks at the peak), rounded up
    if variant == "naive":  # logits / log-softmax, gather's grad, log-softmax's grad
        return 3 * logits + 2 * weight_grad
    if variant == "trl-selective":  # logits (saved), logsumexp's exp temporary and grad, gather's grad
        return 4 * logits + 2 * weight_grad
    if variant == "trl":  # [min(T, 4096), 32768] tiles and a few same-sized temporaries
        return 6 * min(seq_len, 4096) * min(vocab, 32768) * 4 + 2 * weight_grad
    return 5 * min(seq_len, chunk_size) * vocab * 4 + 2 * weight_grad  # fused: a few [chunk, V] blocks


def run_child(args: argparse.Namespace, variant: str, seq_len: int, budget: int) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        variant,
        "--seq-len",
        str(seq_len),
        "--vocab",
        str(args.vocab),
        "--hidden",
        str(args.hidden),
        "--chunk-size",
        str(args.chunk_size),
        "--seed",
        str(args.seed),
        "--repeat",
        str(args.repeat),
        "--as-limit-bytes",
        str(budget),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        res = {
            "variant": variant,
            "seq_len": seq_len,
            "status": "failed",
            "reason": f"exit {proc.returncode}: {tail[:200]}",
        }
    res["process_wall_s"] = round(wall, 1)
    return res


def fmt(x, spec: str, suffix: str = "") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-lens", default="2048,8192", help="comma-separated sequence lengths (default 2048,8192)")
    ap.add_argument("--vocab", type=int, default=151_936, help="vocabulary size (default 151936, Qwen2.5)")
    ap.add_argument("--hidden", type=int, default=896, help="hidden size (default 896, Qwen2.5-0.5B)")
    ap.add_argument("--chunk-size", type=int, default=1024, help="chunk_size of masked_token_logprobs (default 1024)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    ap.add_argument(
        "--repeat", type=int, default=1, help="timed forward+backward runs per row; best reported (default 1)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--seq-len", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--as-limit-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.repeat < 1 or args.chunk_size < 1 or args.vocab < 2 or args.hidden < 1:
        ap.error("--repeat, --chunk-size, --hidden must be >= 1 and --vocab >= 2")
    if args.child:
        return child_main(args)
    try:
        seq_lens = [int(s) for s in args.seq_lens.split(",") if s.strip()]
    except ValueError:
        ap.error("--seq-lens must be comma-separated integers")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not seq_lens or min(seq_lens) < 2 or any(v not in VARIANTS for v in variants) or not variants:
        ap.error(f"--seq-lens must be integers >= 2 and --variants a subset of {','.join(VARIANTS)}")

    notes: list[str] = []
    try:
        import trl

        trl_version = trl.__version__
        if trl_version != TRL_VERSION:
            notes.append(f"trl {trl_version} installed, the TRL rows were written against {TRL_VERSION}")
    except Exception as e:
        trl_version = None
        notes.append(
            f"TRL rows unavailable: import trl failed ({type(e).__name__}: {e}); "
            f"install with .venv/bin/pip install -c constraints/cpu.txt trl=={TRL_VERSION}"
        )

    rows: list[dict] = []
    for seq_len in seq_lens:
        for variant in variants:
            if variant.startswith("trl") and trl_version is None:
                rows.append(
                    {"variant": variant, "seq_len": seq_len, "status": "unavailable", "reason": "trl not importable"}
                )
                continue
            avail = mem_available()
            est = estimate_peak(variant, seq_len, args.vocab, args.hidden, args.chunk_size)
            if est > MEM_FRACTION * avail:
                reason = (
                    f"estimated peak {est / MiB:.0f} MiB > {MEM_FRACTION:.0%} of MemAvailable {avail / MiB:.0f} MiB"
                )
                notes.append(f"WARNING: {variant} at seq_len {seq_len} skipped: {reason}")
                rows.append(
                    {
                        "variant": variant,
                        "seq_len": seq_len,
                        "status": "skipped",
                        "reason": reason,
                        "estimate_mib": round(est / MiB),
                    }
                )
                continue
            print(
                f"running {variant:<13} seq_len={seq_len} (estimated peak {est / MiB:.0f} MiB, "
                f"MemAvailable {avail / MiB:.0f} MiB) ...",
                file=sys.stderr,
                flush=True,
            )
            res = run_child(args, variant, seq_len, int(0.9 * avail))
            res["estimate_mib"] = round(est / MiB)
            rows.append(res)
            if res["status"] != "ok":
                notes.append(f"{variant} at seq_len {seq_len}: {res['status']}: {res.get('reason', '')}")

    # ratios against naive, agreement with fused
    by = {(r["seq_len"], r["variant"]): r for r in rows}
    for r in rows:
        if r["status"] != "ok":
            continue
        naive, fused = by.get((r["seq_len"], "naive")), by.get((r["seq_len"], "fused"))
        if naive and naive["status"] == "ok":
            r["mem_vs_naive"] = round(r["peak_mib"] / naive["peak_mib"], 4) if naive["peak_mib"] > 0 else None
            r["time_vs_naive"] = round(r["total_s"] / naive["total_s"], 4)
        if fused and fused["status"] == "ok" and r is not fused:
            r["max_rel_diff_vs_fused"] = max(
                abs(r[k] - fused[k]) / max(abs(fused[k]), 1e-12)
                for k in ("loss", "grad_hidden_norm", "grad_weight_norm")
            )

    # goal, at the largest length where both fused and naive ran
    goal: dict = {"mem_ratio_max": GOAL_MEM_RATIO, "time_ratio_max": GOAL_TIME_RATIO, "seq_len": max(seq_lens)}
    both = [
        t
        for t in seq_lens
        if by.get((t, "fused"), {}).get("status") == "ok" and by.get((t, "naive"), {}).get("status") == "ok"
    ]
    if both:
        t = max(both)
        f = by[(t, "fused")]
        goal.update(evaluated_at=t, mem_ratio=f.get("mem_vs_naive"), time_ratio=f.get("time_vs_naive"))
        goal["mem_met"] = f.get("mem_vs_naive") is not None and f["mem_vs_naive"] <= GOAL_MEM_RATIO
        goal["time_met"] = f["time_vs_naive"] <= GOAL_TIME_RATIO
        goal["met"] = goal["mem_met"] and goal["time_met"]
    else:
        goal.update(evaluated_at=None, met=None)

    header = (
        "seq_len",
        "variant",
        "status",
        "peak MiB",
        "fwd s",
        "bwd s",
        "total s",
        "mem/naive",
        "time/naive",
        "loss",
        "rel.diff",
    )
    table = [header]
    for r in rows:
        ok = r["status"] == "ok"
        table.append(
            (
                str(r["seq_len"]),
                r["variant"],
                r["status"],
                fmt(r.get("peak_mib"), ".0f"),
                fmt(r.get("fwd_s"), ".2f"),
                fmt(r.get("bwd_s"), ".2f"),
                fmt(r.get("best_total_s") if args.repeat > 1 else r.get("total_s"), ".2f"),
                fmt(r.get("mem_vs_naive"), ".1%") if ok else "-",
                fmt(r.get("time_vs_naive"), ".2f", "x") if ok else "-",
                fmt(r.get("loss"), ".6f"),
                fmt(r.get("max_rel_diff_vs_fused"), ".1e"),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for k, row in enumerate(table):
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))

    print(
        f"\nvocab {args.vocab}, hidden {args.hidden}, batch 1, float32 CPU, fused chunk_size {args.chunk_size}, "
        f"{os.cpu_count()} CPUs; peak = ru_maxrss increase over forward+backward in a fresh process"
    )
    if goal.get("evaluated_at") is None:
        print(
            f"goal (fused <= {GOAL_MEM_RATIO:.0%} of naive memory, <= {GOAL_TIME_RATIO}x naive time): "
            "NOT EVALUATED (fused or naive did not run at any length)"
        )
    else:
        where = f"seq_len {goal['evaluated_at']}"
        if goal["evaluated_at"] != max(seq_lens):
            where += f" (naive did not run at {max(seq_lens)})"
        mem_s = "n/a" if goal["mem_ratio"] is None else f"{goal['mem_ratio']:.1%}"
        print(
            f"goal at {where}: memory {mem_s} of naive (<= {GOAL_MEM_RATIO:.0%}): "
            f"{'met' if goal['mem_met'] else 'NOT met'}; time {goal['time_ratio']:.2f}x naive "
            f"(<= {GOAL_TIME_RATIO}x): {'met' if goal['time_met'] else 'NOT met'}"
        )
    for r in rows:
        if r["status"] == "ok":
            print(
                f"row {r['variant']} @ {r['seq_len']}: subprocess wall {r['process_wall_s']:.1f} s "
                f"(inputs + measurement), {r['n_masked']}/{r['seq_len']} positions masked, "
                f"baseline RSS {r['baseline_rss_mib']:.0f} MiB (high-water slack {r['baseline_slack_mib']:.0f} MiB)"
            )
    for note in notes:
        print(f"note: {note}")
    if args.json:
        machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
        result = {
            "rows": rows,
            "goal": goal,
            "config": {
                "seq_lens": seq_lens,
                "vocab": args.vocab,
                "hidden": args.hidden,
                "chunk_size": args.chunk_size,
                "repeat": args.repeat,
                "seed": args.seed,
                "dtype": "float32",
                "batch": 1,
            },
            "trl_version": trl_version,
            "notes": notes,
            "machine": machine,
        }
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
