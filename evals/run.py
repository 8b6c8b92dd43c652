"""Running an evaluation and writing its directory.

``<out>/``: ``episodes.jsonl`` (every episode, token-exact, as ``swerepair solve`` writes them),
``predictions.jsonl`` (SWE-bench's format, each task's first sample; with k > 1 also
``predictions-sample-<i>.jsonl``), ``report.json`` (`summarize`'s figures and every outcome),
``report.md`` and ``report.png``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from swerepair.core import Episode
from swerepair.evals.outcomes import Outcome, outcome_of
from swerepair.evals.report import markdown, plot, summarize, write_predictions

__all__ = ["evaluate", "write_report"]


def evaluate(
    make_env: Callable[[], Any],
    policy: Any,
    task_ids: Sequence[str],
    *,
    samples: int = 1,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> list[Episode]:
    """`samples` episodes of each task in `task_ids`, played by `policy` in envs from `make_env`
    (vectorised, `swerepair.envs.rollout.run_episodes`), in task order."""
    from swerepair.envs.rollout import run_episodes

    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    ids = [t for t in task_ids for _ in range(samples)]
    return run_episodes(make_env, policy, ids, seed=seed, on_step=on_step)


def write_report(
    out: str | Path,
    episodes: Sequence[Episode | dict[str, Any]],
    *,
    name: str,
    model: str,
    ks: Sequence[int] = (1,),
) -> dict[str, Any]:
    """Write the evaluation directory `out` for `episodes` (module docstring); returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = [ep.to_json() if isinstance(ep, Episode) else ep for ep in episodes]
    with (out / "episodes.jsonl").open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, default=str) + "\n")
    outcomes: list[Outcome] = [outcome_of(r) for r in records]
    summary = summarize(outcomes, ks=ks, name=name)
    summary["model"] = model
    write_predictions(outcomes, out / "predictions.jsonl", model)
    per_task = summary["samples_per_task"]["min"]
    for i in range(1, per_task):
        write_predictions(outcomes, out / f"predictions-sample-{i}.jsonl", model, sample=i)
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    png = plot([summary], out / "report.png")
    (out / "report.md").write_text(markdown(summary, png.name), encoding="utf-8")
    return summary
