"""An evaluation's figures from its episodes: rates with denominators and bootstrap CIs, pass@k,
failure categories, behaviour; as JSON, Markdown and PNG; and the paired comparison of two runs.

Conventions, stated in every report:

- A **task** is an instance id; a **sample** one episode of it. Rates over samples are
  task-weighted: each task's rate over its samples, then the mean over tasks (so a task with
  more samples does not count more), with a 95% CI from resampling tasks (10,000 resamples,
  seed 0).
- **Infrastructure failures** (an episode that failed outside the agent) count as unresolved in
  every headline rate; the report also gives the resolved rate with them left out, and how many
  there were.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from swerepair.evals.outcomes import CATEGORIES, Outcome, outcome_of
from swerepair.evals.stats import Interval, bootstrap_ci, mcnemar_exact, paired_difference_ci, pass_at_k

__all__ = ["compare", "compare_markdown", "load_outcomes", "markdown", "plot", "summarize", "write_predictions"]

#: ``swe_rl_similarity`` at or above this is a "close patch" (partial success).
CLOSE_PATCH = 0.5


def load_outcomes(path: str | Path) -> list[Outcome]:
    """Outcomes of every episode in a JSONL file of episode records, or of a ``report.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Outcome(**o) for o in data["outcomes"]]
    outcomes = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                outcomes.append(outcome_of(json.loads(line)))
            except (ValueError, AttributeError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not an episode record: {exc}") from exc
    return outcomes


def _by_task(outcomes: Iterable[Outcome]) -> dict[str, list[Outcome]]:
    tasks: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        tasks[o.instance_id].append(o)
    return dict(sorted(tasks.items()))


def _task_rate(tasks: Mapping[str, list[Outcome]], hit: Any) -> Interval:
    per_task = [sum(1.0 for o in samples if hit(o)) / len(samples) for samples in tasks.values() if samples]
    return bootstrap_ci(per_task)


def _interval(i: Interval) -> dict[str, float]:
    return {"value": i.value, "low": i.low, "high": i.high, "n": i.n}


def summarize(outcomes: Sequence[Outcome], *, ks: Sequence[int] = (1,), name: str = "") -> dict[str, Any]:
    """The report's figures (a JSON-able dict; the module docstring says how rates are taken)."""
    tasks = _by_task(outcomes)
    samples = [len(s) for s in tasks.values()]
    infra = [o for o in outcomes if o.infrastructure]
    clean = _by_task(o for o in outcomes if not o.infrastructure)
    rates = {
        "resolved": _task_rate(tasks, lambda o: o.resolved),
        "resolved (infrastructure failures left out)": _task_rate(clean, lambda o: o.resolved),
        "valid patch": _task_rate(tasks, lambda o: o.valid_patch),
        "right files": _task_rate(tasks, lambda o: o.components.get("file_targeting", 0.0) >= 1.0),
        "close patch": _task_rate(tasks, lambda o: o.components.get("swe_rl_similarity", 0.0) >= CLOSE_PATCH),
        "made a tool call": _task_rate(tasks, lambda o: o.tool_calls > 0),
    }
    turns = sum(o.turns for o in outcomes)
    calls = sum(o.tool_calls for o in outcomes)
    pass_k = {}
    for k in ks:
        if samples and k <= min(samples):
            per_task = [pass_at_k(len(s), sum(o.resolved for o in s), k) for s in tasks.values()]
            pass_k[str(k)] = _interval(bootstrap_ci(per_task))
    components: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        for key, value in o.components.items():
            components[key].append(value)
    categories = Counter(o.category for o in outcomes)
    walls = [o.wall_s for o in outcomes]
    task_walls = [sum(o.wall_s for o in s) for s in tasks.values()]
    return {
        "name": name,
        "tasks": len(tasks),
        "episodes": len(outcomes),
        "samples_per_task": {"min": min(samples, default=0), "max": max(samples, default=0)},
        "with_tests": sum(o.has_tests for o in outcomes),
        "infrastructure_failures": len(infra),
        "denominator": (
            f"{len(tasks)} tasks x {min(samples, default=0)}-{max(samples, default=0)} samples = {len(outcomes)} "
            f"episodes; rates task-weighted; {len(infra)} infrastructure failure(s) counted as unresolved"
        ),
        "rates": {k: _interval(v) for k, v in rates.items()},
        "pass_at_k": pass_k,
        "tool_call_validity": {
            "well_formed_calls": calls,
            "turns": turns,
            "value": calls / turns if turns else 0.0,
            "malformed_calls": sum(o.malformed for o in outcomes),
        },
        "reward": _interval(bootstrap_ci([statistics.fmean(o.reward for o in s) for s in tasks.values()])),
        "components": {k: statistics.fmean(v) for k, v in sorted(components.items())},
        "failure_categories": {c: categories.get(c, 0) for c in CATEGORIES},
        "wall_s": {
            "episode_mean": statistics.fmean(walls) if walls else 0.0,
            "episode_median": statistics.median(walls) if walls else 0.0,
            "task_mean": statistics.fmean(task_walls) if task_walls else 0.0,
        },
        "exploration": {
            "commands_per_episode": statistics.fmean(o.commands for o in outcomes) if outcomes else 0.0,
            "files_viewed_per_episode": statistics.fmean(o.files_viewed for o in outcomes) if outcomes else 0.0,
        },
        "outcomes": [asdict(o) for o in outcomes],
    }


def _pct(entry: Mapping[str, float]) -> str:
    if entry["n"] == 0 or math.isnan(entry["value"]):
        return "n/a"
    return f"{100 * entry['value']:.1f}% [{100 * entry['low']:.1f}, {100 * entry['high']:.1f}]"


def markdown(summary: Mapping[str, Any], plot_name: str | None = None) -> str:
    """The report as Markdown."""
    s = summary
    lines = [f"# Evaluation{': ' + s['name'] if s['name'] else ''}", "", s["denominator"] + ".", ""]
    lines += ["| figure | value [95% CI] | over |", "| --- | --- | --- |"]
    for key, entry in s["rates"].items():
        lines.append(f"| {key} | {_pct(entry)} | {entry['n']} tasks |")
    for k, entry in s["pass_at_k"].items():
        lines.append(f"| pass@{k} (unbiased) | {_pct(entry)} | {entry['n']} tasks |")
    v = s["tool_call_validity"]
    lines.append(
        f"| tool-call validity | {v['value']:.2f} calls/turn | {v['well_formed_calls']} calls / {v['turns']} turns |"
    )
    r = s["reward"]
    lines.append(f"| mean reward | {r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] | {r['n']} tasks |")
    lines += ["", "Failure categories (episodes):", "", "| category | episodes |", "| --- | ---: |"]
    lines += [f"| {c} | {n} |" for c, n in s["failure_categories"].items()]
    w, e = s["wall_s"], s["exploration"]
    lines += [
        "",
        f"Wall time: {w['episode_mean']:.1f} s per episode (median {w['episode_median']:.1f} s), "
        f"{w['task_mean']:.1f} s per task. Exploration: {e['commands_per_episode']:.1f} shell commands and "
        f"{e['files_viewed_per_episode']:.1f} files viewed per episode; {v['malformed_calls']} malformed call(s).",
        "",
        "Mean reward components: " + ", ".join(f"{k} {val:.3f}" for k, val in s["components"].items()) + ".",
    ]
    if plot_name:
        lines += ["", f"![figures]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot(summaries: Sequence[Mapping[str, Any]], png: str | Path) -> Path:
    """Rates with their CIs and the failure categories, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["resolved", "valid patch", "right files", "close patch", "made a tool call"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / max(1, len(summaries))
    for i, s in enumerate(summaries):
        xs = [j + i * width for j in range(len(keys))]
        values = [s["rates"][k]["value"] for k in keys]
        errs = [
            [max(0.0, s["rates"][k]["value"] - s["rates"][k]["low"]) for k in keys],
            [max(0.0, s["rates"][k]["high"] - s["rates"][k]["value"]) for k in keys],
        ]
        left.bar(xs, values, width, yerr=errs, capsize=3, label=s.get("name") or f"run {i + 1}")
        counts = [s["failure_categories"][c] for c in CATEGORIES]
        right.bar([j + i * width for j in range(len(CATEGORIES))], counts, width, label=s.get("name") or f"run {i + 1}")
    left.set_xticks([j + width * (len(summaries) - 1) / 2 for j in range(len(keys))], keys, rotation=20)
    left.set_ylim(0, 1.05)
    left.set_ylabel("rate over tasks (95% CI)")
    right.set_xticks([j + width * (len(summaries) - 1) / 2 for j in range(len(CATEGORIES))], CATEGORIES, rotation=20)
    right.set_ylabel("episodes")
    right.set_title("how episodes ended")
    left.set_title("rates")
    left.legend(fontsize=8)
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def write_predictions(outcomes: Sequence[Outcome], path: str | Path, model: str, sample: int = 0) -> int:
    """SWE-bench predictions (``instance_id``, ``model_name_or_path``, ``model_patch``), one line
    per task, from each task's `sample`-th episode. Returns the lines written."""
    lines = []
    for instance_id, samples in _by_task(outcomes).items():
        if sample < len(samples):
            row = {"instance_id": instance_id, "model_name_or_path": model, "model_patch": samples[sample].patch}
            lines.append(json.dumps(row) + "\n")
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


def compare(a: Sequence[Outcome], b: Sequence[Outcome]) -> dict[str, Any]:
    """Run B against run A on the tasks both evaluated: McNemar's exact test over episodes
    paired by (task, sample index), and the bootstrap CI of the difference in task resolved
    rates (B - A)."""
    ta, tb = _by_task(a), _by_task(b)
    common = sorted(set(ta) & set(tb))
    pairs = [(x.resolved, y.resolved) for t in common for x, y in zip(ta[t], tb[t], strict=False)]
    only_a = sum(1 for x, y in pairs if x and not y)
    only_b = sum(1 for x, y in pairs if y and not x)
    rate_a = [statistics.fmean(o.resolved for o in ta[t]) for t in common]
    rate_b = [statistics.fmean(o.resolved for o in tb[t]) for t in common]
    diff = paired_difference_ci(rate_a, rate_b)
    return {
        "tasks": len(common),
        "pairs": len(pairs),
        "both": sum(1 for x, y in pairs if x and y),
        "neither": sum(1 for x, y in pairs if not x and not y),
        "only_a": only_a,
        "only_b": only_b,
        "mcnemar_p": mcnemar_exact(only_a, only_b),
        "resolved_a": statistics.fmean(rate_a) if rate_a else math.nan,
        "resolved_b": statistics.fmean(rate_b) if rate_b else math.nan,
        "difference": _interval(diff),
    }


def compare_markdown(result: Mapping[str, Any], name_a: str, name_b: str) -> str:
    d = result["difference"]
    return (
        f"# {name_b} vs {name_a}\n\n"
        f"{result['tasks']} tasks in both runs, {result['pairs']} episode pairs (task, sample).\n\n"
        "| | value |\n| --- | --- |\n"
        f"| resolved, {name_a} | {100 * result['resolved_a']:.1f}% |\n"
        f"| resolved, {name_b} | {100 * result['resolved_b']:.1f}% |\n"
        f"| difference ({name_b} - {name_a}) | {100 * d['value']:+.1f} points [{100 * d['low']:+.1f}, "
        f"{100 * d['high']:+.1f}] |\n"
        f"| pairs resolved by both / neither | {result['both']} / {result['neither']} |\n"
        f"| only {name_a} / only {name_b} | {result['only_a']} / {result['only_b']} |\n"
        f"| McNemar exact p (two-sided) | {result['mcnemar_p']:.4g} |\n"
    )
