"""Throughput of the similarity rewards, and of `context_similarity` against two difflib baselines.

For generated (agent patch, gold patch) pairs of about 1k, 4k and 16k characters (mean length
of one patch's text), this measures pairs per second, in one run and on one core, of:

- functional_similarity: the default reward, the change measure (aligned regions, exact Indel
  distance by rapidfuzz);
- context_similarity: the thesis form, the exact LCS ratio (rapidfuzz) of each file's whole
  normalised change text;
- difflib_autojunk_false: `context_similarity` with the per-file ratio computed by
  ``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()``;
- difflib_default: the same with ``difflib.SequenceMatcher(None, a, b).ratio()`` (autojunk=True).

The difflib baselines approximate `context_similarity`, not `functional_similarity` (which
scores only the change, by a distance): they mirror it, `parse_patch` + `normalize_file` on
the non-test files, the mean over the union of files, a file on one side only scoring 0, and
the same mirror with the exact ratio is checked to reproduce `context_similarity` on every pair.
Timing includes parsing and normalisation on every side. The largest absolute score
difference of each baseline against `context_similarity` is reported. Even autojunk=False is
not an exact LCS ratio: difflib chains longest contiguous blocks (Ratcliff/Obershelp), a
common subsequence that can be shorter than the longest one ("cbc"/"bac": 0.33 against 0.67),
so it scores at most the exact value; the default's junk heuristic drifts much further on long
inputs.

The pairs come from a seeded `random.Random`. Per file (1-3 files), a base text of generated
code lines; the gold changes it in hunks 24 base lines apart (0-3 lines removed, 1-4 added, 3
lines of context each side). The agent's patch is a diff against the same base that perturbs
the gold (how much is drawn per pair): hunks dropped, added lines edited into near misses, a
line added, fewer lines removed, an extra hunk on other lines of the base, sometimes an extra
file. Both are written as ``git diff`` writes them (files in path order, exact old and new
line numbers; ``git apply`` applies every hunk at its stated line), so the agent's hunks line
up with the gold's by their line numbers, as an agent's ``git diff`` of the task's checkout
does. The pairs in which `functional_similarity` moved an agent hunk (its realignment path for
miscounted hunk headers, which these pairs do not have) are counted as a check.

Goal: `functional_similarity` at least 2,000 pairs/s at 4k characters on one core. The difflib
autojunk=False baseline is slow (about 1 pair/s at 16k), so the default run takes several
minutes; ``--pairs 50`` is a quicker look.

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
from collections.abc import Callable
from types import SimpleNamespace

import rapidfuzz
from rapidfuzz.distance import Indel

from swerepair.rewards import (
    context_similarity,
    functional_similarity,
    is_test_path,
    normalize_file,
    parse_patch,
    similarity,
)

SIZES = {"1k": 1_000, "4k": 4_000, "16k": 16_000}
GOAL_SIZE, GOAL_PAIRS_PER_S = "4k", 2_000
CONTEXT, GAP = 3, 24  # context lines each side of a hunk; base lines between two gold hunks' contexts
WORDS = ["value", "items", "result", "config", "path", "node", "index", "count", "name", "data", "key", "buf",
         "state", "offset", "limit"]  # fmt: skip
FUNCS = ["parse", "load", "resolve", "merge", "render", "update", "validate", "compute", "flush", "encode"]
TEMPLATES = [
    "    {v} = {f}({a}, {b})", "    if {v} is None:", "        return {a}", "    for {v} in {a}:",
    "        {v}.append({b})", "def {f}_{v}({a}, {b}={n}):", "    # {f} the {v} before {b}",
    '    raise ValueError("{v} must be positive, got %r" % {a})', "    return {a} + {b} * {n}",
    "    self.{v} = {a}.get({b!r}, {n})", "    elif {a} > {n}:", "    {v} += len({a})",
]  # fmt: skip

#: One hunk against a base: (index of its first removed line, or of the line it inserts before;
#: lines removed; lines added). Its context is the CONTEXT base lines each side.
Hunk = tuple[int, int, list[str]]


def code_line(rng: random.Random) -> str:
    w = rng.sample(WORDS, 3)
    return rng.choice(TEMPLATES).format(v=w[0], a=w[1], b=w[2], f=rng.choice(FUNCS), n=rng.randint(0, 99))


def edit_line(rng: random.Random, line: str) -> str:
    """A plausible near-miss of `line`: a word or a number changed, or a fresh line."""
    words = [w for w in WORDS + FUNCS if w in line]
    if words and rng.random() < 0.7:
        return line.replace(rng.choice(words), rng.choice(WORDS), 1)
    return code_line(rng) if rng.random() < 0.5 else line + f"  # {rng.choice(WORDS)}"


def grow(rng: random.Random, base: list[str], n: int) -> None:
    """Extend `base` with generated lines to at least `n` lines."""
    while len(base) < n:
        base.append(code_line(rng))


def new_hunk(rng: random.Random, base: list[str], pos: int) -> Hunk:
    """A fresh hunk at `pos` (0-3 lines removed, 1-4 added), the base grown to cover it."""
    hunk = (pos, rng.randint(0, 3), [code_line(rng) for _ in range(rng.randint(1, 4))])
    grow(rng, base, pos + hunk[1] + CONTEXT)
    return hunk


def extra_pos(hunk: Hunk) -> int:
    """Where an agent's extra hunk after `hunk` goes: in the gap before the gold's next hunk, its
    context more than 2 * CONTEXT lines from both neighbours' (``git diff`` would not merge them)."""
    return hunk[0] + hunk[1] + CONTEXT + 2 * CONTEXT + 1 + CONTEXT


def render(bases: dict[str, list[str]], files: dict[str, list[Hunk]]) -> str:
    """The files' hunks as ``git diff`` writes them against `bases`: in path order, with old and
    new line numbers."""
    out: list[str] = []
    for path in sorted(files):
        base, hunks = bases[path], files[path]
        out += [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}"]
        shift = 0
        for pos, n_rem, add in hunks:
            n_old, n_new = 2 * CONTEXT + n_rem, 2 * CONTEXT + len(add)
            old = pos - CONTEXT + 1  # 1-based number of its first context line
            out.append(f"@@ -{old},{n_old} +{old + shift},{n_new} @@ def {FUNCS[old % len(FUNCS)]}():")
            out += [" " + x for x in base[pos - CONTEXT : pos]] + ["-" + x for x in base[pos : pos + n_rem]]
            out += ["+" + x for x in add] + [" " + x for x in base[pos + n_rem : pos + n_rem + CONTEXT]]
            shift += n_new - n_old
    return "\n".join(out) + "\n"


def make_pair(rng: random.Random, target: int) -> tuple[str, str]:
    """(agent patch, gold patch) against the same base, the gold about `target` characters long."""
    paths = [f"pkg/mod_{k}.py" for k in rng.sample(range(50), rng.randint(1, 3))]
    bases: dict[str, list[str]] = {p: [] for p in paths}
    gold: dict[str, list[Hunk]] = {p: [] for p in paths}
    next_pos = dict.fromkeys(paths, 12)
    while len(render(bases, gold)) < target:
        path = rng.choice(paths)
        hunk = new_hunk(rng, bases[path], next_pos[path])
        gold[path].append(hunk)
        next_pos[path] = hunk[0] + hunk[1] + CONTEXT + GAP + CONTEXT
        grow(rng, bases[path], next_pos[path])
    gold = {p: h for p, h in gold.items() if h}
    p = rng.uniform(0.08, 0.6)  # how far the agent strays
    agent: dict[str, list[Hunk]] = {}
    for path, hunks in gold.items():
        mine: list[Hunk] = []
        for pos, n_rem, add in hunks:
            if rng.random() < p / 2:
                continue  # hunk dropped
            add = [edit_line(rng, x) if rng.random() < p else x for x in add]
            if rng.random() < p:
                add.insert(rng.randint(0, len(add)), code_line(rng))
            mine.append((pos, n_rem if rng.random() > p / 3 else min(n_rem, 1), add))
            if rng.random() < p / 3:
                mine.append(new_hunk(rng, bases[path], extra_pos(mine[-1])))  # hunk added
        agent[path] = mine or [new_hunk(rng, bases[path], extra_pos(hunks[0]))]
    if agent == gold:  # always some difference
        path = rng.choice(list(agent))
        k = rng.randrange(len(agent[path]))
        pos, n_rem, add = agent[path][k]
        agent[path][k] = (pos, n_rem, [edit_line(rng, x) for x in add])
    if rng.random() < 0.1:
        extra = f"pkg/extra_{rng.randint(0, 9)}.py"
        bases[extra] = []
        agent[extra] = [new_hunk(rng, bases[extra], 12)]
    return render(bases, agent), render(bases, gold)


def context_mirror(patch: str, task, ratio: Callable[[str, str], float]) -> float:
    """`context_similarity` with the per-file ratio computed by `ratio`."""
    if not isinstance(patch, str):
        return 0.0
    gold = task.patch if isinstance(task.patch, str) else ""
    mine = {fp.path: fp for fp in parse_patch(patch) if not is_test_path(fp.path)}
    ref = {fp.path: fp for fp in parse_patch(gold) if not is_test_path(fp.path)}
    union = sorted(set(mine) | set(ref))
    if not union:
        return 1.0
    total = 0.0
    for path in union:
        if path in mine and path in ref:
            total += ratio(normalize_file(mine[path]), normalize_file(ref[path]))
    return total / len(union)


def difflib_ratio(autojunk: bool) -> Callable[[str, str], float]:
    return lambda a, b: difflib.SequenceMatcher(None, a, b, autojunk=autojunk).ratio()


IMPLS = {
    "functional_similarity": functional_similarity,
    "context_similarity": context_similarity,
    "difflib_autojunk_false": lambda patch, task: context_mirror(patch, task, difflib_ratio(False)),
    "difflib_default": lambda patch, task: context_mirror(patch, task, difflib_ratio(True)),
}
BASELINES = ("difflib_autojunk_false", "difflib_default")


def realigned_pairs(pairs: list) -> int:
    """Pairs in which `functional_similarity` moves an agent hunk (untimed pass)."""
    hits = 0
    realign = similarity._realign

    def counting(*args, **kwargs):
        nonlocal hits
        hits += 1
        return realign(*args, **kwargs)

    similarity._realign = counting
    try:
        count = 0
        for patch, task in pairs:
            before = hits
            functional_similarity(patch, task)
            count += hits > before
    finally:
        similarity._realign = realign
    return count


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


def stats(xs: list[float]) -> dict[str, float]:
    return {"min": min(xs), "mean": sum(xs) / len(xs), "max": max(xs)}


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
        mirror = [context_mirror(patch, task, Indel.normalized_similarity) for patch, task in pairs]
        if mirror != [context_similarity(patch, task) for patch, task in pairs]:
            raise SystemExit("the difflib baselines no longer mirror context_similarity: fix context_mirror")
        rates, scores = {}, {}
        for name, fn in IMPLS.items():
            rates[name], scores[name] = throughput(fn, pairs, args.min_time)
        exact = scores["context_similarity"]
        result["sizes"][label] = {
            "chars": round(sum(len(a) + len(g) for a, g in raw) / (2 * len(raw))),
            "pairs_per_s": {k: round(v, 1) for k, v in rates.items()},
            **{f"context_speedup_vs_{k}": round(rates["context_similarity"] / rates[k], 2) for k in BASELINES},
            "max_abs_diff_vs_context": {
                k: max(abs(x - y) for x, y in zip(scores[k], exact, strict=True)) for k in BASELINES
            },
            "score": {k: stats(scores[k]) for k in ("functional_similarity", "context_similarity")},
            "realigned_pairs": realigned_pairs(pairs),
        }
    goal_rate = result["sizes"][GOAL_SIZE]["pairs_per_s"]["functional_similarity"]
    result.update(goal_pairs_per_s_at_4k=GOAL_PAIRS_PER_S, goal_met=goal_rate >= GOAL_PAIRS_PER_S)
    result.update(pairs=args.pairs, seed=args.seed)
    result["machine"] = {
        "cpu_count": os.cpu_count(), "pinned_cpu": cpu, "python": platform.python_version(),
        "platform": platform.platform(), "processor": platform.processor(), "rapidfuzz": rapidfuzz.__version__,
    }  # fmt: skip

    rows = [("size", "chars", "functional/s", "context/s", "difflib aj=F/s", "difflib dflt/s", "x aj=F", "x dflt",
             "maxdiff aj=F", "maxdiff dflt", "functional min/mean/max", "context min/mean/max",
             "realigned")]  # fmt: skip
    for label, r in result["sizes"].items():
        pps, diff, sc = r["pairs_per_s"], r["max_abs_diff_vs_context"], r["score"]
        rows.append((label, str(r["chars"]), f"{pps['functional_similarity']:.0f}",
                     f"{pps['context_similarity']:.0f}", f"{pps['difflib_autojunk_false']:.1f}",
                     f"{pps['difflib_default']:.0f}", f"{r['context_speedup_vs_difflib_autojunk_false']:.1f}",
                     f"{r['context_speedup_vs_difflib_default']:.1f}", f"{diff['difflib_autojunk_false']:.2f}",
                     f"{diff['difflib_default']:.2f}",
                     "{min:.2f}/{mean:.2f}/{max:.2f}".format(**sc["functional_similarity"]),
                     "{min:.2f}/{mean:.2f}/{max:.2f}".format(**sc["context_similarity"]),
                     f"{r['realigned_pairs']}/{args.pairs}"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    m = result["machine"]
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"\n{args.pairs} pairs per size; x = speed-up of context_similarity over that difflib variant (the same")
    print("computation); maxdiff = largest |score - context_similarity score|; realigned = pairs in which")
    print("functional_similarity moved an agent hunk")
    print(f"goal: functional_similarity >= {GOAL_PAIRS_PER_S} pairs/s at {GOAL_SIZE} on one core: {verdict}", end=" ")
    print(f"({goal_rate:.0f} pairs/s)")
    print(f"pinned to CPU {m['pinned_cpu']} of {m['cpu_count']}; Python {m['python']}, rapidfuzz {m['rapidfuzz']}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
