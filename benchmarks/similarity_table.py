"""Scores of example patches under the similarity rewards: the table in docs/rewards.md.

A small module with a bug in two lines of one function, the gold fix of both, and patches a
policy might write instead: half the fix, a wrong fix of the same lines, a cosmetic edit of
the buggy line, a comment above the function. Each is scored against the gold (as a task's
``patch``) by `functional_similarity` (the change measure), `context_similarity` (the thesis
form: LCS ratio of each file's whole change text) and `swe_rl_similarity` (SWE-RL's ratio of
the whole patch). The diffs are written as ``git diff`` writes them, 3 lines of context.

Run:  .venv/bin/python benchmarks/similarity_table.py [--json]
Prints a Markdown table; with --json also the scores as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys

from swerepair.rewards import context_similarity, functional_similarity, swe_rl_similarity

BASE = '''\
"""Ranges of scores."""

import math


def clamp(value, low, high):
    """Clamp value into [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def in_range(x, y, limit):
    """True if x does not exceed y and their total stays within limit."""
    total = abs(x) + abs(y)
    if x < y:
        return total < limit
    return False


def scale(values, factor):
    return [v * factor for v in values]
'''

IF, RETURN = "    if x < y:\n", "        return total < limit\n"
FIXED_IF, FIXED_RETURN = "    if x <= y:\n", "        return total <= limit\n"
COMMENT = "# x and y may be negative.\n"

#: name -> (what the agent's patch does, its edits of BASE as (old, new) replacements).
EXAMPLES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "gold": ("`<` to `<=` in both lines (the gold)", ((IF, FIXED_IF), (RETURN, FIXED_RETURN))),
    "partly right": ("`<` to `<=` in the first line only", ((IF, FIXED_IF),)),
    "wrong fix": ("`<` to `>` in both lines", ((IF, "    if x > y:\n"), (RETURN, "        return total > limit\n"))),
    "cosmetic edit": ("`if x < y:` to `if (x  <  y):`", ((IF, "    if (x  <  y):\n"),)),
    "comment-only edit": ("a comment line above `def in_range`", (("def in_range", COMMENT + "def in_range"),)),
}

REWARDS = {
    "functional_similarity": functional_similarity,
    "context_similarity": context_similarity,
    "swe_rl_similarity": swe_rl_similarity,
}


def git_diff(old: str, new: str, path: str = "ranges.py") -> str:
    """The unified diff from `old` to `new` with 3 lines of context, as ``git diff`` writes it."""
    body = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}", n=3)
    return f"diff --git a/{path} b/{path}\n" + "".join(body)


def edited(edits: tuple[tuple[str, str], ...]) -> str:
    text = BASE
    for old, new in edits:
        if text.count(old) != 1:
            raise ValueError(f"{old!r} is not in the module exactly once")
        text = text.replace(old, new)
    return text


def scores() -> dict[str, dict[str, float]]:
    """``{example: {reward: score}}`` against the gold."""
    task = {"patch": git_diff(BASE, edited(EXAMPLES["gold"][1])), "test_patch": ""}
    out = {}
    for name, (_, edits) in EXAMPLES.items():
        patch = git_diff(BASE, edited(edits))
        out[name] = {reward: round(fn(patch, task), 3) for reward, fn in REWARDS.items()}
    return out


def table(values: dict[str, dict[str, float]]) -> str:
    head = ["patch", "what it does", *(f"`{r}`" for r in REWARDS)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, (what, _) in EXAMPLES.items():
        cells = [name, what, *(f"{values[name][r]:.2f}" for r in REWARDS)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="also print the scores as JSON on the last line")
    args = ap.parse_args()
    values = scores()
    print(table(values))
    if args.json:
        print(json.dumps(values, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
