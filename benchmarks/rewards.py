"""Throughput of `swerepair.rewards.functional_similarity` against two difflib baselines.

For generated (agent patch, gold patch) pairs of about 1k, 4k and 16k characters (mean length
of one patch's text), this measures pairs per second, in one run and on one core, of:

- rapidfuzz: the library's ``functional_similarity(patch, task)`` (exact LCS ratio, rapidfuzz);
- difflib_autojunk_false: the same function with the per-file score computed by
  ``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()``;
- difflib_default: the same with ``difflib.SequenceMatcher(None, a, b).ratio()`` (autojunk=True).

The baselines mirror the library: `parse_patch` + `normalize_file` on the non-test files, the
mean over the union of files, a file on one side only scoring 0. Timing includes parsing and
normalisation on every side. It also reports the largest absolute score difference of each
baseline against the library. Even autojunk=False is not an exact LCS ratio: difflib chains
longest contiguous blocks (Ratcliff/Obershelp), a common subsequence that can be shorter than
the longest one ("cbc"/"bac": 0.33 against 0.67), so it scores at most the library's value;
the default's junk heuristic drifts much further on long inputs. Pairs come from a seeded
`random.Random`: a gold diff over 1-3 files and an agent diff that perturbs it (edited lines,
dropped/added hunks, sometimes an extra file). Goal: at least 2,000 pairs/s at 4k characters
on one core. The difflib autojunk=False baseline is slow (about 1 pair/s at 16k), so the
default run takes several minutes; ``--pairs 50`` is a quicker look.

Run:  .venv/bin/python benchmarks/rewards.py [--pairs N] [--min-time S] [--seed K] [--json]
With --json the figures are also printed as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import random
import sys
import time
from types import SimpleNamespace

import rapidfuzz

from swerepair.rewards import functional_similarity, is_test_path, normalize_file, parse_patch

SIZES = {"1k": 1_000, "4k": 4_000, "16k": 16_000}
GOAL_SIZE, GOAL_PAIRS_PER_S = "4k", 2_000
WORDS = ["value", "items", "result", "config", "path", "node", "index", "count", "name", "data", "key", "buf",
         "state", "offset", "limit"]  # fmt: skip
FUNCS = ["parse", "load", "resolve", "merge", "render", "update", "validate", "compute", "flush", "encode"]
TEMPLATES = [
    "    {v} = {f}({a}, {b})", "    if {v} is None:", "        return {a}", "    for {v} in {a}:",
    "        {v}.append({b})", "def {f}_{v}({a}, {b}={n}):", "    # {f} the {v} before {b}",
    '    raise ValueError("{v} must be positive, got %r" % {a})', "    return {a} + {b} * {n}",
    "    self.{v} = {a}.get({b!r}, {n})", "    elif {a} > {n}:", "    {v} += len({a})",
]  # fmt: skip


def code_line(rng: random.Random) -> str:
    w = rng.sample(WORDS, 3)
    return rng.choice(TEMPLATES).format(v=w[0], a=w[1], b=w[2], f=rng.choice(FUNCS), n=rng.randint(0, 99))


def edit_line(rng: random.Random, line: str) -> str:
    """A plausible near-miss of `line`: a word or a number changed, or a fresh line."""
    words = [w for w in WORDS + FUNCS if w in line]
    if words and rng.random() < 0.7:
        return line.replace(rng.choice(words), rng.choice(WORDS), 1)
    return code_line(rng) if rng.random() < 0.5 else line + f"  # {rng.choice(WORDS)}"


def make_hunk(rng: random.Random) -> list[list[str]]:
    """[pre-context, removed, added, post-context], 3 context lines each side."""
    n_rem, n_add = rng.randint(0, 3), rng.randint(1, 4)
    return [[code_line(rng) for _ in range(k)] for k in (3, n_rem, n_add, 3)]


def render(files: dict[str, list[list[list[str]]]]) -> str:
    out: list[str] = []
    for path, hunks in files.items():
        out += [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}"]
        old, shift = 10, 0
        for pre, rem, add, post in hunks:
            n_old, n_new = len(pre) + len(rem) + len(post), len(pre) + len(add) + len(post)
            out.append(f"@@ -{old},{n_old} +{old + shift},{n_new} @@ def {FUNCS[old % len(FUNCS)]}():")
            out += [" " + x for x in pre] + ["-" + x for x in rem] + ["+" + x for x in add] + [" " + x for x in post]
            shift += n_new - n_old
            old += n_old + 20
    return "\n".join(out) + "\n"


def make_pair(rng: random.Random, target: int) -> tuple[str, str]:
    """(agent patch, gold patch), the gold about `target` characters long."""
    paths = [f"pkg/mod_{k}.py" for k in rng.sample(range(50), rng.randint(1, 3))]
    gold: dict[str, list] = {p: [] for p in paths}
    while len(render(gold)) < target:
        gold[rng.choice(paths)].append(make_hunk(rng))
    gold = {p: h for p, h in gold.items() if h}
    p = rng.uniform(0.08, 0.6)  # how far the agent strays
    agent: dict[str, list] = {}
    for path, hunks in gold.items():
        mine = []
        for pre, rem, add, post in hunks:
            if rng.random() < p / 2:
                continue  # hunk dropped
            add = [edit_line(rng, x) if rng.random() < p else x for x in add]
            if rng.random() < p:
                add.insert(rng.randint(0, len(add)), code_line(rng))
            mine.append([pre, rem if rng.random() > p / 3 else rem[:1], add, post])
            if rng.random() < p / 3:
                mine.append(make_hunk(rng))  # hunk added
        agent[path] = mine or [make_hunk(rng)]
    if agent == gold:  # always some difference
        hunk = rng.choice(agent[rng.choice(list(agent))])
        hunk[2] = [edit_line(rng, x) for x in hunk[2]]
    if rng.random() < 0.1:
        agent[f"pkg/extra_{rng.randint(0, 9)}.py"] = [make_hunk(rng)]
    return render(agent), render(gold)


def difflib_functional(patch: str, task, *, autojunk: bool) -> float:
    """`functional_similarity` with the per-file score from difflib's ratio."""
    if not isinstance(patch, str):
        return 0.0
    gold = task.patch if isinstance(task.patch, str) else ""
    mine = {fp.path: fp for fp in parse_patch(patch) if not is_test_path(fp.path)}
    ref = {fp.path: fp for fp in parse_patch(gold) if not is_test_path(fp.path)}
    if not mine and not ref:
        return 1.0 if not gold.strip() else 0.0
    union = set(mine) | set(ref)
    total = 0.0
    for path in union:
        if path in mine and path in ref:
            a, b = normalize_file(mine[path]), normalize_file(ref[path])
            total += difflib.SequenceMatcher(None, a, b, autojunk=autojunk).ratio()
    return total / len(union)


IMPLS = {
    "rapidfuzz": functional_similarity,
    "difflib_autojunk_false": lambda patch, task: difflib_functional(patch, task, autojunk=False),
    "difflib_default": lambda patch, task: difflib_functional(patch, task, autojunk=True),
}


def throughput(fn, pairs: list, min_time: float) -> tuple[float, list[float]]:
    """Pairs per second of `fn` over whole passes of `pairs` (at least `min_time` s), and its scores."""
    scores = [fn(patch, task) for patch, task in pairs[:20]]  # warm-up
    done, elapsed = 0, 0.0
    while elapsed < min_time or done == 0:
        t0 = time.perf_counter()
        scores = [fn(patch, task) for patch, task in pairs]
        elapsed += time.perf_counter() - t0
        done += len(pairs)
    return done / elapsed, scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=200, help="generated pairs per size (default 200)")
    ap.add_argument("--min-time", type=float, default=1.0, help="least seconds timed per size and implementation")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pair generator")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    args = ap.parse_args()
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")
    cpu = None
    if hasattr(os, "sched_setaffinity"):  # one core: the reward is single-threaded anyway
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})

    result: dict = {"sizes": {}}
    for label, target in SIZES.items():
        rng = random.Random(f"{args.seed}-{label}")
        raw = [make_pair(rng, target) for _ in range(args.pairs)]
        pairs = [(agent, SimpleNamespace(patch=gold, test_patch="")) for agent, gold in raw]
        rates, scores = {}, {}
        for name, fn in IMPLS.items():
            rates[name], scores[name] = throughput(fn, pairs, args.min_time)
        exact = scores["rapidfuzz"]
        result["sizes"][label] = {
            "chars": round(sum(len(a) + len(g) for a, g in raw) / (2 * len(raw))),
            "pairs_per_s": {k: round(v, 1) for k, v in rates.items()},
            "speedup_vs_difflib_autojunk_false": round(rates["rapidfuzz"] / rates["difflib_autojunk_false"], 2),
            "speedup_vs_difflib_default": round(rates["rapidfuzz"] / rates["difflib_default"], 2),
            "max_abs_diff": {
                k: max(abs(x - y) for x, y in zip(scores[k], exact, strict=True)) for k in IMPLS if k != "rapidfuzz"
            },
            "score": {"min": min(exact), "mean": sum(exact) / len(exact), "max": max(exact)},
        }
    goal_rate = result["sizes"][GOAL_SIZE]["pairs_per_s"]["rapidfuzz"]
    result.update(goal_pairs_per_s_at_4k=GOAL_PAIRS_PER_S, goal_met=goal_rate >= GOAL_PAIRS_PER_S)
    result.update(pairs=args.pairs, seed=args.seed)
    result["machine"] = {
        "cpu_count": os.cpu_count(), "pinned_cpu": cpu, "python": platform.python_version(),
        "platform": platform.platform(), "processor": platform.processor(), "rapidfuzz": rapidfuzz.__version__,
    }  # fmt: skip

    rows = [("size", "chars", "rapidfuzz/s", "difflib aj=F/s", "difflib dflt/s", "x aj=F", "x dflt",
             "maxdiff aj=F", "maxdiff dflt", "scores min/mean/max")]  # fmt: skip
    for label, r in result["sizes"].items():
        pps, diff, sc = r["pairs_per_s"], r["max_abs_diff"], r["score"]
        rows.append((label, str(r["chars"]), f"{pps['rapidfuzz']:.0f}", f"{pps['difflib_autojunk_false']:.0f}",
                     f"{pps['difflib_default']:.0f}", f"{r['speedup_vs_difflib_autojunk_false']:.1f}",
                     f"{r['speedup_vs_difflib_default']:.1f}", f"{diff['difflib_autojunk_false']:.1e}",
                     f"{diff['difflib_default']:.1e}", "{min:.2f}/{mean:.2f}/{max:.2f}".format(**sc)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    m = result["machine"]
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"\n{args.pairs} pairs per size; x = speed-up of rapidfuzz over that difflib variant;", end=" ")
    print("maxdiff = largest |score - rapidfuzz score|")
    print(f"goal: >= {GOAL_PAIRS_PER_S} pairs/s at {GOAL_SIZE} on one core: {verdict} ({goal_rate:.0f} pairs/s)")
    print(f"pinned to CPU {m['pinned_cpu']} of {m['cpu_count']}; Python {m['python']}, rapidfuzz {m['rapidfuzz']}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
